import { ZkLockError } from './zk-lock.error.js';

/** No ZooKeeper session could be established within the connect timeout. */
export class ZkConnectError extends ZkLockError {
  readonly code = 'ZK_LOCK_CONNECT_FAILED';

  constructor(
    readonly connectionString: string,
    readonly timeout: number,
    detail?: string,
  ) {
    super(
      `Could not connect to ZooKeeper at ${connectionString} within ${timeout} ms` +
        (detail ? ` (${detail})` : '') +
        (detail?.includes('TLS: ')
          ? ". Check the tls option and the servers' TLS settings (the reason of each server is above)."
          : '. Is a server running there? Check connectionString and connectTimeout.'),
    );
  }
}
