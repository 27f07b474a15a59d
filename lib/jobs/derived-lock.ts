/**
 * Handles that stand for an election node without owning it: the leader's handle of one term
 * (given to `onLeadershipAcquired`) and the handle of one job run. Both sit in the lock context
 * (`LockService.current()`, `@CurrentLock()`, reentrancy) like a held lock, and their `signal`
 * aborts when the leadership they come from ends.
 */
import { LockLostError } from '../errors/lock-lost.error.js';
import { NestedHandles, OUTER_RELEASED, type OuterLock, type ReentrantLock } from '../lock/lock-handle.js';

/** The parts of the election's own handle a derived handle reads. */
export interface ElectionNode {
  readonly path: string;
  readonly node: string;
  /** Whether the election node is still ours, asked now (a due presumed loss is noticed here). */
  stillHeld(): boolean;
}

/**
 * A handle on an election node for a span of time: its `signal` follows `source` (the term's
 * signal), it ends (without aborting) when its span ends or `release()` is called.
 */
export class DerivedLock implements OuterLock {
  private readonly controller = new AbortController();
  readonly signal: AbortSignal = this.controller.signal;
  readonly kind = 'write';
  readonly path: string;
  readonly node: string;
  private done = false;
  private nested: NestedHandles | undefined;
  private readonly follow = () => this.lose(this.source.reason as LockLostError);

  constructor(
    private readonly election: ElectionNode,
    readonly fencingToken: bigint,
    private readonly source: AbortSignal,
    /** What `release()` does besides ending this handle (the leader's handle: step down). */
    private readonly onRelease?: () => void,
  ) {
    this.path = election.path;
    this.node = election.node;
    if (source.aborted) this.follow();
    else source.addEventListener('abort', this.follow, { once: true });
  }

  get released(): boolean {
    return this.done || this.signal.aborted;
  }

  get releaseCalled(): boolean {
    return this.done;
  }

  nest(): ReentrantLock {
    this.nested ??= new NestedHandles();
    return this.nested.add(this);
  }

  stillHeld(): boolean {
    return !this.released && this.election.stillHeld() && !this.signal.aborted;
  }

  /** Ends this handle (nested handles are told); see the constructor's `onRelease`. */
  release(): Promise<void> {
    if (!this.done) {
      this.finish();
      this.onRelease?.();
    }
    return Promise.resolve();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.release();
  }

  /** Its span is over (the run returned): stop following the term; nested handles are told. */
  finish(): void {
    if (this.done) return;
    this.done = true;
    this.source.removeEventListener('abort', this.follow);
    this.nested?.tell(new LockLostError(this.path, OUTER_RELEASED));
  }

  private lose(reason: LockLostError): void {
    this.controller.abort(reason);
    this.nested?.tell(reason);
  }
}
