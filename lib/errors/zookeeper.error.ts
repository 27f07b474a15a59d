import { ZkLockError } from './zk-lock.error.js';

/** ZooKeeper error codes the library tells apart; anything else is `OTHER`. */
export type ZkErrorCode =
  | 'NO_NODE'
  | 'NODE_EXISTS'
  | 'NOT_EMPTY'
  | 'BAD_VERSION'
  | 'NO_AUTH'
  | 'INVALID_ACL'
  | 'CONNECTION_LOSS'
  | 'SESSION_EXPIRED'
  | 'OPERATION_TIMEOUT'
  /** The server does not know the request (e.g. containers before ZooKeeper 3.5). */
  | 'UNIMPLEMENTED'
  /**
   * The server said "not now" and did not apply the request: throttling (THROTTLEDOP), its own
   * request timeout, a moved session, a reconfiguration in progress. The recipe backs off and retries.
   */
  | 'THROTTLED'
  /** A hard quota on the path's parent refused a create (stays until an operator raises it). */
  | 'QUOTA_EXCEEDED'
  | 'CLOSED'
  | 'OTHER';

/** A ZooKeeper request failed. `zkCode` says how; for CONNECTION_LOSS and OPERATION_TIMEOUT the outcome is unknown. */
export class ZooKeeperError extends ZkLockError {
  readonly code = 'ZK_LOCK_ZOOKEEPER';

  /**
   * True when `error` is a ZooKeeperError with one of `codes` (any ZooKeeperError when none is given).
   *
   * @example
   * if (ZooKeeperError.is(error, 'NO_NODE')) return []; // the directory is gone: no children
   * if (!ZooKeeperError.is(error, 'NOT_EMPTY', 'NO_NODE')) throw error;
   */
  static is(error: unknown, ...codes: ZkErrorCode[]): error is ZooKeeperError {
    return error instanceof ZooKeeperError && (codes.length === 0 || codes.includes(error.zkCode));
  }

  constructor(
    readonly zkCode: ZkErrorCode,
    readonly operation: string,
    readonly path: string,
    detail?: string,
  ) {
    super(`ZooKeeper ${operation} ${path} failed: ${zkCode}${detail ? ` (${detail})` : ''}`);
  }
}
