import { LockLostError, type LockLostReason } from '../errors/lock-lost.error.js';
import { ZooKeeperError } from '../errors/zookeeper.error.js';
import type { SessionEndReason, ZkPort, ZkSession } from '../connection/zk-port.js';
import { removeNode, type Acquired, type NodeKind } from './lock-recipe.js';

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
  /**
   * Aborts with a {@link LockLostError} as `reason` when the lock stops being ours. A nested
   * (reentrant) handle's signal also aborts, before the node goes, when the outer holder releases.
   */
  readonly signal: AbortSignal;
  /** True once `release()` was called or the lock was lost (for a nested handle: or its outer holder released). */
  readonly released: boolean;
  /**
   * Deletes our node. Safe to call twice and after a loss; never touches another owner's node.
   * Rejects with the ZooKeeperError when the delete failed for good (e.g. NO_AUTH): the handle
   * counts as released, but the node stays until our session ends.
   */
  release(): Promise<void>;
}

/**
 * The reason of a nested handle's LockLostError when its outer holder released the lock.
 * (A LockLostReason the errors module is asked to add; typed through `string` until it does.)
 */
export const OUTER_RELEASED: LockLostReason = 'outer-released';

/** Internal: a handle that holds its own share of the lock (not a nested handle on another one). */
export interface OuterLock extends LockHandle {
  /** True once its holder called `release()` (a loss alone leaves it false). */
  readonly releaseCalled: boolean;
  /** A handle for a nested (reentrant) acquisition in the holder's call chain. */
  nest(): ReentrantLock;
  /**
   * Whether the lock is still ours, asked now: a presumed loss that is due is noticed here even
   * if its timer has not run yet (the signal aborts then). For grants made without a round trip.
   */
  stillHeld(): boolean;
}

/**
 * The nested (reentrant) handles given out on one outer lock. They are told, their signal
 * aborting, before the lock leaves the outer holder: before its node is deleted, before it passes
 * to the next local holder (coalescing), and when it is lost. There is no hold count: the outer
 * holder's release ends the lock for everyone who got it through reentrancy.
 */
export class NestedHandles {
  private readonly handles = new Set<ReentrantLock>();

  add(outer: OuterLock): ReentrantLock {
    const handle = new ReentrantLock(outer, (h) => this.handles.delete(h));
    this.handles.add(handle);
    return handle;
  }

  /** Aborts every nested handle's signal with `reason` and forgets them. */
  tell(reason: LockLostError): void {
    const handles = [...this.handles];
    this.handles.clear();
    for (const handle of handles) handle.end(reason);
  }
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
export class HeldLock implements OuterLock {
  /** Made on first use of `signal` (most short holds never look at it: an AbortController costs). */
  private controller: AbortController | undefined;
  /** Why the lock stopped being ours, once it did. */
  private lost: LockLostError | undefined;
  readonly node: string;
  readonly fencingToken: bigint;
  private releasing: Promise<void> | undefined;
  private watchTimer: NodeJS.Timeout | undefined;
  private watching = false;
  private ended = false;
  /** Nested handles, made on the first reentrant acquisition. */
  private nested: NestedHandles | undefined;

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
    if (watchDelay === 0) this.watchNow();
    else if (watchDelay !== Infinity) {
      // (watchDelay is a validated option: at most 2^31-1 ms)
      this.watchTimer = setTimeout(() => this.watchNow(), watchDelay);
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

  get releaseCalled(): boolean {
    return this.releasing !== undefined;
  }

  nest(): ReentrantLock {
    this.nested ??= new NestedHandles();
    return this.nested.add(this);
  }

  stillHeld(): boolean {
    this.port.currentSession(); // ends our session now if its presumed loss is due (we are told synchronously)
    return this.lost === undefined;
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

  /** Watches our node from now on (if not yet), so that a deletion or a release request is seen at once. */
  watchNow(): void {
    clearTimeout(this.watchTimer);
    this.watchTimer = undefined;
    if (this.watching || this.released) return;
    this.watching = true;
    this.watchOwnNode().catch(() => undefined);
  }

  private lose(reason: LockLostReason): void {
    this.stopWatching();
    if (!this.lost) {
      this.lost = new LockLostError(this.path, reason);
      this.controller?.abort(this.lost);
      this.nested?.tell(this.lost);
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
    if (this.released) return;
    const { session } = this.acquired;
    const check = () => {
      if (this.released || session.ended.aborted || this.port.currentSession() !== session) return;
      this.watchOwnNode().catch(() => undefined);
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

  /** Not an async function: the delete is sent at once, and its reply settles the release without another layer. */
  private doRelease(): Promise<void> {
    try {
      this.stopWatching();
      // Whoever holds the lock through reentrancy hears it before the node goes.
      this.nested?.tell(new LockLostError(this.path, OUTER_RELEASED));
    } catch (error) {
      this.end('released');
      return Promise.reject(error);
    }
    // A permanent failure (e.g. NO_AUTH) rejects: the node stays, and its holder must hear it.
    // (Other failures mean the connection is closing: the session's end removes the node.)
    return removeNode(this.port, this.node, this.acquired.session, (failure) => {
      this.end('released');
      if (failure instanceof ZooKeeperError) throw failure;
    });
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

/**
 * What a nested acquisition of a lock this call chain already holds gets: a handle on the outer
 * holder's lock, without a node of its own. Its `signal` aborts (and `released` turns true)
 * before the lock leaves the outer holder: on the outer `release()` (reason `outer-released`)
 * or a loss (the outer's reason). Its own `release()` deletes nothing.
 */
export class ReentrantLock implements LockHandle {
  private readonly controller = new AbortController();
  readonly signal: AbortSignal = this.controller.signal;
  readonly path: string;
  readonly kind: NodeKind;
  readonly node: string;
  readonly fencingToken: bigint;
  private releaseCalled = false;

  constructor(
    /** The handle that holds the node (or the local lease) for the call chain. */
    readonly outer: OuterLock,
    private readonly onRelease: (handle: ReentrantLock) => void,
  ) {
    this.path = outer.path;
    this.kind = outer.kind;
    this.node = outer.node;
    this.fencingToken = outer.fencingToken;
  }

  get released(): boolean {
    return this.releaseCalled || this.signal.aborted;
  }

  /** The outer holder releases the node; this one only stops being told. */
  release(): Promise<void> {
    if (!this.releaseCalled) {
      this.releaseCalled = true;
      this.onRelease(this);
    }
    return Promise.resolve();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.release();
  }

  /** The lock left the outer holder (released or lost). */
  end(reason: LockLostError): void {
    this.controller.abort(reason);
  }
}
