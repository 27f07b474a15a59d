import { performance } from 'node:perf_hooks';
import { Injectable, Logger, type BeforeApplicationShutdown } from '@nestjs/common';
import type { Observable } from 'rxjs';
import { ZkConnectionService } from '../connection/zk-connection.service.js';
import { LockTimeoutError } from '../errors/lock-timeout.error.js';
import { lockOrder, type AcquireOptions } from './acquire-options.js';
import { LockAcquirer } from './acquisition.js';
import { anyHeldInContext, innermostInContext, runWithLock } from './lock-context.js';
import { LockEventStream, type JobEvent, type LockEvent } from './lock-events.js';
import type { LockHandle } from './lock-handle.js';
import { inspectLock, requestRelease, type LockInfo } from './lock-inspection.js';
import { validateLockPath } from './lock-path.js';
import { MultiLock, releaseTaken, type MultiLockHandle } from './multi-lock.js';

export { kindOf, lockOrder, MAX_LEASES, type AcquireOptions, type LockMode } from './acquire-options.js';
export type { LockInfo, LockOwner } from './lock-inspection.js';

/**
 * Distributed locks on ZooKeeper: exclusive, read/write, semaphores and multi-locks;
 * acquire / tryAcquire / acquireAll / withLock / inspect / events.
 * Knows nothing of Nest's request pipeline; usable by hand (`new LockService(connection)`).
 */
@Injectable()
export class LockService implements BeforeApplicationShutdown {
  private readonly logger = new Logger(LockService.name);
  private readonly stream: LockEventStream;
  private readonly acquirer: LockAcquirer;

  /**
   * Every acquisition, release, loss, timeout and abort of this service (see {@link LockEvent}).
   * Hot: subscribe before locking; completes at application shutdown.
   *
   * @example
   * locks.events.pipe(filter((e) => e.type === 'lost')).subscribe((e) => alert(e.path, e.reason));
   */
  readonly events: Observable<LockEvent>;

  constructor(private readonly connection: ZkConnectionService) {
    this.stream = new LockEventStream(connection.options.logEvents);
    this.events = this.stream.events;
    this.acquirer = new LockAcquirer(connection, this.stream);
  }

  /**
   * Waits for the lock and returns its handle. Rejects with LockTimeoutError after `timeout` ms
   * when the lock is busy, ZkUnavailableError when ZooKeeper could not be reached in that time,
   * LockAbortedError when `signal` aborts; in every case nothing of the attempt is left.
   * Inside `withLock` on the same path, returns a nested handle on the held lock (reentrancy).
   * `mode: 'read'` takes a shared lock, `leases: N` one of a semaphore's N leases.
   *
   * @example
   * await using lock = await locks.acquire('/locks/report', { timeout: 5_000 });
   * await writeReport({ fencingToken: lock.fencingToken, signal: lock.signal });
   */
  acquire(path: string, options: AcquireOptions = {}): Promise<LockHandle> {
    return this.acquirer.take(path, options, true) as Promise<LockHandle>; // never null when waiting
  }

  /** `acquire(path, { ...options, mode: 'read' })`: a shared lock, held together with other readers. */
  acquireRead(path: string, options: Omit<AcquireOptions, 'mode' | 'leases'> = {}): Promise<LockHandle> {
    return this.acquire(path, { ...options, mode: 'read' });
  }

  /** `acquire(path, { ...options, mode: 'write' })`: the exclusive lock, excluding readers too. */
  acquireWrite(path: string, options: Omit<AcquireOptions, 'mode' | 'leases'> = {}): Promise<LockHandle> {
    return this.acquire(path, { ...options, mode: 'write' });
  }

  /**
   * Takes the lock only if it is free right now; `null` when someone else holds it. Without a
   * connected session it rejects at once with ZkUnavailableError (an outage is not a busy lock).
   */
  tryAcquire(
    path: string,
    options: Pick<AcquireOptions, 'signal' | 'mode' | 'leases'> = {},
  ): Promise<LockHandle | null> {
    return this.acquirer.take(path, { ...options, timeout: 0 }, false);
  }

  /**
   * Takes every lock of `paths` (all-or-nothing): in one global order (sorted, duplicates
   * removed), so that callers asking for {A, B} and {B, A} cannot deadlock. `timeout` covers
   * the whole; if any part fails, the parts already taken are released before this rejects.
   * `mode` and `leases` apply to every path.
   *
   * @example
   * await using both = await locks.acquireAll(['/locks/account/1', '/locks/account/2'], { timeout: 2_000 });
   */
  async acquireAll(paths: readonly string[], options: AcquireOptions = {}): Promise<MultiLockHandle> {
    const order = lockOrder(paths);
    const timeout = this.acquirer.timeoutOf(options);
    const deadline = performance.now() + timeout;
    const taken: LockHandle[] = [];
    try {
      for (const path of order) {
        const left = timeout === Infinity ? Infinity : Math.max(0, deadline - performance.now());
        try {
          taken.push((await this.acquirer.take(path, { ...options, timeout: left }, true))!);
        } catch (error) {
          throw error instanceof LockTimeoutError ? new LockTimeoutError(path, timeout) : error;
        }
      }
    } catch (error) {
      await releaseTaken(taken); // (at most CLEANUP_WAIT_MS: a release cut off goes on in the background)
      throw error;
    }
    return new MultiLock(taken);
  }

  /**
   * Runs `fn` while holding the lock (or, given an array, all the locks) and releases it however
   * `fn` ends. Calls nested in `fn` that lock the same path get a nested handle on the held lock
   * instead of deadlocking (reentrancy per async call chain); the lock goes when `fn` ends, and
   * nested handles still in use are told first (their `signal` aborts). Rejects with `fn`'s
   * error, or with the release's when only the release failed (the node stays).
   */
  withLock<T>(path: string, fn: (lock: LockHandle) => T | Promise<T>, options?: AcquireOptions): Promise<T>;
  withLock<T>(
    paths: readonly string[],
    fn: (locks: MultiLockHandle) => T | Promise<T>,
    options?: AcquireOptions,
  ): Promise<T>;
  async withLock<T>(
    target: string | readonly string[],
    fn: (lock: never) => T | Promise<T>,
    options: AcquireOptions = {},
  ): Promise<T> {
    const lock =
      typeof target === 'string' ? await this.acquire(target, options) : await this.acquireAll(target, options);
    let result: T;
    try {
      result = await runWithLock('locks' in lock ? lock.locks : lock, () => fn(lock as never));
    } catch (error) {
      await lock
        .release()
        .catch((failure: unknown) => this.logger.warn(`Releasing ${String(target)}: ${String(failure)}`));
      throw error;
    }
    await lock.release();
    return result;
  }

  /**
   * The lock held by the current call chain for `path` (or the innermost one), inside `withLock`;
   * never a released or lost one.
   */
  current(path?: string): LockHandle | undefined {
    return path === undefined ? innermostInContext() : anyHeldInContext(validateLockPath(path));
  }

  /**
   * Who holds `path` and who waits, from the nodes' data, with each node's kind (write, read,
   * lease). A missing lock directory is a free lock.
   */
  inspect(path: string): Promise<LockInfo> {
    return inspectLock(this.connection, path);
  }

  /**
   * Asks the current holder(s) of `path` to release (cooperative revocation): writes Curator's
   * revocation marker into each holder's node; a holder that watches its node (acquired with
   * `revocable: true`, or held longer than `heldLockWatchDelay`) sees its handle's `signal`
   * abort with reason `revoked` and should release. Nothing is deleted; resolves with the number
   * of holders asked (readers and leases: all of them).
   *
   * @example
   * const asked = await locks.requestRelease('/locks/nightly-report');
   */
  requestRelease(path: string): Promise<number> {
    return requestRelease(this.connection, path);
  }

  /**
   * Internal (scheduled jobs and elections, lib/jobs): puts their events on {@link events} (and
   * the debug log with `logEvents`), when someone listens.
   */
  publish(event: JobEvent): void {
    if (this.stream.observed()) this.stream.emit(event);
  }

  /**
   * Shutdown, first half (the connection closes in the second): take no new locks and stop all
   * waits at once, give holders up to `shutdownTimeout` ms to finish and release, then release
   * what is still held. `events` completes after that. An acquisition that completes after this
   * began is released at once and rejects (it is never returned as held).
   */
  async beforeApplicationShutdown(): Promise<void> {
    const { held, stopping } = this.acquirer;
    if (stopping.signal.aborted) return;
    stopping.abort();
    if (held.size > 0) {
      const timeout = this.connection.options.shutdownTimeout; // validated: at most 2^31-1 ms
      this.logger.log(`Shutting down: waiting up to ${timeout} ms for ${held.size} held lock(s)`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, timeout);
        this.acquirer.drained = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.acquirer.drained = undefined;
      const left = [...held];
      if (left.length > 0) this.logger.warn(`Releasing ${left.length} lock(s) still held after ${timeout} ms`);
      // Their holders are told (signal aborts with reason 'closed') before the nodes go.
      await Promise.all(
        left.map((lock) =>
          lock.revoke('closed').catch((error: unknown) => this.logger.warn(`Releasing ${lock.path}: ${String(error)}`)),
        ),
      );
    }
    this.stream.complete();
  }
}
