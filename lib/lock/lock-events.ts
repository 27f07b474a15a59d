import type { LockLostReason } from '../errors/lock-lost.error.js';
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
