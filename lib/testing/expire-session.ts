/**
 * `expireSession(connection)`: ends a connection's ZooKeeper session on the server, as a server
 * does when it has not heard from the client for the session timeout, to test what an
 * application does when it loses its locks. Works for a real connection (`ZkConnectionService`)
 * and for one to the in-process stand-in.
 */
import type { ZkConnectionService } from '../connection/zk-connection.service.js';
import { ZooKeeperClientAdapter, type AdapterEvent } from '../connection/zookeeper-client.adapter.js';
import { InMemoryZkConnection } from './in-memory/connection.js';
import { waitFor } from './wait.js';

export interface ExpireSessionOptions {
  /**
   * Also wait until the connection has been told (its session's `ended` signal aborted, so its
   * holders' signals have aborted too). A connection that is cut off (e.g. by a TcpProxy) hears
   * of it only once it reaches a server again: pass false then. @default true
   */
  waitUntilTold?: boolean;
  /** Deadline for the whole, in ms. @default 10000 */
  timeout?: number;
  /**
   * Where to reach the server (real servers only), when the connection's own connection string
   * goes through something that is cut, such as a TcpProxy. @default the connection's
   */
  connectionString?: string;
}

/**
 * Expires the current session of `connection` on the server. A real server is asked as another
 * client would: it resumes the session (its id and password) and closes it, until resuming
 * answers "expired". Resolves when the server has ended the session (its ephemeral nodes, so its
 * locks, are gone) and, by default, once the connection has been told. A new session follows by
 * itself.
 *
 * @example
 * const lock = await locks.acquire('/locks/report');
 * await expireSession(app.get(ZkConnectionService));
 * expect(lock.signal.aborted).toBe(true); // reason: LockLostError 'session-expired'
 */
export async function expireSession(
  connection: ZkConnectionService | InMemoryZkConnection,
  options: ExpireSessionOptions = {},
): Promise<void> {
  const { waitUntilTold = true, timeout = 10_000 } = options;
  const session = connection.currentSession();
  const credentials = connection.sessionCredentials();
  if (!session || !credentials) throw new Error('expireSession: the connection has no session (not connected?)');
  if (connection instanceof InMemoryZkConnection) {
    await connection.zooKeeper.expireSession(connection);
  } else {
    const deadline = performance.now() + timeout;
    const { options: resolved } = connection;
    // Each round: resume the session and close it. A client of the session that reconnects in
    // between takes it back (the server moves the session), so go on until resuming says expired.
    const via = { ...resolved, connectionString: options.connectionString ?? resolved.connectionString };
    while ((await resumeAndClose(via, credentials, session.timeout, deadline)) !== 'expired') {
      if (performance.now() >= deadline)
        throw new Error(`expireSession: the session did not expire within ${timeout} ms`);
    }
  }
  if (waitUntilTold) {
    const left = Math.max(1, timeout);
    await waitFor(() => session.ended.aborted, {
      timeout: left,
      interval: 10,
      message: 'expireSession: the server expired the session, but the connection has not been told',
    });
  }
}

async function resumeAndClose(
  options: ZkConnectionService['options'],
  credentials: { id: Buffer; password: Buffer },
  sessionTimeout: number,
  deadline: number,
): Promise<'expired' | 'closed'> {
  const adapter = new ZooKeeperClientAdapter({
    connectionString: options.connectionString,
    sessionTimeout,
    operationTimeout: options.operationTimeout,
    reconnectDelay: options.reconnectDelay,
    auth: options.auth,
    acl: options.acl,
    tls: options.tls,
    session: credentials,
  });
  try {
    const event = await new Promise<AdapterEvent | 'timeout'>((resolve) => {
      const timer = setTimeout(() => resolve('timeout'), Math.max(1, deadline - performance.now()));
      adapter.onEvent((e) => {
        if (e.type === 'disconnected' || e.type === 'refused') return;
        clearTimeout(timer);
        resolve(e);
      });
      adapter.connect();
    });
    if (event === 'timeout') throw new Error('expireSession: no server answered');
    if (event.type === 'expired') return 'expired';
    if (event.type === 'auth-failed') throw new Error('expireSession: authentication failed');
    await adapter.close(Math.max(1, deadline - performance.now())); // closeSession: the server ends it
    return 'closed';
  } finally {
    await adapter.close(0);
  }
}
