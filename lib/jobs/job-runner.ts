/**
 * THE one code path of a tick of `@OnOneInstance` / `@WithoutOverlapping`: decide locally whether
 * this instance runs it (a skip costs no request), take the run's token (one setData of our
 * election node) or the no-wait lock, run the body in the lock context, publish what happened.
 */
import { performance } from 'node:perf_hooks';
import {
  Injectable,
  Logger,
  type OnApplicationShutdown,
  type OnModuleDestroy,
  type OnModuleInit,
} from '@nestjs/common';
import { ZkConnectionService } from '../connection/zk-connection.service.js';
import { LockTimeoutError } from '../errors/lock-timeout.error.js';
import { NotConnectedError } from '../errors/not-connected.error.js';
import { ZkUnavailableError } from '../errors/zk-unavailable.error.js';
import { ZooKeeperError } from '../errors/zookeeper.error.js';
import { runWithLock } from '../lock/lock-context.js';
import type { JobSkipReason } from '../lock/lock-events.js';
import { REVOKE_MARKER, type LockHandle } from '../lock/lock-handle.js';
import { fencingToken } from '../lock/lock-recipe.js';
import { LockService } from '../lock/lock.service.js';
import { DerivedLock } from './derived-lock.js';
import type { Term } from './election.js';
import { JobEventPublisher } from './job-events.js';
import type { JobSpec } from './job.decorators.js';
import { defaultJobPath, jobsPathOf } from './jobs-path.js';
import { LeadershipService } from './leadership.service.js';

/** The paths of one job in one application. */
export interface JobPaths {
  /** `@OnOneInstance`: the election. */
  election: string | undefined;
  /** `@WithoutOverlapping` with a lock: alone, or with an explicit path next to `@OnOneInstance`. */
  overlap: string | undefined;
  /** The job's path in events and messages. */
  main: string;
}

/** Server codes after which a tick's outcome is unknown or the server unreachable: the tick skips with a warning. */
const UNAVAILABLE_CODES = ['CONNECTION_LOSS', 'OPERATION_TIMEOUT', 'SESSION_EXPIRED', 'CLOSED', 'THROTTLED'] as const;

/** Writes of a run's token that find the node written by someone else, at most, before the tick fails. */
const TOKEN_ATTEMPTS = 3;

/** Returned instead of a lock when the tick was skipped. */
const SKIPPED = Symbol('skipped');

@Injectable()
export class JobRunner implements OnModuleInit, OnModuleDestroy, OnApplicationShutdown {
  private readonly logger = new Logger('ZkJobs');
  private readonly events: JobEventPublisher;
  private readonly paths = new Map<JobSpec, JobPaths>();
  /** Runs in progress on this instance, per job. */
  private readonly running = new Map<JobSpec, number>();
  private stopping = false;

  constructor(
    private readonly locks: LockService,
    private readonly connection: ZkConnectionService,
    private readonly leadership: LeadershipService,
  ) {
    this.events = new JobEventPublisher(locks);
  }

  onModuleInit(): void {
    activeRunners.add(this);
  }

  /** From now on every tick skips (the elections are being left). */
  onModuleDestroy(): void {
    this.stopping = true;
  }

  onApplicationShutdown(): void {
    activeRunners.delete(this);
  }

  /** The job's paths in this application (defaults under the `jobsPath` option). */
  pathsOf(spec: JobSpec): JobPaths {
    let paths = this.paths.get(spec);
    if (!paths) {
      const fallback = defaultJobPath(jobsPathOf(this.connection.options), spec.className, spec.methodName);
      const election = spec.oneInstance ? (spec.oneInstance.path ?? fallback) : undefined;
      const overlap = spec.withoutOverlapping
        ? (spec.withoutOverlapping.path ?? (spec.oneInstance ? undefined : fallback))
        : undefined;
      paths = { election, overlap, main: election ?? overlap ?? fallback };
      this.paths.set(spec, paths);
    }
    return paths;
  }

  /** One tick: runs `body` here, or skips (resolving `undefined`). */
  tick(spec: JobSpec, body: () => unknown): Promise<unknown> {
    const paths = this.pathsOf(spec);
    if (this.stopping) return Promise.resolve(this.skip(spec, paths.main, 'stopping'));
    return spec.oneInstance ? this.tickOnHolder(spec, paths, body) : this.tickAnywhere(spec, paths, body);
  }

  /** `@OnOneInstance`: the holder runs; everyone else skips without a request. */
  private async tickOnHolder(spec: JobSpec, paths: JobPaths, body: () => unknown): Promise<unknown> {
    const path = paths.main;
    const term = this.leadership.electionOf(paths.election!, spec.method, spec.method).leaderTerm();
    if (!term) return this.skip(spec, path, 'not-leader');
    if (spec.withoutOverlapping && this.isRunning(spec)) return this.skip(spec, path, 'running');
    const leave = this.enter(spec); // (counts from here: a second tick during our setData skips)
    try {
      const { state } = this.connection;
      if (state !== 'connected') {
        return this.unavailable(spec, new ZkUnavailableError(path, state, 'no connected session for the tick'));
      }
      let token: bigint | undefined;
      try {
        token = await this.runToken(term);
      } catch (error) {
        return this.tokenFailed(spec, path, term, error);
      }
      if (token === undefined || !term.live()) return this.skip(spec, path, 'lost');
      const extra = paths.overlap === undefined ? undefined : await this.takeLock(spec, paths.overlap);
      if (extra === SKIPPED) return undefined;
      if (extra && !term.live()) {
        // The job moved while we took the lock: no run with an aborted signal, after the hand-over.
        await this.release(spec, paths.overlap!, extra);
        return this.skip(spec, path, 'lost');
      }
      const run = new DerivedLock(
        { path: term.path, node: term.node, stillHeld: () => term.live() },
        token,
        term.signal,
      );
      return await this.run(spec, path, extra ? [extra, run] : [run], token, body, term, () => run.finish());
    } finally {
      leave();
    }
  }

  /** `@WithoutOverlapping` alone: whoever takes the lock without waiting runs. */
  private async tickAnywhere(spec: JobSpec, paths: JobPaths, body: () => unknown): Promise<unknown> {
    const path = paths.overlap!;
    if (this.isRunning(spec)) return this.skip(spec, path, 'running'); // ours: no need to ask
    const leave = this.enter(spec);
    try {
      const lock = await this.takeLock(spec, path);
      if (lock === SKIPPED) return undefined;
      return await this.run(spec, path, [lock], lock.fencingToken, body, undefined, () => undefined);
    } finally {
      leave();
    }
  }

  /**
   * The run's fencing token: a setData of our own election node (its data written back as it
   * is). Its mzxid is a new zxid, above the pzxid that granted us the node and below the next
   * holder's (whose granting listing follows the deletion of our node): `mzxid << 16` grows with
   * every run and every holder. NO_NODE: the node is gone, so is the leadership. `undefined`: the
   * term ended meanwhile, or a release request is in the node.
   *
   * The write is conditional on the version we last saw, one at a time per term: a release
   * request (`requestRelease` writes `__REVOKE__`) that lands before our write is never
   * overwritten (the holder would miss it); BAD_VERSION reads the node again.
   */
  private runToken(term: Term): Promise<bigint | undefined> {
    const turn = term.tokenTurn.then(() => this.writeToken(term));
    term.tokenTurn = turn.catch(() => undefined);
    return turn;
  }

  private async writeToken(term: Term): Promise<bigint | undefined> {
    for (let attempt = 1; ; attempt += 1) {
      if (!term.live()) return undefined;
      if (term.nodeData === undefined) {
        const { data, stat } = await this.connection.getData(term.node);
        term.nodeData = data;
        term.nodeVersion = stat.version;
      }
      if (term.nodeData.equals(REVOKE_MARKER)) {
        term.end('revoked'); // (the node's own watch would say so too)
        return undefined;
      }
      try {
        const stat = await this.connection.setData(term.node, term.nodeData, term.nodeVersion);
        term.nodeVersion = stat.version;
        return fencingToken(stat.mzxid);
      } catch (error) {
        // Written by someone else since we last looked: look again (a few times at most).
        if (!ZooKeeperError.is(error, 'BAD_VERSION') || attempt === TOKEN_ATTEMPTS) throw error;
        term.nodeData = undefined;
      }
    }
  }

  private tokenFailed(spec: JobSpec, path: string, term: Term, error: unknown): undefined {
    if (ZooKeeperError.is(error, 'NO_NODE')) {
      term.end('node-deleted'); // the election re-joins
      return this.skip(spec, path, 'lost');
    }
    if (error instanceof NotConnectedError) return this.skip(spec, path, 'stopping');
    if (ZooKeeperError.is(error, ...UNAVAILABLE_CODES)) {
      return this.unavailable(spec, new ZkUnavailableError(path, this.connection.state, error.message));
    }
    throw error;
  }

  /** The lock at `path`, without waiting; SKIPPED (after saying why) when busy, unavailable or stopping. */
  private async takeLock(spec: JobSpec, path: string): Promise<LockHandle | typeof SKIPPED> {
    try {
      return await this.locks.acquire(path, { timeout: 0, reentrant: false });
    } catch (error) {
      if (error instanceof LockTimeoutError) this.skip(spec, path, 'busy');
      else if (error instanceof ZkUnavailableError) this.unavailable(spec, error);
      else if (error instanceof NotConnectedError) this.skip(spec, path, 'stopping');
      else throw error;
      return SKIPPED;
    }
  }

  /** Runs the body with `handles` in the lock context; the first handle (if not `derived`) is released after. */
  private async run(
    spec: JobSpec,
    path: string,
    handles: LockHandle[],
    token: bigint,
    body: () => unknown,
    term: Term | undefined,
    finish: () => void,
  ): Promise<unknown> {
    const started = performance.now();
    let failed = false;
    const work = (async () => runWithLock(handles, body))();
    term?.track(work);
    try {
      return await work;
    } catch (error) {
      failed = true;
      throw error;
    } finally {
      finish();
      const owned = handles.find((handle) => !(handle instanceof DerivedLock));
      if (owned) await this.release(spec, owned.path, owned);
      this.events.publish('job-ran', () => ({
        type: 'job-ran',
        path,
        kind: 'write',
        at: Date.now(),
        method: spec.method,
        fencingToken: token,
        durationMs: performance.now() - started,
        failed,
      }));
    }
  }

  private release(spec: JobSpec, path: string, lock: LockHandle): Promise<void> {
    return lock
      .release()
      .catch((failure: unknown) => this.logger.warn(`${spec.method}: releasing ${path}: ${String(failure)}`));
  }

  /** One debug line and an event; the call resolves `undefined`. */
  private skip(spec: JobSpec, path: string, reason: JobSkipReason): undefined {
    this.logger.debug(`${spec.method}: tick skipped (${reason}) on ${path}`);
    this.published(spec, path, reason);
    return undefined;
  }

  /** An outage: one warning line (no stack) and an event; the call resolves `undefined`. */
  private unavailable(spec: JobSpec, error: ZkUnavailableError): undefined {
    this.logger.warn(`${spec.method}: tick skipped, ${error.message}`);
    this.published(spec, error.path, 'unavailable');
    return undefined;
  }

  private published(spec: JobSpec, path: string, reason: JobSkipReason): void {
    this.events.publish('job-skipped', () => ({
      type: 'job-skipped',
      path,
      kind: 'write',
      at: Date.now(),
      method: spec.method,
      reason,
    }));
  }

  private isRunning(spec: JobSpec): boolean {
    return (this.running.get(spec) ?? 0) > 0;
  }

  /** Counts a run in progress; returns its end. */
  private enter(spec: JobSpec): () => void {
    this.running.set(spec, (this.running.get(spec) ?? 0) + 1);
    let left = false;
    return () => {
      if (left) return;
      left = true;
      const count = (this.running.get(spec) ?? 1) - 1;
      if (count === 0) this.running.delete(spec);
      else this.running.set(spec, count);
    };
  }
}

// ---- how a wrapped method finds its runner ----

/** Objects created by Nest, mapped to the job runner of their application (the explorer fills this). */
const runners = new WeakMap<object, JobRunner>();
/** Job runners of the applications alive in this process. */
const activeRunners = new Set<JobRunner>();

export function registerJobInstance(instance: object, runner: JobRunner): void {
  runners.set(instance, runner);
}

/**
 * The job runner for a call of a wrapped method: the one of the application that created
 * `instance`, else the only application alive in the process.
 */
export function jobRunnerFor(instance: object, method: string): JobRunner {
  const runner = runners.get(instance);
  if (runner) return runner;
  if (activeRunners.size === 1) return activeRunners.values().next().value!;
  throw new NotConnectedError(
    activeRunners.size === 0
      ? `${method} is a scheduled job (@OnOneInstance / @WithoutOverlapping), but no application with ZkLockModule is running`
      : `${method} is a scheduled job, but its object was not created by one of the ${activeRunners.size} running applications; create it through Nest`,
  );
}
