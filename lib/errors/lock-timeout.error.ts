import { ZkLockError } from './zk-lock.error.js';

/** The lock was not acquired within the wait timeout. Nothing of the attempt is left on the server. */
export class LockTimeoutError extends ZkLockError {
  readonly code = 'ZK_LOCK_TIMEOUT';

  constructor(
    readonly path: string,
    readonly timeout: number,
  ) {
    super(`Timed out after ${timeout} ms waiting for lock "${path}": it is held by another owner`);
  }
}
