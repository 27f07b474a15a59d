import { InvalidOptionsError } from '../errors/invalid-options.error.js';
import { validateDuration } from '../zk-lock.options.js';
import { validateLockPath } from './lock-path.js';
import type { NodeKind } from './lock-recipe.js';

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
   * Inside `withLock` (or a locked method) on the same path, get a nested handle on the held
   * lock instead of queueing behind it. Default true; false always queues (and so waits for the
   * outer holder). A held write lock covers nested reads; a held read lock cannot be upgraded to
   * a write. The nested handle's `signal` aborts before the outer holder's release deletes the
   * node; when the held lock was lost or revoked, the nested call fails at once with that
   * LockLostError.
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

const flag = (option: string, value: unknown): void => {
  if (typeof value !== 'boolean') throw new InvalidOptionsError(option, value, 'must be true or false');
};

/**
 * THE per-call options table: the check of each option of {@link AcquireOptions} (a given value;
 * a missing one takes the service's default), one entry per option, no more, no less (the
 * compiler says so). `given` is all the options (mode and leases are checked together).
 * `LockService` checks every call with it, `@DistributedLock` its declared options once.
 * A new per-call option is one field above plus one rule here.
 */
export const ACQUIRE_OPTION_RULES = {
  timeout: (value) => {
    validateDuration('timeout', value, { allowZero: true, allowInfinity: true });
  },
  signal: (value) => {
    if (!(value instanceof AbortSignal)) throw new InvalidOptionsError('signal', value, 'must be an AbortSignal');
  },
  reentrant: (value) => flag('reentrant', value),
  mode: (value, given) => {
    kindOf({ mode: value as LockMode, leases: given.leases });
  },
  leases: (value, given) => {
    kindOf({ mode: given.mode, leases: value as number });
  },
  revocable: (value) => flag('revocable', value),
} satisfies { readonly [K in keyof AcquireOptions]-?: (value: unknown, given: AcquireOptions) => void };

const RULE_ENTRIES = Object.entries(ACQUIRE_OPTION_RULES) as [
  keyof AcquireOptions,
  (value: unknown, given: AcquireOptions) => void,
][];

/** Checks every option that is set; throws InvalidOptionsError naming the option, the value and the rule. */
export function checkAcquireOptions(options: AcquireOptions): void {
  for (const [option, check] of RULE_ENTRIES) {
    const value = options[option];
    if (value !== undefined) check(value, options);
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
