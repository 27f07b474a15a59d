import { ZkLockError } from './zk-lock.error.js';

/** Why a held lock stopped being ours. */
export type LockLostReason =
  /** The server told us the session expired. */
  | 'session-expired'
  /** We were cut off from every server for about the session timeout: the server has expired, or is about to expire, the session. */
  | 'connection-lost'
  /** Our lock node was deleted by someone else. */
  | 'node-deleted'
  /** The connection was closed (application shutdown) while the lock was held. */
  | 'closed'
  /**
   * Someone asked the holder to release (`LockService.requestRelease`, or Curator's Revoker).
   * The node is still ours until `release()`: stop, then release soon.
   */
  | 'revoked'
  /** The outer holder of a reentrant (nested) acquisition released the lock: this handle was a nested one. */
  | 'outer-released';

/**
 * A held lock is no longer ours. A handle's `signal` aborts with this error as its reason;
 * stop the critical section and do not write with the old fencing token.
 */
export class LockLostError extends ZkLockError {
  readonly code = 'ZK_LOCK_LOST';

  constructor(
    readonly path: string,
    readonly reason: LockLostReason,
  ) {
    super(`Lost lock "${path}": ${LOST_TEXT[reason]}`);
  }
}

const LOST_TEXT: Record<LockLostReason, string> = {
  'session-expired': 'the ZooKeeper session expired',
  'connection-lost': 'cut off from ZooKeeper for longer than the session timeout',
  'node-deleted': 'the lock node was deleted by someone else',
  closed: 'the ZooKeeper connection was closed',
  revoked: 'another owner asked for it to be released (revocation); release it',
  'outer-released': 'the outer holder released the lock (this handle was a nested, reentrant one)',
};
