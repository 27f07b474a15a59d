/**
 * The limits of one acquisition attempt: its deadline (monotonic clock) and its caller's signal,
 * kept with one timer and one listener for the whole attempt. Every wait of the recipe goes
 * through {@link Attempt}: a request's reply, the next session, another holder, a back-off pause.
 * So every attempt settles by its deadline or abort, whatever the connection does; a request
 * that answers after that is handed to a `late` handler (to delete a node it made, cancel a
 * watch it set), and its rejection is always handled.
 */
import { performance } from 'node:perf_hooks';
import { ZooKeeperError, type ZkErrorCode } from '../../errors/zookeeper.error.js';
import type { ZkPort, ZkSession } from '../../connection/zk-port.js';

/** Why the recipe gave up before holding the lock. */
export class GiveUp extends Error {
  constructor(
    readonly why: 'timeout' | 'aborted',
    /**
     * True when the deadline passed while the attempt waited for a session or for a reply to one
     * of its requests (an outage), false when it waited for another holder (a busy lock).
     */
    readonly unavailable = false,
  ) {
    super(why);
  }
}

/** What to do with a request's outcome that arrives after the attempt gave up on it. */
export interface Late<T> {
  value?: (value: T) => void;
  error?: (error: unknown) => void;
}

/** After giving up, how long the attempt waits for the deletion of its nodes before it settles (ms). */
export const CLEANUP_WAIT_MS = 100;

/**
 * Resolves when `promise` settles or after `ms` (a validated duration), whichever comes first;
 * never rejects (what settles later goes on in the background: give it its own handler).
 */
export function settledWithin(promise: Promise<unknown>, ms: number = CLEANUP_WAIT_MS): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    const done = () => {
      clearTimeout(timer);
      resolve();
    };
    promise.then(done, done);
  });
}
/** Back-off between retries after failures: the first retry at once, then 10 ms doubling to 1 s. */
const BACKOFF_FIRST_MS = 10;
const BACKOFF_MAX_MS = 1_000;
/** setTimeout's largest delay; longer waits re-arm. */
const MAX_TIMER_MS = 2 ** 31 - 1;

type Why = GiveUp['why'];

export class Attempt {
  /**
   * The attempts that listen to each signal, behind ONE EventTarget listener per signal: a
   * service's shutdown signal is shared by all its attempts, and adding and removing an EventTarget
   * listener per attempt cost more than the rest of an attempt's bookkeeping.
   */
  private static readonly listening = new WeakMap<AbortSignal, Set<Attempt>>();

  private over: Why | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly waiters = new Set<Waiting>();
  private cleanups: Promise<void>[] | undefined;
  private failures = 0;

  constructor(
    readonly deadline: number,
    private readonly signal: AbortSignal | undefined,
  ) {
    if (signal?.aborted) this.over = 'aborted';
    else if (deadline !== Infinity && performance.now() >= deadline) this.over = 'timeout';
    else {
      if (signal) Attempt.listen(signal, this);
      if (deadline !== Infinity) this.arm();
    }
  }

  /** Stops the timer and the listener (late handlers still run). */
  end(): void {
    if (this.timer) clearTimeout(this.timer);
    if (this.signal) Attempt.listening.get(this.signal)?.delete(this);
  }

  private static listen(signal: AbortSignal, attempt: Attempt): void {
    let attempts = Attempt.listening.get(signal);
    if (!attempts) {
      const listeners = new Set<Attempt>();
      attempts = listeners;
      Attempt.listening.set(signal, listeners);
      signal.addEventListener(
        'abort',
        () => {
          for (const listener of Array.from(listeners)) listener.onAbort();
          listeners.clear();
        },
        { once: true },
      );
    }
    attempts.add(attempt);
  }

  /** Throws GiveUp when the deadline passed or the signal aborted. */
  check(unavailable = false): void {
    this.refresh();
    if (this.over) throw new GiveUp(this.over, unavailable);
  }

  /** Notices an abort or a deadline that its listener or timer has not reported yet. */
  private refresh(): void {
    if (this.over) return;
    if (this.signal?.aborted) this.over = 'aborted';
    else if (this.deadline !== Infinity && performance.now() >= this.deadline) this.over = 'timeout';
  }

  /** Waits for a request's reply; GiveUp (unavailable) when the attempt ends first. */
  reply<T>(request: Promise<T>, late?: Late<T>): Promise<T> {
    return this.race(request, true, undefined, late);
  }

  /**
   * Waits for another holder (`woken`), or until `also` aborts (resolves then too); GiveUp (not
   * unavailable: the lock is busy) when the attempt ends first.
   */
  wait(woken: Promise<void>, also: AbortSignal): Promise<void> {
    return this.race(woken, false, also);
  }

  /**
   * The current session, or the next one. No session and a no-wait attempt (or a deadline already
   * due): GiveUp('timeout', unavailable) at once.
   */
  async session(port: ZkPort, wait: boolean): Promise<ZkSession> {
    const current = port.currentSession();
    if (current) return current;
    this.check(true);
    if (!wait) throw new GiveUp('timeout', true);
    const stop = new AbortController();
    try {
      return await this.race(port.waitForSession(stop.signal), true);
    } finally {
      stop.abort(); // (the port's promise then rejects: handled by the race)
    }
  }

  /** A retry after a failure: the first at once, then a pause doubling up to 1 s, never past the deadline. */
  async failed(): Promise<void> {
    this.check(true);
    this.failures += 1;
    if (this.failures === 1) return;
    const pause = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** (this.failures - 2));
    let timer: NodeJS.Timeout | undefined;
    try {
      await this.race(new Promise<void>((resolve) => (timer = setTimeout(resolve, pause))), true);
    } finally {
      clearTimeout(timer);
    }
  }

  /** The attempt made progress: the next failure is retried at once again. */
  progressed(): void {
    this.failures = 0;
  }

  /** A deletion of ours to wait for (briefly) before the attempt settles; it must never reject. */
  cleanup(deletion: Promise<void>): void {
    (this.cleanups ??= []).push(deletion);
  }

  /** Whether there are deletions to wait for ({@link drain} would wait). */
  get draining(): boolean {
    return this.cleanups !== undefined && this.cleanups.length > 0;
  }

  /** Waits up to CLEANUP_WAIT_MS for the deletions so far; the slower ones go on in the background. */
  async drain(): Promise<void> {
    if (!this.cleanups || this.cleanups.length === 0) return;
    await settledWithin(Promise.all(this.cleanups.splice(0)));
  }

  /**
   * Settles with `promise`, or resolves (undefined) when `also` aborts, or rejects with GiveUp when
   * the attempt ends first. Handlers are on `promise` before anything can throw, so its rejection
   * is never unhandled; its outcome after that goes to `late`.
   */
  private race<T>(promise: Promise<T>, unavailable: boolean, also?: AbortSignal, late?: Late<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const waiter = new Waiter<T>(this.waiters, resolve, reject, unavailable, also, late);
      promise.then(
        (value) => waiter.value(value),
        (error: unknown) => waiter.error(error),
      );
      this.refresh();
      if (this.over) waiter.over(this.over);
      else if (also?.aborted) waiter.handleEvent();
      else {
        this.waiters.add(waiter);
        also?.addEventListener('abort', waiter, { once: true });
      }
    });
  }

  private arm(): void {
    const left = this.deadline - performance.now();
    if (left > 0) {
      this.timer = setTimeout(() => this.arm(), Math.min(Math.ceil(left), MAX_TIMER_MS));
      return;
    }
    this.end();
    this.finish('timeout');
  }

  private onAbort(): void {
    this.end();
    this.finish('aborted');
  }

  private finish(why: Why): void {
    this.over ??= why;
    for (const waiter of Array.from(this.waiters)) waiter.over(this.over);
  }
}

/** A wait the attempt's end settles. */
interface Waiting {
  over(why: Why): void;
}

/**
 * One wait of {@link Attempt.race}: settled by the first of the awaited promise, the attempt's end
 * (`over`) and the `also` signal (an abort listener object: `handleEvent`); what comes after that
 * goes to the late handlers. A class, not closures: one object per request on the hot path.
 */
class Waiter<T> implements Waiting {
  private settled = false;

  constructor(
    private readonly waiters: Set<Waiting>,
    private readonly resolve: (value: T) => void,
    private readonly reject: (error: unknown) => void,
    private readonly unavailable: boolean,
    private readonly also: AbortSignal | undefined,
    private readonly late: Late<T> | undefined,
  ) {}

  value(value: T): void {
    if (this.settle()) this.resolve(value);
    else if (this.late?.value) quietly(() => this.late?.value?.(value));
  }

  error(error: unknown): void {
    if (this.settle()) this.reject(error);
    else if (this.late?.error) quietly(() => this.late?.error?.(error));
  }

  /** The attempt ended (deadline or abort). */
  over(why: Why): void {
    if (this.settle()) this.reject(new GiveUp(why, this.unavailable));
  }

  /** `also` aborted: resolves (undefined). */
  handleEvent(): void {
    if (this.settle()) this.resolve(undefined as T);
  }

  /** True the first time: stops listening. */
  private settle(): boolean {
    if (this.settled) return false;
    this.settled = true;
    this.waiters.delete(this);
    this.also?.removeEventListener('abort', this);
    return true;
  }
}

/** Runs a late handler: nothing it throws may become an unhandled rejection. */
function quietly(handler: () => void): void {
  try {
    handler();
  } catch {
    // a late handler only cleans up; it has no one to report to
  }
}

/** The node or its directory is missing. */
export function isNoNode(error: unknown): boolean {
  return ZooKeeperError.is(error, 'NO_NODE');
}

export function isNodeExists(error: unknown): boolean {
  return ZooKeeperError.is(error, 'NODE_EXISTS');
}

/**
 * Errors after which the request's outcome is unknown or the session changed: try again (on the
 * next session if need be). CLOSED here means a client thrown away with its session; when the
 * whole connection is closed, waiting for the next session fails instead. Anything else is
 * permanent for the attempt (NO_AUTH, INVALID_ACL, QUOTA_EXCEEDED, an unknown code: OTHER...).
 * THROTTLED (the server said "not now" and did not apply it) is retried after a back-off.
 */
const TRANSIENT: ZkErrorCode[] = ['CONNECTION_LOSS', 'OPERATION_TIMEOUT', 'SESSION_EXPIRED', 'CLOSED', 'THROTTLED'];
export function isTransient(error: unknown): boolean {
  return ZooKeeperError.is(error, ...TRANSIENT);
}
