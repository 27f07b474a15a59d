/**
 * A leader election over the plain lock (the ZooKeeper recipe: ephemeral-sequential nodes, each
 * watching its predecessor; no TTL, no polling). An instance joins by taking the lock at the
 * election's path with `LockService.acquire(path, { timeout: Infinity })`, so every safety rule of
 * the lock applies (predecessor watch, presumed expiry, pzxid tokens). It holds the lock while it
 * leads, learns that it lost the lead from the handle's `signal`, and re-joins at the back of the
 * queue after a loss. Leaving deletes its node: the next instance is told at once.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { performance } from 'node:perf_hooks';
import type { Logger } from '@nestjs/common';
import type { Subject } from 'rxjs';
import { LockLostError, type LockLostReason } from '../errors/lock-lost.error.js';
import { NotConnectedError } from '../errors/not-connected.error.js';
import { runWithLock } from '../lock/lock-context.js';
import type { LeadershipEndReason } from '../lock/lock-events.js';
import type { LockHandle, OuterLock } from '../lock/lock-handle.js';
import { settledWithin } from '../lock/lock-recipe.js';
import type { LockService } from '../lock/lock.service.js';
import { DerivedLock } from './derived-lock.js';
import type { JobEventPublisher } from './job-events.js';

/** What an election calls on its leader's changes. */
export interface ElectionHooks {
  /**
   * This instance leads from now on. `lock.signal` aborts when the leadership ends. A throw (or a
   * rejection while still leading) makes the instance step down and re-join behind the others.
   */
  acquired?(lock: LockHandle): unknown;
  /** The leadership ended (after `lock.signal` aborted). Runs before the node is deleted at shutdown. */
  lost?(lock: LockHandle, reason: LeadershipEndReason): unknown;
}

/** One change of this instance's leadership of one election. */
export interface LeadershipChange {
  /** The election's path. */
  path: string;
  /** True: this instance became the leader; false: its leadership ended. */
  leader: boolean;
  /** The fencing token of the leadership that began or ended. */
  fencingToken: bigint;
  /** Why it ended (`leader: false`). */
  reason?: LeadershipEndReason;
  /** When (performance.now(), the monotonic clock of the process). */
  at: number;
}

/** What an election needs from its application. */
export interface ElectionContext {
  locks: LockService;
  events: JobEventPublisher;
  changes: Subject<LeadershipChange>;
  logger: Logger;
  /** Bound (ms) on waiting for the leader's running work and `onLeadershipLost` before the node goes. */
  shutdownTimeout: number;
}

/** A failed join is retried after 1 s, doubling to 30 s. */
const RETRY_FIRST_MS = 1_000;
const RETRY_MAX_MS = 30_000;
/** A second step-down in a row waits 100 ms before re-joining, doubling to 30 s. */
const STEP_DOWN_FIRST_MS = 100;

/** One leadership term of this instance: from the grant to the end of its signal. */
export class Term {
  private readonly controller = new AbortController();
  /** Aborts when the term ends (before `onLeadershipLost`, before the node goes). */
  readonly signal: AbortSignal = this.controller.signal;
  /** The handle `onLeadershipAcquired` gets; `release()` steps down. */
  readonly lock: DerivedLock;
  readonly startedAt = performance.now();
  /** Work that runs under this term (job runs, onLeadershipAcquired): waited for before the node goes. */
  readonly work = new Set<Promise<unknown>>();
  /** The node's data, read at the first run, written back by each run (its setData gives the run's token). */
  nodeData: Buffer | undefined;
  /** The node's data version after our last read or write: a run writes only over what it has seen. */
  nodeVersion = -1;
  /** The runs' token writes of this term, one at a time (each at the version the previous one left). */
  tokenTurn: Promise<unknown> = Promise.resolve();
  /** Its beginning was told (events, changes, onLeadershipAcquired): its end will be too. */
  announced = false;
  private reason: LeadershipEndReason | undefined;
  private resolveEnded!: (reason: LeadershipEndReason) => void;
  readonly ended = new Promise<LeadershipEndReason>((resolve) => (this.resolveEnded = resolve));
  private readonly onLoss = () => this.end(lossReason(this.handle.signal.reason));

  constructor(
    readonly path: string,
    readonly handle: LockHandle,
    private readonly onEnd: (term: Term, reason: LeadershipEndReason) => void,
  ) {
    const outer = handle as Partial<OuterLock>;
    this.lock = new DerivedLock(
      { path, node: handle.node, stillHeld: () => outer.stillHeld?.() ?? !handle.released },
      handle.fencingToken,
      this.signal,
      () => this.end('stepped-down'),
    );
    if (handle.signal.aborted) this.onLoss();
    else handle.signal.addEventListener('abort', this.onLoss, { once: true });
  }

  get node(): string {
    return this.handle.node;
  }

  get isOver(): boolean {
    return this.reason !== undefined;
  }

  /** Live: not ended, and the node is still ours (a due presumed loss ends the term here). */
  live(): boolean {
    if (this.reason !== undefined) return false;
    const outer = this.handle as Partial<OuterLock>;
    if (outer.stillHeld ? !outer.stillHeld() : this.handle.released) this.end(lossReason(this.handle.signal.reason));
    return this.reason === undefined;
  }

  /** Ends the term: its signal aborts (running work is told) before anything else happens. */
  end(reason: LeadershipEndReason): void {
    if (this.reason !== undefined) return;
    this.reason = reason;
    this.handle.signal.removeEventListener('abort', this.onLoss);
    this.controller.abort(new LockLostError(this.path, lockReasonOf(reason)));
    this.onEnd(this, reason);
    this.resolveEnded(reason);
  }

  /** Keeps `promise` in `work` until it settles. */
  track(promise: Promise<unknown>): void {
    const tracked: Promise<unknown> = promise.then(
      () => this.work.delete(tracked),
      () => this.work.delete(tracked),
    );
    this.work.add(tracked);
  }
}

/** The election of one path in one application. */
export class Election {
  private term: Term | undefined;
  private readonly stopping = new AbortController();
  private loop: Promise<void> | undefined;

  constructor(
    readonly path: string,
    /** Who joined it, for messages: `Class#method` or a class name. */
    readonly owner: string,
    private readonly context: ElectionContext,
    private readonly hooks: ElectionHooks = {},
    /** For a job's election: the job's method (`job-moved` events). */
    private readonly job?: string,
  ) {}

  /** Whether this instance leads right now: known locally, no request. */
  get isLeader(): boolean {
    return this.leaderTerm() !== undefined;
  }

  /** The current term if this instance leads right now (checked locally, no request). */
  leaderTerm(): Term | undefined {
    const term = this.term;
    return term?.live() ? term : undefined;
  }

  /** Joins (once): the node is created in the background; the leader is told through the hooks. */
  join(): void {
    this.loop ??= this.run().catch((error: unknown) =>
      this.context.logger.error(`Election ${this.path} (${this.owner}) stopped: ${String(error)}`),
    );
  }

  /**
   * Leaves: stops waiting, ends the term if leading (its signal aborts), waits for the running
   * work and `onLeadershipLost` (at most `shutdownTimeout`), then deletes the node.
   */
  async leave(): Promise<void> {
    this.stopping.abort();
    this.term?.end('shutdown');
    await this.loop;
  }

  private async run(): Promise<void> {
    let failures = 0;
    let stepDowns = 0;
    while (!this.stopping.signal.aborted) {
      const joined = performance.now();
      let handle: LockHandle;
      try {
        handle = await this.context.locks.acquire(this.path, {
          timeout: Infinity,
          signal: this.stopping.signal,
          reentrant: false,
          // Watch our node from the start: a deletion by someone else, or a release request
          // (LockService.requestRelease), ends the term at once.
          revocable: true,
        });
      } catch (error) {
        if (this.stopping.signal.aborted || error instanceof NotConnectedError) return;
        failures += 1;
        const wait = Math.min(RETRY_FIRST_MS * 2 ** (failures - 1), RETRY_MAX_MS);
        this.context.logger.warn(
          `Election ${this.path} (${this.owner}): joining failed, again in ${wait} ms: ${String(error)}`,
        );
        await pause(wait, this.stopping.signal);
        continue;
      }
      failures = 0;
      const reason = await this.serve(handle, joined);
      stepDowns = reason === 'stepped-down' ? stepDowns + 1 : 0;
      if (stepDowns > 1)
        await pause(Math.min(STEP_DOWN_FIRST_MS * 2 ** (stepDowns - 2), RETRY_MAX_MS), this.stopping.signal);
    }
  }

  /** One term, from the grant to the deletion of the node. */
  private async serve(handle: LockHandle, joined: number): Promise<LeadershipEndReason> {
    const term = new Term(this.path, handle, (t, reason) => this.termEnded(t, reason));
    this.term = term;
    if (this.stopping.signal.aborted)
      term.end('shutdown'); // granted while leaving: never announced
    else if (term.live()) {
      this.termStarted(term, joined);
      this.callAcquired(term);
    }
    const reason = await term.ended;
    if (this.term === term) this.term = undefined;
    // The lost hook; and while the node is still ours (shutdown, step-down, a release request),
    // the work still running (its signal has aborted), so that the next leader starts after it.
    // Both bounded by shutdownTimeout.
    const lost = term.announced ? this.callLost(term, reason) : Promise.resolve();
    const stillOurs = reason === 'shutdown' || reason === 'stepped-down' || reason === 'revoked';
    await settledWithin(Promise.all([lost, ...(stillOurs ? term.work : [])]), this.context.shutdownTimeout);
    await handle
      .release()
      .catch((error: unknown) =>
        this.context.logger.warn(`Election ${this.path} (${this.owner}): releasing its node: ${String(error)}`),
      );
    return reason;
  }

  private termStarted(term: Term, joined: number): void {
    term.announced = true;
    const { events, changes, logger } = this.context;
    const { path, job } = this;
    const { node, fencingToken } = term.handle;
    logger.debug(`${this.owner}: leader of ${path} (token ${fencingToken})`);
    events.publish('leadership-acquired', () => ({
      type: 'leadership-acquired',
      path,
      kind: 'write',
      at: Date.now(),
      node,
      fencingToken,
      waitMs: term.startedAt - joined,
    }));
    if (job !== undefined) {
      events.publish('job-moved', () => ({
        type: 'job-moved',
        path,
        kind: 'write',
        at: Date.now(),
        method: job,
        here: true,
      }));
    }
    changes.next({ path, leader: true, fencingToken, at: term.startedAt });
  }

  private termEnded(term: Term, reason: LeadershipEndReason): void {
    if (!term.announced) return; // (lost or left before it began: nobody was told it began)
    const { events, changes, logger } = this.context;
    const { path, job } = this;
    const at = performance.now();
    logger.debug(`${this.owner}: no longer leader of ${path}: ${reason}`);
    events.publish('leadership-lost', () => ({
      type: 'leadership-lost',
      path,
      kind: 'write',
      at: Date.now(),
      node: term.node,
      holdMs: at - term.startedAt,
      reason,
    }));
    if (job !== undefined) {
      events.publish('job-moved', () => ({
        type: 'job-moved',
        path,
        kind: 'write',
        at: Date.now(),
        method: job,
        here: false,
        reason,
      }));
    }
    changes.next({ path, leader: false, fencingToken: term.handle.fencingToken, reason, at });
  }

  private callAcquired(term: Term): void {
    const { hooks } = this;
    if (!hooks.acquired) return;
    let result: unknown;
    try {
      result = runWithLock(term.lock, () => hooks.acquired!(term.lock));
    } catch (error) {
      this.acquiredFailed(term, error);
      return;
    }
    if (isThenable(result))
      term.track(Promise.resolve(result).catch((error: unknown) => this.acquiredFailed(term, error)));
  }

  private acquiredFailed(term: Term, error: unknown): void {
    const { logger } = this.context;
    if (term.isOver) {
      // Thrown after the leadership ended (e.g. by the aborted signal): not a reason to step down.
      logger.debug(`${this.owner}: onLeadershipAcquired ended with ${String(error)} after the leadership ended`);
      return;
    }
    logger.error(
      `${this.owner}: onLeadershipAcquired failed; stepping down from ${this.path} and re-joining: ${String(error)}`,
      error instanceof Error ? error.stack : undefined,
    );
    term.end('stepped-down');
  }

  private async callLost(term: Term, reason: LeadershipEndReason): Promise<void> {
    const { hooks } = this;
    if (!hooks.lost) return;
    try {
      await hooks.lost(term.lock, reason);
    } catch (error) {
      this.context.logger.error(
        `${this.owner}: onLeadershipLost failed: ${String(error)}`,
        error instanceof Error ? error.stack : undefined,
      );
    }
  }
}

/** The LockLostReason of a handle's aborted signal. */
function lossReason(reason: unknown): LeadershipEndReason {
  return reason instanceof LockLostError ? reason.reason : 'connection-lost';
}

/** The LockLostError reason a term's signal carries. */
function lockReasonOf(reason: LeadershipEndReason): LockLostReason {
  if (reason === 'shutdown') return 'closed';
  if (reason === 'stepped-down') return 'revoked';
  return reason;
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as { then?: unknown } | null)?.then === 'function';
}

/** Waits `ms`, or until `signal` aborts; never rejects. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return sleep(ms, undefined, { signal, ref: false }).catch(() => undefined);
}
