import { ZkLockError } from './zk-lock.error.js';

/** An operation was asked of a connection that is closed or shutting down. */
export class NotConnectedError extends ZkLockError {
  readonly code = 'ZK_LOCK_NOT_CONNECTED';

  constructor(detail: string) {
    super(`No ZooKeeper connection: ${detail}`);
  }
}
