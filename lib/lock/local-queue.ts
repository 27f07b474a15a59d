/**
 * In-process coalescing (the `coalesce` option): callers in ONE process that want the same lock
 * queue here, in memory, behind ONE ZooKeeper node, and the lock passes between them without a
 * round trip. After `maxHandoffs` local hand-offs, or once the node has been held for `maxHoldMs`,
 * the node is released even if local callers still wait; they then queue again in ZooKeeper,
 * behind the other processes that waited meanwhile, so no process starves the others.
 *
 * Fencing tokens stay strictly increasing for successive holders: a node's token leaves its low
 * 16 bits free (see `fencingToken` in lock-recipe.ts), and the k-th local holder of one node gets
 * that token + k.
 */
import { LockTimeoutError } from '../errors/lock-timeout.error.js';
import type { LockLostError } from '../errors/lock-lost.error.js';
import type { HeldLock, LockHandle, LockOutcome } from './lock-handle.js';

export interface CoalesceLimits {
  /** Local holders per ZooKeeper node before it is released anyway (1..65536). */
  maxHandoffs: number;
  /** How long (ms) one ZooKeeper node may be passed around locally before it is released anyway. */
  maxHoldMs: number;
}

interface Waiter {
  /** Told when the lease it gets ends. */
  onEnd?: (outcome: LockOutcome) => void;
  grant(lease: LocalLease): void;
  fail(error: unknown): void;
}

interface LocalQueue {
  path: string;
  /** The ZooKeeper lock while this process holds it. */
  node: HeldLock | undefined;
  /** Aborts the ZooKeeper acquisition in flight (when nobody waits for it any more). */
  taking: AbortController | undefined;
  holder: LocalLease | undefined;
  waiters: Waiter[];
  handoffs: number;
  heldSince: number;
}

/** One local holder's share of a ZooKeeper lock. */
export class LocalLease implements LockHandle {
  private readonly controller = new AbortController();
  readonly signal: AbortSignal = this.controller.signal;
  readonly path: string;
  readonly node: string;
  readonly fencingToken: bigint;
  readonly kind = 'write';
  private releasing: Promise<void> | undefined;
  private readonly follow = () => {
    this.controller.abort(this.held.signal.reason);
    this.onEnd?.((this.held.signal.reason as LockLostError).reason);
  };

  constructor(
    private readonly held: HeldLock,
    handoff: number,
    private readonly onRelease: (lease: LocalLease) => Promise<void>,
    /** Called once, when this holder releases or the node is lost. */
    private readonly onEnd?: (outcome: LockOutcome) => void,
  ) {
    this.path = held.path;
    this.node = held.node;
    this.fencingToken = held.fencingToken + BigInt(handoff);
    if (held.signal.aborted) this.follow();
    else held.signal.addEventListener('abort', this.follow, { once: true });
  }

  get released(): boolean {
    return this.releasing !== undefined || this.signal.aborted;
  }

  release(): Promise<void> {
    this.releasing ??= (() => {
      const lost = this.signal.aborted;
      this.held.signal.removeEventListener('abort', this.follow);
      if (!lost) this.onEnd?.('released');
      return this.onRelease(this);
    })();
    return this.releasing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.release();
  }
}

export class LocalLockQueues {
  private readonly queues = new Map<string, LocalQueue>();

  constructor(
    /** Takes the ZooKeeper lock for `path`, waiting until it is held or `signal` aborts. */
    private readonly takeNode: (path: string, signal: AbortSignal) => Promise<HeldLock>,
    private readonly limits: CoalesceLimits,
  ) {}

  /** True while some caller of this process holds or waits for `path`. */
  busy(path: string): boolean {
    return this.queues.has(path);
  }

  /**
   * Waits in the local queue of `path`. Rejects with LockTimeoutError at `deadline`, or with
   * `abortError()` when `signal` aborts; a waiter that gives up leaves nothing behind.
   */
  acquire(
    path: string,
    timeout: number,
    signal: AbortSignal,
    abortError: () => unknown,
    onEnd?: (outcome: LockOutcome) => void,
  ): Promise<LockHandle> {
    let queue = this.queues.get(path);
    if (!queue) {
      queue = { path, node: undefined, taking: undefined, holder: undefined, waiters: [], handoffs: 0, heldSince: 0 };
      this.queues.set(path, queue);
    }
    const q = queue;
    return new Promise<LockHandle>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const cleanup = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
      };
      const waiter: Waiter = {
        onEnd,
        grant: (lease) => {
          cleanup();
          resolve(lease);
        },
        fail: (error) => {
          cleanup();
          reject(error);
        },
      };
      const giveUp = (error: unknown) => {
        const index = q.waiters.indexOf(waiter);
        if (index === -1) return;
        q.waiters.splice(index, 1);
        waiter.fail(error);
        this.pump(q);
      };
      const onAbort = () => giveUp(abortError());
      if (signal.aborted) {
        reject(abortError());
        this.pump(q);
        return;
      }
      signal.addEventListener('abort', onAbort, { once: true });
      if (timeout !== Infinity) timer = setTimeout(() => giveUp(new LockTimeoutError(path, timeout)), timeout);
      q.waiters.push(waiter);
      this.pump(q);
    });
  }

  /** Moves the queue on: hand the node to the next waiter, take a node for them, or let it go. */
  private pump(q: LocalQueue): void {
    if (q.holder) return;
    if (q.node && q.node.signal.aborted) {
      void this.letGo(q);
      return;
    }
    if (q.waiters.length === 0) {
      if (q.taking) q.taking.abort();
      else if (q.node) void this.letGo(q);
      else if (this.queues.get(q.path) === q) this.queues.delete(q.path);
      return;
    }
    if (q.node) {
      const waiter = q.waiters.shift()!;
      const lease = new LocalLease(q.node, q.handoffs, (l) => this.onRelease(q, l), waiter.onEnd);
      q.handoffs += 1;
      q.holder = lease;
      waiter.grant(lease);
      return;
    }
    if (q.taking) return;
    const taking = new AbortController();
    q.taking = taking;
    this.takeNode(q.path, taking.signal).then(
      (node) => {
        q.taking = undefined;
        q.node = node;
        q.handoffs = 0;
        q.heldSince = performance.now();
        this.pump(q);
      },
      (error: unknown) => {
        q.taking = undefined;
        // Aborted because nobody waits any more: pump tidies up. Otherwise all waiters share the failure.
        if (!taking.signal.aborted) for (const waiter of q.waiters.splice(0)) waiter.fail(error);
        this.pump(q);
      },
    );
  }

  private async onRelease(q: LocalQueue, lease: LocalLease): Promise<void> {
    if (q.holder !== lease) return;
    q.holder = undefined;
    const spent = q.handoffs >= this.limits.maxHandoffs || performance.now() - q.heldSince >= this.limits.maxHoldMs;
    if (q.node && (spent || q.waiters.length === 0)) await this.letGo(q);
    else this.pump(q);
  }

  /** Deletes the node (others get their turn), then serves whoever still waits here. */
  private async letGo(q: LocalQueue): Promise<void> {
    const node = q.node;
    q.node = undefined;
    await node?.release();
    this.pump(q);
  }
}
