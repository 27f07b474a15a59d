import { setMaxListeners } from 'node:events';
import { hostname } from 'node:os';
import { performance } from 'node:perf_hooks';
import { Injectable, Logger, type BeforeApplicationShutdown } from '@nestjs/common';
import { Subject, type Observable } from 'rxjs';
import { ZkConnectionService } from '../connection/zk-connection.service.js';
import { InvalidOptionsError } from '../errors/invalid-options.error.js';
import { LockAbortedError } from '../errors/lock-aborted.error.js';
import { LockTimeoutError } from '../errors/lock-timeout.error.js';
import { NotConnectedError } from '../errors/not-connected.error.js';
import { ZooKeeperError } from '../errors/zookeeper.error.js';
import { validateDuration } from '../zk-lock.options.js';
import { anyHeldInContext, heldInContext, innermostInContext, runWithLock } from './lock-context.js';
import { describeEvent, type LockEvent } from './lock-events.js';
import { HeldLock, REVOKE_MARKER, ReentrantLock, type LockHandle, type LockOutcome } from './lock-handle.js';
import { validateLockPath } from './lock-path.js';
import { LocalLockQueues } from './local-queue.js';
import {
  acquireLease,
  acquireLock,
  blockerOf,
  GiveUp,
  lockQueue,
  type NodeKind,
  type QueueNode,
} from './lock-recipe.js';
import { MultiLock, releaseAll, type MultiLockHandle } from './multi-lock.js';

/** `write`: exclusive (the default). `read`: shared with other reads, excluded by writes. */
export type LockMode = 'read' | 'write';

/** The most leases a semaphore may have. */
export const MAX_LEASES = 10_000;

export interface AcquireOptions {
  /** How long to wait for the lock, in ms (0: do not wait; `Infinity`: no limit). Default: the module's `lockTimeout`. */
  timeout?: number;
  /** Gives up waiting when it aborts. */
  signal?: AbortSignal;
  /**
   * Inside `withLock` (or a locked method) on the same path, return the held lock instead of
   * queueing behind it. Default true; false always queues (and so waits for the outer holder).
   * A held write lock covers nested reads; a held read lock cannot be upgraded to a write.
   */
  reentrant?: boolean;
  /**
   * `write` (default): exclusive. `read`: shared with other readers; a reader waits only for the
   * last writer queued before it, and a writer waits for everyone queued before it (FIFO, so a
   * waiting writer is not starved by new readers).
   */
  mode?: LockMode;
  /**
   * Let other owners ask this holder to release (`requestRelease`): watch our node from the start
   * instead of after `heldLockWatchDelay`, so a request is seen at once (one more request per
   * acquisition). A request aborts the handle's `signal` with reason `revoked`. Default false.
   */
  revocable?: boolean;
  /**
   * A counting semaphore: at most `leases` holders of `path` at once (1..10000). Every caller of
   * one semaphore must use the same number. Leases are kept under `<path>/leases`.
   */
  leases?: number;
}

/** Who holds or waits for a lock, from the data in its node. */
export interface LockOwner {
  /** Node name, e.g. `_c_<uuid>-lock-0000000042`. */
  node: string;
  /** `write`, `read`, or `lease` (a semaphore lease, or a wait for one). */
  kind: NodeKind;
  sequence: number;
  /** Owner data as written by the holder (host, pid, app, since), or the raw text for foreign nodes. */
  owner: { host?: string; pid?: number; app?: string; since?: string; leases?: number } | string | null;
  /** The ZooKeeper session that owns the node, 16 hex digits. */
  sessionId: string;
}

export interface LockInfo {
  path: string;
  /** The first current holder, or null when the lock is free. */
  holder: LockOwner | null;
  /** Every current holder: one writer, or any number of readers, or up to N semaphore leases. */
  holders: LockOwner[];
  /** Waiters in the order they will get the lock. */
  queue: LockOwner[];
}

/**
 * Distributed locks on ZooKeeper: exclusive, read/write, semaphores and multi-locks;
 * acquire / tryAcquire / acquireAll / withLock / inspect / events.
 * Knows nothing of Nest's request pipeline; usable by hand (`new LockService(connection)`).
 */
@Injectable()
export class LockService implements BeforeApplicationShutdown {
  private readonly logger = new Logger(LockService.name);
  /** Owner data without its closing brace: `since` (and `leases`) are added per acquisition. */
  private readonly ownerPrefix: string;
  /** Locks held through this service, released at shutdown if their holders have not. */
  private readonly held = new Set<HeldLock>();
  /** Aborts every wait when the application shuts down. */
  private readonly stopping = new AbortController();
  /** In-process coalescing, when the `coalesce` option is on. */
  private readonly local: LocalLockQueues | undefined;
  private readonly subject = new Subject<LockEvent>();

  /**
   * Every acquisition, release, loss, timeout and abort of this service (see {@link LockEvent}).
   * Hot: subscribe before locking; completes at application shutdown.
   *
   * @example
   * locks.events.pipe(filter((e) => e.type === 'lost')).subscribe((e) => alert(e.path, e.reason));
   */
  readonly events: Observable<LockEvent> = this.subject.asObservable();

  constructor(private readonly connection: ZkConnectionService) {
    const owner = { host: hostname().slice(0, 255), pid: process.pid, app: connection.options.appName };
    this.ownerPrefix = JSON.stringify(owner).slice(0, -1);
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
   * `mode: 'read'` takes a shared lock, `leases: N` one of a semaphore's N leases.
   *
   * @example
   * await using lock = await locks.acquire('/locks/report', { timeout: 5_000 });
   * await writeReport({ fencingToken: lock.fencingToken, signal: lock.signal });
   */
  acquire(path: string, options: AcquireOptions = {}): Promise<LockHandle> {
    return this.take(path, options, true) as Promise<LockHandle>; // never null when waiting
  }

  /** `acquire(path, { ...options, mode: 'read' })`: a shared lock, held together with other readers. */
  acquireRead(path: string, options: Omit<AcquireOptions, 'mode' | 'leases'> = {}): Promise<LockHandle> {
    return this.acquire(path, { ...options, mode: 'read' });
  }

  /** `acquire(path, { ...options, mode: 'write' })`: the exclusive lock, excluding readers too. */
  acquireWrite(path: string, options: Omit<AcquireOptions, 'mode' | 'leases'> = {}): Promise<LockHandle> {
    return this.acquire(path, { ...options, mode: 'write' });
  }

  /** Takes the lock only if it is free right now; `null` when someone else holds it. */
  tryAcquire(
    path: string,
    options: Pick<AcquireOptions, 'signal' | 'mode' | 'leases'> = {},
  ): Promise<LockHandle | null> {
    return this.take(path, { ...options, timeout: 0 }, false);
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
    const timeout = this.timeoutOf(options);
    const deadline = performance.now() + timeout;
    const taken: LockHandle[] = [];
    try {
      for (const path of order) {
        const left = timeout === Infinity ? Infinity : Math.max(0, deadline - performance.now());
        try {
          taken.push((await this.take(path, { ...options, timeout: left }, true))!);
        } catch (error) {
          throw error instanceof LockTimeoutError ? new LockTimeoutError(path, timeout) : error;
        }
      }
    } catch (error) {
      await releaseAll(taken).catch(() => undefined);
      throw error;
    }
    return new MultiLock(taken);
  }

  /**
   * Runs `fn` while holding the lock (or, given an array, all the locks) and releases it however
   * `fn` ends. Calls nested in `fn` that lock the same path get the held lock instead of
   * deadlocking (reentrancy per async call chain).
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
    try {
      return await runWithLock('locks' in lock ? lock.locks : lock, () => fn(lock as never));
    } finally {
      await lock.release();
    }
  }

  /** The lock held by the current call chain for `path` (or the innermost one), inside `withLock`. */
  current(path?: string): LockHandle | undefined {
    return path === undefined ? innermostInContext() : anyHeldInContext(validateLockPath(path));
  }

  /**
   * Who holds `path` and who waits, from the nodes' data, with each node's kind (write, read,
   * lease). A missing lock directory is a free lock.
   */
  async inspect(path: string): Promise<LockInfo> {
    validateLockPath(path);
    const children = await this.childrenOf(path);
    const holders: LockOwner[] = [];
    const queue: LockOwner[] = [];
    const nodes = await this.ownersOf(path, lockQueue(children));
    nodes.forEach((owner, index) => (blockerOf(nodes, index) ? queue : holders).push(owner));
    if (children.includes('leases')) {
      const leases = await this.ownersOf(
        `${path}/leases`,
        lockQueue(await this.childrenOf(`${path}/leases`), ['lease']),
      );
      const last = leases.at(-1)?.owner;
      const limit = typeof last === 'object' && last?.leases ? last.leases : leases.length;
      holders.push(...leases.slice(0, limit));
      queue.push(...leases.slice(limit));
      // Behind the inner lock's holder (whose lease is listed above) wait the other contenders.
      const waiting = await this.ownersOf(`${path}/locks`, lockQueue(await this.childrenOf(`${path}/locks`)));
      queue.push(...waiting.slice(1).map((owner) => ({ ...owner, kind: 'lease' as const })));
    }
    return { path, holder: holders[0] ?? null, holders, queue };
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
  async requestRelease(path: string): Promise<number> {
    const { holders } = await this.inspect(path);
    let asked = 0;
    for (const holder of holders) {
      const dir = holder.kind === 'lease' ? `${path}/leases` : path;
      try {
        await this.connection.setData(`${dir}/${holder.node}`, REVOKE_MARKER);
        asked += 1;
      } catch (error) {
        if (!(error instanceof ZooKeeperError && error.zkCode === 'NO_NODE')) throw error; // released meanwhile
      }
    }
    return asked;
  }

  /**
   * Shutdown, first half (the connection closes in the second): take no new locks and stop all
   * waits at once, give holders up to `shutdownTimeout` ms to finish and release, then release
   * what is still held. `events` completes after that.
   */
  async beforeApplicationShutdown(): Promise<void> {
    if (this.stopping.signal.aborted) return;
    this.stopping.abort();
    if (this.held.size > 0) {
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
    this.subject.complete();
  }

  private drained: (() => void) | undefined;

  private forget(lock: HeldLock): void {
    this.held.delete(lock);
    if (this.held.size === 0) this.drained?.();
  }

  private timeoutOf(options: AcquireOptions): number {
    return validateDuration('timeout', options.timeout ?? this.connection.options.lockTimeout, {
      allowZero: true,
      allowInfinity: true,
    });
  }

  /**
   * `wait` false: give up at once when the lock is busy (null). `ownNode`: take a ZooKeeper node
   * even when coalescing (what the local queue itself does); such internal nodes emit no events.
   */
  private async take(
    path: string,
    options: AcquireOptions,
    wait: boolean,
    ownNode = false,
  ): Promise<LockHandle | null> {
    validateLockPath(path);
    const timeout = this.timeoutOf(options);
    const { kind, leases } = kindOf(options);
    if (options.signal !== undefined && !(options.signal instanceof AbortSignal)) {
      throw new LockAbortedError(path, new TypeError('options.signal must be an AbortSignal'));
    }
    const held = options.reentrant === false ? undefined : heldInContext(path, kind);
    if (held) {
      if (kind === 'write' && held.kind === 'read') {
        throw new InvalidOptionsError(
          'mode',
          'write',
          `this call chain holds the read lock on ${path}, which cannot be upgraded to a write lock (it would wait for itself): release it first, or take the write lock from the start`,
        );
      }
      return new ReentrantLock(held);
    }
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
    const started = performance.now();
    const events = !ownNode && this.observed();
    const gaveUp = (type: 'timed-out' | 'aborted') => {
      if (events) this.emit({ type, path, kind, at: Date.now(), waitMs: performance.now() - started });
    };
    // Coalescing serves plain locks (no mode, no leases): read/write locks keep Curator's naming.
    const plain = kind === 'write' && options.mode === undefined;
    // timeout 0: one look, no wait (like tryAcquire, but a busy lock is a timeout).
    const waits = wait && timeout > 0;

    if (this.local && !ownNode && plain && waits) {
      const since = { at: 0, node: '' };
      try {
        const lease = await this.local.acquire(path, timeout, signal, givenUp, (outcome) =>
          this.ended(true, path, kind, since.node, since.at, outcome),
        );
        since.at = performance.now();
        since.node = lease.node;
        if (events) this.acquired(lease, started);
        return lease;
      } catch (error) {
        if (error instanceof LockTimeoutError) gaveUp('timed-out');
        else if (signal.aborted) gaveUp('aborted');
        throw error;
      }
    }
    if (this.local && !ownNode && plain && this.local.busy(path)) {
      // held or awaited by another caller of this process
      if (wait) throw new LockTimeoutError(path, timeout);
      return null;
    }

    const data = kind === 'lease' ? this.ownerData(`,"leases":${leases}`) : this.ownerData();
    const request = {
      dir: path,
      data,
      // No wait: one look, bounded by the request deadline.
      deadline: !waits
        ? performance.now() + this.connection.options.operationTimeout
        : timeout === Infinity
          ? Infinity
          : performance.now() + timeout,
      signal,
      wait: waits,
    };
    try {
      const acquired =
        kind === 'lease'
          ? await acquireLease(this.connection, { ...request, leases: leases! })
          : await acquireLock(this.connection, { ...request, kind, curatorWrite: options.mode === 'write' });
      if (!acquired) {
        if (!wait) return null;
        gaveUp('timed-out');
        throw new LockTimeoutError(path, timeout);
      }
      const acquiredAt = performance.now();
      const lock = new HeldLock(
        this.connection,
        path,
        kind,
        acquired,
        options.revocable === true ? 0 : this.connection.options.heldLockWatchDelay,
        (l, outcome) => {
          this.forget(l);
          this.ended(!ownNode, path, kind, l.node, acquiredAt, outcome);
        },
      );
      if (!lock.released) this.held.add(lock); // (a session that ended meanwhile: already lost and forgotten)
      if (events) this.acquired(lock, started);
      return lock;
    } catch (error) {
      if (error instanceof GiveUp) {
        if (error.why === 'aborted') {
          gaveUp('aborted');
          throw givenUp();
        }
        if (!wait) return null;
        gaveUp('timed-out');
        throw new LockTimeoutError(path, timeout);
      }
      throw error;
    }
  }

  /**
   * The data written into our node: owner, and `since` to the second. Without `extra`, the
   * buffer is shared by the acquisitions of one second (the hot path makes no new one).
   */
  private ownerData(extra = ''): Buffer {
    const second = Math.floor(Date.now() / 1000);
    if (extra === '' && second === this.cachedSecond) return this.cachedData!;
    const since = new Date(second * 1000).toISOString().replace('.000Z', 'Z');
    const data = Buffer.from(`${this.ownerPrefix},"since":"${since}"${extra}}`);
    if (extra === '') {
      this.cachedSecond = second;
      this.cachedData = data;
    }
    return data;
  }
  private cachedSecond = -1;
  private cachedData: Buffer | undefined;

  /** Someone listens: build events (the hot path skips them otherwise). */
  private observed(): boolean {
    return this.subject.observed || this.connection.options.logEvents;
  }

  private emit(event: LockEvent): void {
    if (this.connection.options.logEvents) this.logger.debug(describeEvent(event));
    this.subject.next(event);
  }

  private acquired(lock: LockHandle, started: number): void {
    this.emit({
      type: 'acquired',
      path: lock.path,
      kind: lock.kind,
      at: Date.now(),
      node: lock.node,
      fencingToken: lock.fencingToken,
      waitMs: performance.now() - started,
    });
  }

  private ended(
    tracked: boolean,
    path: string,
    kind: NodeKind,
    node: string,
    since: number,
    outcome: LockOutcome,
  ): void {
    if (!tracked || !this.observed()) return;
    const base = { path, kind, node, at: Date.now(), holdMs: performance.now() - since };
    this.emit(outcome === 'released' ? { type: 'released', ...base } : { type: 'lost', ...base, reason: outcome });
  }

  private async childrenOf(path: string): Promise<string[]> {
    try {
      return (await this.connection.getChildren(path)).children;
    } catch (error) {
      if (error instanceof ZooKeeperError && error.zkCode === 'NO_NODE') return [];
      throw error;
    }
  }

  /** Owner data of `nodes` of `dir`, in order; nodes gone meanwhile are left out. */
  private async ownersOf(dir: string, nodes: QueueNode[]): Promise<LockOwner[]> {
    const owners = await Promise.all(
      nodes.map(async (node): Promise<LockOwner | null> => {
        try {
          const { data, stat } = await this.connection.getData(`${dir}/${node.name}`);
          return {
            node: node.name,
            kind: node.kind,
            sequence: node.sequence,
            owner: parseOwner(data),
            sessionId: stat.ephemeralOwner.toString(16).padStart(16, '0'),
          };
        } catch (error) {
          if (error instanceof ZooKeeperError && error.zkCode === 'NO_NODE') return null; // released meanwhile
          throw error;
        }
      }),
    );
    return owners.filter((owner) => owner !== null);
  }
}

/** What a request asks for: kind of node, and the semaphore size for leases. Throws on bad values. */
export function kindOf(options: Pick<AcquireOptions, 'mode' | 'leases'>): {
  kind: NodeKind;
  leases: number | undefined;
} {
  const { mode, leases } = options;
  if (mode !== undefined && mode !== 'read' && mode !== 'write') {
    throw new InvalidOptionsError('mode', mode, "must be 'read' or 'write'");
  }
  if (leases === undefined) return { kind: mode ?? 'write', leases };
  if (!Number.isInteger(leases) || leases < 1 || leases > MAX_LEASES) {
    throw new InvalidOptionsError('leases', leases, `must be a whole number from 1 to ${MAX_LEASES}`);
  }
  if (mode === 'read') {
    throw new InvalidOptionsError('mode', mode, 'a semaphore (leases) has no read mode: leave mode unset');
  }
  return { kind: 'lease', leases };
}

/** The global order of a multi-lock: validated, duplicates removed, sorted by code unit. */
export function lockOrder(paths: readonly string[]): string[] {
  if (!Array.isArray(paths) || paths.length === 0) {
    throw new InvalidOptionsError('paths', paths, 'must be a non-empty array of lock paths');
  }
  for (const path of paths) validateLockPath(path);
  return [...new Set(paths)].toSorted((a, b) => (a < b ? -1 : a > b ? 1 : 0));
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
