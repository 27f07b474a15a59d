import { ZkLockError } from './zk-lock.error.js';

/** A lock path (or a dynamic key) breaks a rule; the message names the value and the rule. */
export class InvalidLockPathError extends ZkLockError {
  readonly code = 'ZK_LOCK_INVALID_PATH';

  constructor(
    readonly path: unknown,
    readonly rule: string,
  ) {
    super(`Invalid lock path ${describe(path)}: ${rule}`);
  }
}

/** Shows a value in an error message: strings quoted with escapes, long ones shortened. */
export function describe(value: unknown): string {
  if (typeof value === 'string') {
    const shown = value.length > 80 ? `${value.slice(0, 80)}...(${value.length} chars)` : value;
    return JSON.stringify(shown);
  }
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean') return String(value);
  if (value === null || value === undefined) return String(value);
  return Object.prototype.toString.call(value);
}
