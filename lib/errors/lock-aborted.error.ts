import { ZkLockError } from './zk-lock.error.js';

/** The caller's AbortSignal fired while waiting for the lock. Nothing of the attempt is left on the server. */
export class LockAbortedError extends ZkLockError {
  readonly code = 'ZK_LOCK_ABORTED';

  constructor(
    readonly path: string,
    reason?: unknown,
  ) {
    super(`Gave up waiting for lock "${path}": the caller's signal was aborted`, { cause: reason });
  }
}
