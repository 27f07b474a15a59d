/**
 * One acquisition, from options to a handle: reentrancy, shutdown and connection checks, the
 * local queue (coalescing) or the recipe, and what a give-up means (busy, outage, abort).
 * `LockService` is the public face over this.
 */
import { setMaxListeners } from 'node:events';
import { hostname } from 'node:os';
import { performance } from 'node:perf_hooks';
import type { ZkConnectionService } from '../connection/zk-connection.service.js';
import { InvalidOptionsError } from '../errors/invalid-options.error.js';
import { LockAbortedError } from '../errors/lock-aborted.error.js';
import { LockLostError } from '../errors/lock-lost.error.js';
import { LockTimeoutError } from '../errors/lock-timeout.error.js';
import { NotConnectedError } from '../errors/not-connected.error.js';
import { ZkUnavailableError } from '../errors/zk-unavailable.error.js';
import { validateDuration } from '../zk-lock.options.js';
import { checkAcquireOptions, kindOf, type AcquireOptions } from './acquire-options.js';
import { outerInContext } from './lock-context.js';
import type { LockEventStream } from './lock-events.js';
import { HeldLock, type LockHandle } from './lock-handle.js';
import { validateLockPath } from './lock-path.js';
import { LocalLockQueues } from './local-queue.js';
import {
  acquireLease,
  acquireLock,
  deleteNode,
  GiveUp,
  settledWithin,
  type Acquired,
  type NodeKind,
} from './lock-recipe.js';

/** One call of `take`, as its steps see it. */
interface Attempt {
  path: string;
  kind: NodeKind;
  leases: number | undefined;
  timeout: number;
  options: AcquireOptions;
  /** false: a busy lock answers null (tryAcquire). */
  wait: boolean;
  /** false: one look, no wait (tryAcquire, timeout 0). */
  waits: boolean;
  /** The caller's signal and shutdown, together. */
  signal: AbortSignal;
  started: number;
  /** Build events (someone listens); internal nodes of the local queue never do. */
  events: boolean;
}

export class LockAcquirer {
  /** Locks held through this service, released at shutdown if their holders have not. */
  readonly held = new Set<HeldLock>();
  /** Aborts every wait when the application shuts down. */
  readonly stopping = new AbortController();
  /** Called when `held` becomes empty (shutdown waits for it). */
  drained: (() => void) | undefined;
  /** Owner data without its closing brace: `since` (and `leases`) are added per acquisition. */
  private readonly ownerPrefix: string;
  /** In-process coalescing, when the `coalesce` option is on. */
  private readonly local: LocalLockQueues | undefined;
  /** The owner data of the current second (see ownerData), shared by its acquisitions. */
  private cachedSecond = -1;
  private cachedData: Buffer | undefined;

  constructor(
    private readonly connection: ZkConnectionService,
    private readonly stream: LockEventStream,
  ) {
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

  timeoutOf(options: AcquireOptions): number {
    return validateDuration('timeout', options.timeout ?? this.connection.options.lockTimeout, {
      allowZero: true,
      allowInfinity: true,
    });
  }

  /**
   * `wait` false: give up at once when the lock is busy (null). `ownNode`: take a ZooKeeper node
   * even when coalescing (what the local queue itself does); such internal nodes emit no events.
   * Not an async function: a call without a signal of its own goes straight to the recipe (one
   * promise layer less between a reply and the next request); what its checks throw rejects.
   */
  take(path: string, options: AcquireOptions, wait: boolean, ownNode = false): Promise<LockHandle | null> {
    let a: Attempt;
    try {
      validateLockPath(path);
      checkAcquireOptions(options);
      const timeout = options.timeout ?? this.connection.options.lockTimeout;
      const { kind, leases } = kindOf(options);
      const nested = options.reentrant === false ? undefined : reenter(path, kind);
      if (nested) return Promise.resolve(nested);
      if (this.stopping.signal.aborted) throw shuttingDown(path);
      if (this.connection.state === 'closed') {
        throw new NotConnectedError(`cannot lock ${path}: the connection is closed`);
      }
      // timeout 0: one look, no wait (like tryAcquire, but a busy lock is a timeout).
      const waits = wait && timeout > 0;
      if (!waits) this.requireSession(path);
      const events = !ownNode && this.stream.observed();
      const started = events ? performance.now() : 0;
      // Waits end when the caller's signal aborts, or at once when the application shuts down
      // (without a signal of the caller's: the shutdown signal itself, nothing to link).
      const signal = this.stopping.signal;
      a = { path, kind, leases, timeout, options, wait, waits, signal, started, events };
    } catch (error) {
      return Promise.reject(error);
    }
    // Coalescing serves plain locks (no mode, no leases): read/write locks keep Curator's naming.
    const local = this.local && !ownNode && a.kind === 'write' && options.mode === undefined ? this.local : undefined;
    if (options.signal === undefined && local === undefined) return this.takeNode(a, ownNode);
    return this.takeLinked(a, local, ownNode);
  }

  /** {@link take} with the caller's signal linked to the shutdown signal, or through the local queue. */
  private async takeLinked(
    a: Attempt,
    local: LocalLockQueues | undefined,
    ownNode: boolean,
  ): Promise<LockHandle | null> {
    const linked = linkSignals(a.options.signal, this.stopping.signal);
    a.signal = linked.signal;
    try {
      if (local) {
        if (a.waits) return await this.takeLocal(local, a);
        if (await this.localBusy(local, a.path)) {
          // held or awaited by another caller of this process
          if (a.wait) throw new LockTimeoutError(a.path, a.timeout);
          return null;
        }
      }
      return await this.takeNode(a, ownNode);
    } finally {
      linked.unlink();
    }
  }

  /** A call that does not wait (tryAcquire, timeout 0) does not wait for a session either: an outage fails it at once. */
  private requireSession(path: string): void {
    const { state } = this.connection;
    // 'idle': a lazy connection not used yet; this use connects it (bounded by operationTimeout).
    if (state === 'connected' || state === 'idle') return;
    throw new ZkUnavailableError(
      path,
      state,
      'no connected session, and a call that does not wait does not wait for one',
    );
  }

  /** Waits in the process's local queue (coalescing). */
  private async takeLocal(local: LocalLockQueues, a: Attempt): Promise<LockHandle> {
    const since = { at: 0, node: '' };
    let lease;
    try {
      lease = await local.acquire(a.path, {
        timeout: a.timeout,
        signal: a.signal,
        revocable: a.options.revocable === true,
        abortError: () => this.givenUp(a),
        // Still waiting for ZooKeeper (no node held) without a connection: an outage, not a busy lock.
        timeoutError: (forNode) =>
          forNode && this.connection.state !== 'connected'
            ? this.unavailable(a, this.connection.state)
            : new LockTimeoutError(a.path, a.timeout),
        onEnd: (outcome) => {
          if (since.at > 0) this.stream.ended(a.path, a.kind, since.node, since.at, outcome);
        },
      });
    } catch (error) {
      if (error instanceof LockTimeoutError || error instanceof ZkUnavailableError) this.gaveUp(a, 'timed-out');
      else if (a.signal.aborted) this.gaveUp(a, 'aborted');
      throw error;
    }
    if (this.stopping.signal.aborted) {
      // Granted after shutdown began: never returned as held.
      await settledWithin(lease.release().catch(() => undefined));
      this.gaveUp(a, 'aborted');
      throw shuttingDown(a.path);
    }
    since.at = performance.now();
    since.node = lease.node;
    if (a.events) this.stream.acquired(lease, a.started);
    return lease;
  }

  /**
   * For a call that does not wait: is the lock held or awaited by another caller of this process?
   * A delete of the process's last node still in flight is waited for (up to operationTimeout).
   */
  private async localBusy(local: LocalLockQueues, path: string): Promise<boolean> {
    const release = local.releaseInFlight(path);
    if (release) await settledWithin(release, this.connection.options.operationTimeout);
    return local.busy(path);
  }

  /** Runs the recipe for a node of our own. */
  private async takeNode(a: Attempt, ownNode: boolean): Promise<LockHandle | null> {
    const { path, kind, timeout, options } = a;
    const now = performance.now();
    // No wait: one look, bounded by the request deadline.
    const deadline = !a.waits
      ? now + this.connection.options.operationTimeout
      : timeout === Infinity
        ? Infinity
        : now + timeout;
    let acquired: Acquired | null;
    try {
      acquired =
        kind === 'lease'
          ? await acquireLease(this.connection, {
              dir: path,
              data: this.ownerData(`,"leases":${a.leases}`),
              deadline,
              signal: a.signal,
              wait: a.waits,
              leases: a.leases!,
            })
          : await acquireLock(this.connection, {
              dir: path,
              data: this.ownerData(),
              deadline,
              signal: a.signal,
              wait: a.waits,
              kind,
              curatorWrite: options.mode === 'write',
            });
    } catch (error) {
      if (error instanceof GiveUp) return this.gaveUpWith(a, error);
      throw error;
    }
    if (!acquired) {
      if (!a.wait) return null;
      this.gaveUp(a, 'timed-out');
      throw new LockTimeoutError(path, timeout);
    }
    if (this.stopping.signal.aborted) {
      // Granted after shutdown began (it has taken its snapshot of held locks): never returned as held.
      // (at most CLEANUP_WAIT_MS: a delete cut off by a partition goes on in the background)
      await settledWithin(deleteNode(this.connection, acquired.node, acquired.session));
      this.gaveUp(a, 'aborted');
      throw shuttingDown(path);
    }
    return this.hold(a, acquired, ownNode);
  }

  private hold(a: Attempt, acquired: Acquired, ownNode: boolean): HeldLock {
    const { path, kind } = a;
    const acquiredAt = performance.now();
    const watchDelay = a.options.revocable === true ? 0 : this.connection.options.heldLockWatchDelay;
    const lock = new HeldLock(this.connection, path, kind, acquired, watchDelay, (l, outcome) => {
      this.held.delete(l);
      if (this.held.size === 0) this.drained?.();
      if (!ownNode) this.stream.ended(path, kind, l.node, acquiredAt, outcome);
    });
    if (!lock.released) this.held.add(lock); // (a session that ended meanwhile: already lost and forgotten)
    if (a.events) this.stream.acquired(lock, a.started);
    return lock;
  }

  /** The recipe gave up: aborted, an outage, or a busy lock. */
  private gaveUpWith(a: Attempt, error: GiveUp): null {
    if (error.why === 'aborted') {
      this.gaveUp(a, 'aborted');
      throw this.givenUp(a);
    }
    this.gaveUp(a, 'timed-out');
    // Out of time without a connection: we could not have seen the lock free (an outage, 503).
    const { state } = this.connection;
    if (state === 'closed') throw new NotConnectedError(`gave up waiting for ${a.path}: the connection was closed`);
    if (error.unavailable || state !== 'connected') throw this.unavailable(a, state);
    if (!a.wait) return null;
    throw new LockTimeoutError(a.path, a.timeout);
  }

  private unavailable(a: Attempt, state: string): ZkUnavailableError {
    const within = a.waits
      ? `the timeout of ${a.timeout} ms`
      : `operationTimeout (${this.connection.options.operationTimeout} ms)`;
    return new ZkUnavailableError(a.path, state, `no session or no reply within ${within}`);
  }

  private givenUp(a: Attempt): Error {
    const { signal } = a.options;
    return signal?.aborted ? new LockAbortedError(a.path, signal.reason) : shuttingDown(a.path);
  }

  private gaveUp(a: Attempt, type: 'timed-out' | 'aborted'): void {
    if (a.events) this.stream.gaveUp(type, a.path, a.kind, a.started);
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
}

/**
 * Reentrancy: a nested handle on the lock this call chain holds for `path`, if it holds one.
 * A lost or revoked lock fails the nested call at once with its LockLostError (queueing behind
 * our own lost lease or revoked node would wait for ourselves).
 */
function reenter(path: string, kind: NodeKind): LockHandle | undefined {
  const outer = outerInContext(path, kind);
  if (!outer) return undefined;
  if (kind === 'write' && outer.kind === 'read') {
    throw new InvalidOptionsError(
      'mode',
      'write',
      `this call chain holds the read lock on ${path}, which cannot be upgraded to a write lock (it would wait for itself): release it first, or take the write lock from the start`,
    );
  }
  if (!outer.stillHeld()) {
    const { reason } = outer.signal;
    throw reason instanceof LockLostError ? new LockLostError(path, reason.reason) : reason;
  }
  return outer.nest();
}

function shuttingDown(path: string): NotConnectedError {
  return new NotConnectedError(`gave up waiting for ${path}: the application is shutting down`);
}

const noop = (): void => undefined;

/**
 * One signal that aborts when `a` or `b` aborts, and `unlink` to remove its listeners
 * (AbortSignal.any costs ten times more, and keeps a reference in `b` per call).
 */
function linkSignals(a: AbortSignal | undefined, b: AbortSignal): { signal: AbortSignal; unlink: () => void } {
  if (!a || b.aborted) return { signal: b, unlink: noop };
  if (a.aborted) return { signal: a, unlink: noop };
  const controller = new AbortController();
  const onA = () => controller.abort(a.reason);
  const onB = () => controller.abort(b.reason);
  a.addEventListener('abort', onA, { once: true });
  b.addEventListener('abort', onB, { once: true });
  return {
    signal: controller.signal,
    unlink: () => {
      a.removeEventListener('abort', onA);
      b.removeEventListener('abort', onB);
    },
  };
}
