import { ZkLockError } from './zk-lock.error.js';

/**
 * ZooKeeper could not be reached in time: the call's deadline passed while there was no
 * session, or while a request of the attempt had no reply (an outage, not a busy lock).
 * Nothing of the attempt is left on the server (a node created meanwhile is deleted once the
 * session answers again, or goes with the session). The interceptor answers HTTP 503.
 */
export class ZkUnavailableError extends ZkLockError {
  readonly code = 'ZK_LOCK_UNAVAILABLE';

  constructor(
    readonly path: string,
    /** The connection state when the call gave up (`connecting`, `suspended`, `expired`, ...). */
    readonly state: string,
    detail: string,
  ) {
    super(`ZooKeeper unavailable (state: ${state}): ${detail} for lock "${path}"`);
  }
}
