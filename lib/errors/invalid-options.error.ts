import { describe } from './invalid-lock-path.error.js';
import { ZkLockError } from './zk-lock.error.js';

/** An option has a value that breaks its rule; thrown at start-up or at the call that got it. */
export class InvalidOptionsError extends ZkLockError {
  readonly code = 'ZK_LOCK_INVALID_OPTIONS';

  constructor(
    readonly option: string,
    readonly value: unknown,
    readonly rule: string,
  ) {
    super(`Invalid option ${option} = ${describe(value)}: ${rule}`);
  }
}
