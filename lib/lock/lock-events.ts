import { performance } from 'node:perf_hooks';
import { Logger } from '@nestjs/common';
import { Subject, type Observable } from 'rxjs';
import type { LockLostReason } from '../errors/lock-lost.error.js';
import type { LockOutcome } from './lock-handle.js';
import type { NodeKind } from './lock-recipe.js';

interface LockEventBase {
  /** The lock's path. */
  path: string;
  /** `write`, `read` or `lease`. */
  kind: NodeKind;
  /** When the event happened (ms since the epoch). */
  at: number;
}

/** A lock was acquired after waiting `waitMs`. */
export interface LockAcquiredEvent extends LockEventBase {
  type: 'acquired';
  node: string;
  fencingToken: bigint;
  waitMs: number;
}

/** The holder released the lock after holding it `holdMs`. */
export interface LockReleasedEvent extends LockEventBase {
  type: 'released';
  node: string;
  holdMs: number;
}

/** The lock stopped being ours while held (see {@link LockLostReason}). */
export interface LockLostEvent extends LockEventBase {
  type: 'lost';
  node: string;
  holdMs: number;
  reason: LockLostReason;
}

/** A wait ended without the lock: `timed-out` after the timeout, `aborted` by the caller's signal or shutdown. */
export interface LockGaveUpEvent extends LockEventBase {
  type: 'timed-out' | 'aborted';
  waitMs: number;
}

/** Why a scheduled job's tick did not run here (see `@OnOneInstance`, `@WithoutOverlapping`). */
export type JobSkipReason =
  /** Another instance holds the job (`@OnOneInstance`): known locally, no request. */
  | 'not-leader'
  /** A run of the job is still in progress on this instance (`@WithoutOverlapping`): no request. */
  | 'running'
  /** A run is in progress on another instance (`@WithoutOverlapping`: its lock was busy). */
  | 'busy'
  /** ZooKeeper could not be reached for the tick (an outage; logged as a warning). */
  | 'unavailable'
  /** The job's leadership ended between the tick and its run (its node was gone): the instance re-joins. */
  | 'lost'
  /** The application is shutting down. */
  | 'stopping';

/** A tick of a scheduled job was skipped on this instance; the call resolved `undefined`. */
export interface JobSkippedEvent extends LockEventBase {
  type: 'job-skipped';
  /** `ClassName#method`. */
  method: string;
  reason: JobSkipReason;
}

/** A run of a scheduled job ended on this instance (the method returned, threw or rejected). */
export interface JobRanEvent extends LockEventBase {
  type: 'job-ran';
  method: string;
  /** The run's fencing token (it grows with every run and every new holder). */
  fencingToken: bigint;
  durationMs: number;
  /** True when the method threw or rejected (its error went to the caller). */
  failed: boolean;
}

/** An `@OnOneInstance` job moved to this instance (`here: true`) or away from it (`here: false`). */
export interface JobMovedEvent extends LockEventBase {
  type: 'job-moved';
  method: string;
  here: boolean;
  /** Why it moved away (with `here: false`). */
  reason?: LeadershipEndReason;
}

/** How a leadership term of this instance ended. */
export type LeadershipEndReason =
  /** The election node was lost (session expired or presumed lost, node deleted, revoked). */
  | LockLostReason
  /** The application shut down (or the election was left): the node was deleted, the next instance took over at once. */
  | 'shutdown'
  /** `onLeadershipAcquired` threw, or the leader's handle was released: this instance stepped down and re-joined at the back. */
  | 'stepped-down';

/** This instance became the leader of an election (`@LeaderElection`, `@OnOneInstance`, `LeadershipService.join`). */
export interface LeadershipAcquiredEvent extends LockEventBase {
  type: 'leadership-acquired';
  node: string;
  fencingToken: bigint;
  /** From joining the election to becoming its leader. */
  waitMs: number;
}

/** This instance's leadership ended (its `signal` aborted before this event). */
export interface LeadershipLostEvent extends LockEventBase {
  type: 'leadership-lost';
  node: string;
  holdMs: number;
  reason: LeadershipEndReason;
}

/** The events of scheduled jobs and elections (also published on `node:diagnostics_channel`). */
export type JobEvent = JobSkippedEvent | JobRanEvent | JobMovedEvent | LeadershipAcquiredEvent | LeadershipLostEvent;

/**
 * What `LockService.events` emits, one per acquisition and one when it ends. Reentrant (nested)
 * acquisitions of a held lock emit nothing; with `coalesce`, every local holder is an acquisition.
 * Scheduled jobs and elections add their own events ({@link JobEvent}).
 */
export type LockEvent = LockAcquiredEvent | LockReleasedEvent | LockLostEvent | LockGaveUpEvent | JobEvent;

/** One line for the debug log. */
export function describeEvent(event: LockEvent): string {
  const what = `${event.kind} lock ${event.path}`;
  switch (event.type) {
    case 'acquired':
      return `acquired ${what} after ${event.waitMs.toFixed(1)} ms (token ${event.fencingToken})`;
    case 'released':
      return `released ${what} after holding it ${event.holdMs.toFixed(1)} ms`;
    case 'lost':
      return `LOST ${what} after holding it ${event.holdMs.toFixed(1)} ms: ${event.reason}`;
    case 'job-skipped':
      return `skipped a tick of ${event.method} (${event.path}): ${event.reason}`;
    case 'job-ran':
      return `ran ${event.method} (${event.path}) in ${event.durationMs.toFixed(1)} ms (token ${event.fencingToken})${event.failed ? ', failed' : ''}`;
    case 'job-moved':
      return `job ${event.method} (${event.path}) moved ${event.here ? 'here' : `away: ${event.reason}`}`;
    case 'leadership-acquired':
      return `leader of ${event.path} after ${event.waitMs.toFixed(1)} ms (token ${event.fencingToken})`;
    case 'leadership-lost':
      return `no longer leader of ${event.path} after ${event.holdMs.toFixed(1)} ms: ${event.reason}`;
    default:
      return `${event.type === 'timed-out' ? 'timed out waiting' : 'gave up waiting'} for ${what} after ${event.waitMs.toFixed(1)} ms`;
  }
}

/** The event stream of one LockService: built only while someone listens (or events are logged). */
export class LockEventStream {
  private readonly logger = new Logger('LockService');
  private readonly subject = new Subject<LockEvent>();
  readonly events: Observable<LockEvent> = this.subject.asObservable();

  constructor(private readonly logEvents: boolean) {}

  /** Someone listens: build events (the hot path skips them otherwise). */
  observed(): boolean {
    return this.subject.observed || this.logEvents;
  }

  emit(event: LockEvent): void {
    if (this.logEvents) this.logger.debug(describeEvent(event));
    this.subject.next(event);
  }

  acquired(lock: { path: string; kind: NodeKind; node: string; fencingToken: bigint }, started: number): void {
    const { path, kind, node, fencingToken } = lock;
    this.emit({
      type: 'acquired',
      path,
      kind,
      at: Date.now(),
      node,
      fencingToken,
      waitMs: performance.now() - started,
    });
  }

  ended(path: string, kind: NodeKind, node: string, since: number, outcome: LockOutcome): void {
    if (!this.observed()) return;
    const base = { path, kind, node, at: Date.now(), holdMs: performance.now() - since };
    this.emit(outcome === 'released' ? { type: 'released', ...base } : { type: 'lost', ...base, reason: outcome });
  }

  gaveUp(type: 'timed-out' | 'aborted', path: string, kind: NodeKind, started: number): void {
    this.emit({ type, path, kind, at: Date.now(), waitMs: performance.now() - started });
  }

  complete(): void {
    this.subject.complete();
  }
}
