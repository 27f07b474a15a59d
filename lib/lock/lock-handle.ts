import { LockLostError, type LockLostReason } from '../errors/lock-lost.error.js';
import type { SessionEndReason, ZkPort, ZkSession } from '../connection/zk-port.js';
import { deleteNode, type Acquired, type NodeKind } from './lock-recipe.js';

/** The data a release request writes into a holder's node: Curator's revocation marker, so both understand each other. */
export const REVOKE_MARKER = Buffer.from('__REVOKE__');

/** How a holder's tenure ended: released by its holder, or lost (and why). */
export type LockOutcome = 'released' | LockLostReason;

/** What a holder gets from `acquire`. Also an `AsyncDisposable`: `await using lock = await locks.acquire(path)`. */
export interface LockHandle extends AsyncDisposable {
  /** The lock's path (its directory). */
  readonly path: string;
  /** `write` (exclusive, the default), `read` (shared with other reads) or `lease` (one of a semaphore's N). */
  readonly kind: NodeKind;
  /** Full path of our node, e.g. `/locks/write_lock/_c_<uuid>-lock-0000000042`. */
  readonly node: string;
  /**
   * Strictly greater for every later holder of this lock, also across re-creation of the lock's
   * directory. Pass it to the storage you write, and have it refuse writes with a smaller token.
   */
  readonly fencingToken: bigint;
  /** Aborts with a {@link LockLostError} as `reason` when the lock stops being ours. */
  readonly signal: AbortSignal;
  /** True once `release()` was called (or the lock was lost). */
  readonly released: boolean;
  /** Deletes our node. Safe to call twice and after a loss; never touches another owner's node. */
  release(): Promise<void>;
}

/**
 * The handle of one acquisition: owns the node until `release()`.
 *
 * Loss detection: the session ending aborts `signal` at once. A node deleted by someone else is
 * noticed through a watch on our own node, set only once the lock has been held for
 * `watchDelay` ms, so that short critical sections keep the 3-request cycle. The same watch sees a
 * release request (revocation: {@link REVOKE_MARKER} written into our node): `signal` aborts with
 * reason `revoked` while the node stays ours until `release()`.
 */
export class HeldLock implements LockHandle {
  /** Made on first use of `signal` (most short holds never look at it: an AbortController costs). */
  private controller: AbortController | undefined;
  /** Why the lock stopped being ours, once it did. */
  private lost: LockLostError | undefined;
  readonly node: string;
  readonly fencingToken: bigint;
  private releasing: Promise<void> | undefined;
  private watchTimer: NodeJS.Timeout | undefined;
  private ended = false;

  constructor(
    private readonly port: ZkPort,
    readonly path: string,
    readonly kind: NodeKind,
    private readonly acquired: Acquired,
    watchDelay: number,
    /** Called once, when the lock is released or lost. */
    private readonly onEnd?: (lock: HeldLock, outcome: LockOutcome) => void,
  ) {
    this.node = acquired.node;
    this.fencingToken = acquired.fencingToken;
    const { session } = acquired;
    if (session.ended.aborted) {
      this.sessionEnded();
      return;
    }
    locksOf(session).add(this);
    if (watchDelay !== Infinity) {
      this.watchTimer = setTimeout(() => void this.watchOwnNode(), watchDelay);
      this.watchTimer.unref();
    }
  }

  /** Aborts with a {@link LockLostError} as `reason` when the lock stops being ours. */
  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.lost) this.controller.abort(this.lost);
    }
    return this.controller.signal;
  }

  get released(): boolean {
    return this.releasing !== undefined || this.lost !== undefined;
  }

  /** Our session is over: the server removes (or has removed) our node. */
  sessionEnded(): void {
    this.lose(this.acquired.session.ended.reason as SessionEndReason);
  }

  release(): Promise<void> {
    this.releasing ??= this.doRelease();
    return this.releasing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.release();
  }

  /** Ends the lock from our side: aborts `signal` with a LockLostError(`reason`), then deletes the node. */
  revoke(reason: LockLostReason): Promise<void> {
    this.lose(reason);
    return this.release();
  }

  private lose(reason: LockLostReason): void {
    this.stopWatching();
    if (!this.lost) {
      this.lost = new LockLostError(this.path, reason);
      this.controller?.abort(this.lost);
    }
    this.end(reason);
  }

  private end(outcome: LockOutcome): void {
    if (this.ended) return;
    this.ended = true;
    this.onEnd?.(this, outcome);
  }

  private stopWatching(): void {
    clearTimeout(this.watchTimer);
    this.watchTimer = undefined;
    bySession.get(this.acquired.session)?.delete(this);
  }

  /** Watches our node; when it goes while we hold the lock and our session lives, someone deleted it. */
  private async watchOwnNode(): Promise<void> {
    this.watchTimer = undefined;
    if (this.released) return;
    const { session } = this.acquired;
    const check = () => {
      if (this.released || session.ended.aborted || this.port.currentSession() !== session) return;
      void this.watchOwnNode();
    };
    try {
      // A release deletes the node and so fires this watch: the server removes it, nothing is left.
      const registration = await this.port.watch(this.node, check);
      if (this.released || this.port.currentSession() !== session) return;
      if (registration === null) this.lose('node-deleted');
      else if (registration.data.equals(REVOKE_MARKER)) this.lose('revoked');
    } catch {
      // connection trouble: the session's own signals cover it
    }
  }

  private async doRelease(): Promise<void> {
    this.stopWatching();
    try {
      await deleteNode(this.port, this.node, this.acquired.session);
    } finally {
      this.end('released');
    }
  }
}

/**
 * The held locks of each session, so that one listener per session (not one per lock: an
 * EventTarget listener costs on every acquisition) tells them all when it ends.
 */
const bySession = new WeakMap<ZkSession, Set<HeldLock>>();
function locksOf(session: ZkSession): Set<HeldLock> {
  let locks = bySession.get(session);
  if (!locks) {
    const held = new Set<HeldLock>();
    locks = held;
    bySession.set(session, held);
    session.ended.addEventListener(
      'abort',
      () => {
        for (const lock of held) lock.sessionEnded(); // each deletes itself: safe while iterating a Set
        held.clear();
      },
      { once: true },
    );
  }
  return locks;
}

/** What a nested acquisition of a lock this call chain already holds gets: the holder's lock, without a release of its own. */
export class ReentrantLock implements LockHandle {
  constructor(private readonly outer: LockHandle) {}

  get path(): string {
    return this.outer.path;
  }
  get kind(): NodeKind {
    return this.outer.kind;
  }
  get node(): string {
    return this.outer.node;
  }
  get fencingToken(): bigint {
    return this.outer.fencingToken;
  }
  get signal(): AbortSignal {
    return this.outer.signal;
  }
  get released(): boolean {
    return this.outer.released;
  }
  /** The outer holder releases the node; this one only returns. */
  release(): Promise<void> {
    return Promise.resolve();
  }
  [Symbol.asyncDispose](): Promise<void> {
    return this.release();
  }
}
