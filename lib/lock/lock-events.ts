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

/**
 * What `LockService.events` emits, one per acquisition and one when it ends. Reentrant (nested)
 * acquisitions of a held lock emit nothing; with `coalesce`, every local holder is an acquisition.
 */
export type LockEvent = LockAcquiredEvent | LockReleasedEvent | LockLostEvent | LockGaveUpEvent;

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
