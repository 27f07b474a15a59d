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
import { LockLostError } from '../errors/lock-lost.error.js';
import {
  NestedHandles,
  OUTER_RELEASED,
  type HeldLock,
  type LockOutcome,
  type OuterLock,
  type ReentrantLock,
} from './lock-handle.js';

export interface CoalesceLimits {
  /** Local holders per ZooKeeper node before it is released anyway (1..65536). */
  maxHandoffs: number;
  /** How long (ms) one ZooKeeper node may be passed around locally before it is released anyway. */
  maxHoldMs: number;
}

/** One caller's wait in a local queue. */
export interface LocalWait {
  /** ms to wait (a validated duration, at most 2^31-1), or Infinity. */
  timeout: number;
  signal: AbortSignal;
  /** The error when `signal` aborts. */
  abortError: () => unknown;
  /** The error at the timeout; `forNode`: the queue was still waiting for ZooKeeper (no node held). */
  timeoutError: (forNode: boolean) => unknown;
  /** Told when the lease it gets ends. */
  onEnd?: (outcome: LockOutcome) => void;
  /** Watch the node from the moment this caller holds it (release requests seen at once). */
  revocable?: boolean;
}

interface Waiter {
  wait: LocalWait;
  grant(lease: LocalLease): void;
  fail(error: unknown): void;
}

interface LocalQueue {
  path: string;
  /** The ZooKeeper lock while this process holds it. */
  node: HeldLock | undefined;
  /** Aborts the ZooKeeper acquisition in flight (when nobody waits for it any more). */
  taking: AbortController | undefined;
  /** The release (delete) of the previous node, while in flight. */
  releasing: Promise<void> | undefined;
  holder: LocalLease | undefined;
  waiters: Waiter[];
  handoffs: number;
  heldSince: number;
}

/** One local holder's share of a ZooKeeper lock. */
export class LocalLease implements OuterLock {
  private readonly controller = new AbortController();
  readonly signal: AbortSignal = this.controller.signal;
  readonly path: string;
  readonly node: string;
  readonly fencingToken: bigint;
  readonly kind = 'write';
  private releasing: Promise<void> | undefined;
  private nested: NestedHandles | undefined;
  private readonly follow = () => {
    const lost = this.held.signal.reason as LockLostError;
    this.controller.abort(lost);
    this.nested?.tell(lost);
    this.onEnd?.(lost.reason);
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

  get releaseCalled(): boolean {
    return this.releasing !== undefined;
  }

  nest(): ReentrantLock {
    this.nested ??= new NestedHandles();
    return this.nested.add(this);
  }

  stillHeld(): boolean {
    return this.held.stillHeld() && !this.signal.aborted;
  }

  release(): Promise<void> {
    this.releasing ??= (() => {
      const lost = this.signal.aborted;
      this.held.signal.removeEventListener('abort', this.follow);
      // Nested holders hear it before the lock passes on or its node goes.
      this.nested?.tell(new LockLostError(this.path, OUTER_RELEASED));
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

  /** True while some caller of this process holds or waits for `path`, or its last node is being deleted. */
  busy(path: string): boolean {
    return this.queues.has(path);
  }

  /**
   * The delete of the last node of `path` while nobody of this process holds or waits for it
   * (a caller that does not wait may wait for this instead of answering "busy"), else undefined.
   */
  releaseInFlight(path: string): Promise<void> | undefined {
    const q = this.queues.get(path);
    return q && !q.holder && !q.taking && q.waiters.length === 0 ? q.releasing : undefined;
  }

  /**
   * Waits in the local queue of `path`. Rejects with `wait.timeoutError` at the timeout, or with
   * `wait.abortError()` when `wait.signal` aborts; a waiter that gives up leaves nothing behind.
   */
  acquire(path: string, wait: LocalWait): Promise<LocalLease> {
    let queue = this.queues.get(path);
    if (!queue) {
      queue = {
        path,
        node: undefined,
        taking: undefined,
        releasing: undefined,
        holder: undefined,
        waiters: [],
        handoffs: 0,
        heldSince: 0,
      };
      this.queues.set(path, queue);
    }
    const q = queue;
    const { signal, timeout } = wait;
    return new Promise<LocalLease>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const cleanup = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
      };
      const waiter: Waiter = {
        wait,
        grant: (lease) => {
          cleanup();
          resolve(lease);
        },
        fail: (error) => {
          cleanup();
          reject(error);
        },
      };
      const giveUp = (error: () => unknown) => {
        const index = q.waiters.indexOf(waiter);
        if (index === -1) return;
        q.waiters.splice(index, 1);
        waiter.fail(error());
        this.pump(q);
      };
      const onAbort = () => giveUp(wait.abortError);
      if (signal.aborted) {
        reject(wait.abortError());
        this.pump(q);
        return;
      }
      signal.addEventListener('abort', onAbort, { once: true });
      // (timeout is a validated duration: at most 2^31-1 ms)
      if (timeout !== Infinity) timer = setTimeout(() => giveUp(() => wait.timeoutError(!q.node)), timeout);
      q.waiters.push(waiter);
      this.pump(q);
    });
  }

  /** Moves the queue on: hand the node to the next waiter, take a node for them, or let it go. */
  private pump(q: LocalQueue): void {
    if (q.holder) return;
    // (asked now, not when the loss timer runs: a hand-off needs no round trip to go wrong)
    if (q.node && !q.node.stillHeld()) {
      this.letGo(q).catch(() => undefined); // lost or revoked: nobody holds it to be told
      return;
    }
    if (q.waiters.length === 0) {
      if (q.taking) q.taking.abort();
      else if (q.node)
        this.letGo(q).catch(() => undefined); // nobody to tell: no holder
      else if (!q.releasing && this.queues.get(q.path) === q) this.queues.delete(q.path);
      return;
    }
    if (q.node) {
      const waiter = q.waiters.shift()!;
      const lease = new LocalLease(q.node, q.handoffs, (l) => this.onRelease(q, l), waiter.wait.onEnd);
      q.handoffs += 1;
      q.holder = lease;
      if (waiter.wait.revocable) q.node.watchNow();
      waiter.grant(lease);
      return;
    }
    if (q.taking) return;
    this.take(q);
  }

  /** Takes a ZooKeeper node for the queue's waiters. */
  private take(q: LocalQueue): void {
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

  /** A local holder released: pass the node on, or let it go. Rejects when the node's delete failed for good. */
  private async onRelease(q: LocalQueue, lease: LocalLease): Promise<void> {
    if (q.holder !== lease) return;
    q.holder = undefined;
    const spent = q.handoffs >= this.limits.maxHandoffs || performance.now() - q.heldSince >= this.limits.maxHoldMs;
    if (q.node && (spent || q.waiters.length === 0)) await this.letGo(q);
    else this.pump(q);
  }

  /** Deletes the node (others get their turn), then serves whoever still waits here. */
  private letGo(q: LocalQueue): Promise<void> {
    const node = q.node;
    q.node = undefined;
    const releasing: Promise<void> = (node ? node.release() : Promise.resolve()).finally(() => {
      if (q.releasing === releasing) q.releasing = undefined;
      this.pump(q);
    });
    q.releasing = releasing;
    return releasing;
  }
}
