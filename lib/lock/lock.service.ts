import { setMaxListeners } from 'node:events';
import { hostname } from 'node:os';
import { Injectable, Logger, type BeforeApplicationShutdown } from '@nestjs/common';
import { ZkConnectionService } from '../connection/zk-connection.service.js';
import { LockAbortedError } from '../errors/lock-aborted.error.js';
import { LockTimeoutError } from '../errors/lock-timeout.error.js';
import { NotConnectedError } from '../errors/not-connected.error.js';
import { ZooKeeperError } from '../errors/zookeeper.error.js';
import { validateDuration } from '../zk-lock.options.js';
import { heldInContext, innermostInContext, runWithLock } from './lock-context.js';
import { HeldLock, ReentrantLock, type LockHandle } from './lock-handle.js';
import { validateLockPath } from './lock-path.js';
import { LocalLockQueues } from './local-queue.js';
import { acquireLock, GiveUp, sequenceOf, sortLockNodes } from './lock-recipe.js';

export interface AcquireOptions {
  /** How long to wait for the lock, in ms (0: do not wait; `Infinity`: no limit). Default: the module's `lockTimeout`. */
  timeout?: number;
  /** Gives up waiting when it aborts. */
  signal?: AbortSignal;
  /**
   * Inside `withLock` (or a locked method) on the same path, return the held lock instead of
   * queueing behind it. Default true; false always queues (and so waits for the outer holder).
   */
  reentrant?: boolean;
}

/** Who holds or waits for a lock, from the data in its node. */
export interface LockOwner {
  /** Node name, e.g. `_c_<uuid>-lock-0000000042`. */
  node: string;
  sequence: number;
  /** Owner data as written by the holder (host, pid, app, since), or the raw text for foreign nodes. */
  owner: { host?: string; pid?: number; app?: string; since?: string } | string | null;
  /** The ZooKeeper session that owns the node, 16 hex digits. */
  sessionId: string;
}

export interface LockInfo {
  path: string;
  /** The current holder, or null when the lock is free. */
  holder: LockOwner | null;
  /** Waiters in the order they will get the lock. */
  queue: LockOwner[];
}

/**
 * Distributed locks on ZooKeeper: acquire / tryAcquire / withLock / inspect.
 * Knows nothing of Nest's request pipeline; usable by hand (`new LockService(connection)`).
 */
@Injectable()
export class LockService implements BeforeApplicationShutdown {
  private readonly logger = new Logger(LockService.name);
  private readonly ownerData: Buffer;
  /** Locks held through this service, released at shutdown if their holders have not. */
  private readonly held = new Set<HeldLock>();
  /** Aborts every wait when the application shuts down. */
  private readonly stopping = new AbortController();
  /** In-process coalescing, when the `coalesce` option is on. */
  private readonly local: LocalLockQueues | undefined;

  constructor(private readonly connection: ZkConnectionService) {
    const owner = { host: hostname().slice(0, 255), pid: process.pid, app: connection.options.appName };
    this.ownerData = Buffer.from(JSON.stringify(owner));
    setMaxListeners(0, this.stopping.signal); // every waiter listens here
    const { coalesce } = connection.options;
    this.local = coalesce
      ? new LocalLockQueues(
          async (path, signal) =>
            (await this.take(path, { signal, timeout: Infinity, reentrant: false }, true, true)) as HeldLock,
          coalesce,
        )
      : undefined;
  }

  /**
   * Waits for the lock and returns its handle. Rejects with LockTimeoutError after `timeout` ms or
   * LockAbortedError when `signal` aborts; in both cases nothing of the attempt is left.
   * Inside `withLock` on the same path, returns the held lock (reentrancy) instead of waiting.
   *
   * @example
   * await using lock = await locks.acquire('/locks/report', { timeout: 5_000 });
   * await writeReport({ fencingToken: lock.fencingToken, signal: lock.signal });
   */
  async acquire(path: string, options: AcquireOptions = {}): Promise<LockHandle> {
    const handle = await this.take(path, options, true);
    return handle!;
  }

  /** Takes the lock only if it is free right now; `null` when someone else holds it. */
  tryAcquire(path: string, options: Pick<AcquireOptions, 'signal'> = {}): Promise<LockHandle | null> {
    return this.take(path, { ...options, timeout: this.connection.options.operationTimeout }, false);
  }

  /**
   * Runs `fn` while holding the lock and releases it however `fn` ends. Calls nested in `fn` that
   * lock the same path get the held lock instead of deadlocking (reentrancy per async call chain).
   */
  async withLock<T>(path: string, fn: (lock: LockHandle) => T | Promise<T>, options: AcquireOptions = {}): Promise<T> {
    validateLockPath(path);
    const held = options.reentrant === false ? undefined : heldInContext(path);
    if (held) return await fn(new ReentrantLock(held));
    const lock = await this.acquire(path, options);
    try {
      return await runWithLock(lock, () => fn(lock));
    } finally {
      await lock.release();
    }
  }

  /** The lock held by the current call chain for `path` (or the innermost one), inside `withLock`. */
  current(path?: string): LockHandle | undefined {
    return path === undefined ? innermostInContext() : heldInContext(validateLockPath(path));
  }

  /** Who holds `path` and who waits, from the nodes' data. A missing lock directory is a free lock. */
  async inspect(path: string): Promise<LockInfo> {
    validateLockPath(path);
    let children: string[];
    try {
      ({ children } = await this.connection.getChildren(path));
    } catch (error) {
      if (error instanceof ZooKeeperError && error.zkCode === 'NO_NODE') return { path, holder: null, queue: [] };
      throw error;
    }
    const owners = await Promise.all(
      sortLockNodes(children).map(async (node): Promise<LockOwner | null> => {
        try {
          const { data, stat } = await this.connection.getData(`${path}/${node}`);
          return {
            node,
            sequence: sequenceOf(node),
            owner: parseOwner(data),
            sessionId: stat.ephemeralOwner.toString(16).padStart(16, '0'),
          };
        } catch (error) {
          if (error instanceof ZooKeeperError && error.zkCode === 'NO_NODE') return null; // released meanwhile
          throw error;
        }
      }),
    );
    const present = owners.filter((owner): owner is LockOwner => owner !== null);
    return { path, holder: present[0] ?? null, queue: present.slice(1) };
  }

  /**
   * Shutdown, first half (the connection closes in the second): take no new locks and stop all
   * waits at once, give holders up to `shutdownTimeout` ms to finish and release, then release
   * what is still held.
   */
  async beforeApplicationShutdown(): Promise<void> {
    if (this.stopping.signal.aborted) return;
    this.stopping.abort();
    if (this.held.size === 0) return;
    const timeout = this.connection.options.shutdownTimeout;
    this.logger.log(`Shutting down: waiting up to ${timeout} ms for ${this.held.size} held lock(s)`);
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, timeout);
      this.drained = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    this.drained = undefined;
    const left = [...this.held];
    if (left.length > 0) this.logger.warn(`Releasing ${left.length} lock(s) still held after ${timeout} ms`);
    // Their holders are told (signal aborts with reason 'closed') before the nodes go.
    await Promise.all(left.map((lock) => lock.revoke('closed')));
  }

  private drained: (() => void) | undefined;

  private forget(lock: HeldLock): void {
    this.held.delete(lock);
    if (this.held.size === 0) this.drained?.();
  }

  /** `ownNode`: take a ZooKeeper node even when coalescing (what the local queue itself does). */
  private async take(
    path: string,
    options: AcquireOptions,
    wait: boolean,
    ownNode = false,
  ): Promise<LockHandle | null> {
    validateLockPath(path);
    const timeout = validateDuration('timeout', options.timeout ?? this.connection.options.lockTimeout, {
      allowZero: true,
      allowInfinity: true,
    });
    if (options.signal !== undefined && !(options.signal instanceof AbortSignal)) {
      throw new LockAbortedError(path, new TypeError('options.signal must be an AbortSignal'));
    }
    const held = options.reentrant === false ? undefined : heldInContext(path);
    if (held) return new ReentrantLock(held);
    if (this.stopping.signal.aborted) {
      throw new NotConnectedError(`cannot lock ${path}: the application is shutting down`);
    }
    if (this.connection.state === 'closed') {
      throw new NotConnectedError(`cannot lock ${path}: the connection is closed`);
    }
    // Waits end when the caller's signal aborts, or at once when the application shuts down.
    const signal = options.signal ? AbortSignal.any([options.signal, this.stopping.signal]) : this.stopping.signal;
    const givenUp = () =>
      options.signal?.aborted
        ? new LockAbortedError(path, options.signal.reason)
        : new NotConnectedError(`gave up waiting for ${path}: the application is shutting down`);
    if (this.local && !ownNode) {
      if (wait) return this.local.acquire(path, timeout, signal, givenUp);
      if (this.local.busy(path)) return null; // held or awaited by another caller of this process
    }
    const data = Buffer.concat([
      this.ownerData.subarray(0, -1),
      Buffer.from(`,"since":"${new Date().toISOString()}"}`),
    ]);
    try {
      const acquired = await acquireLock(this.connection, {
        dir: path,
        data,
        deadline: timeout === Infinity ? Infinity : Date.now() + timeout,
        signal,
        wait,
      });
      if (!acquired) return null;
      const lock = new HeldLock(this.connection, path, acquired, this.connection.options.heldLockWatchDelay, (l) =>
        this.forget(l),
      );
      this.held.add(lock);
      return lock;
    } catch (error) {
      if (error instanceof GiveUp) {
        if (error.why === 'aborted') throw givenUp();
        if (!wait) return null;
        throw new LockTimeoutError(path, timeout);
      }
      throw error;
    }
  }
}

function parseOwner(data: Buffer): LockOwner['owner'] {
  if (data.length === 0) return null;
  const text = data.toString('utf8');
  try {
    const value: unknown = JSON.parse(text);
    return value !== null && typeof value === 'object' ? value : text;
  } catch {
    return text.slice(0, 200);
  }
}
