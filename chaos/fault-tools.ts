/** Tools of the fault injector: an abortable pause, ending a session from outside, restarting a member. */
import { setTimeout as sleep } from 'node:timers/promises';
import { ZooKeeperClientAdapter } from '../lib/connection/zookeeper-client.adapter.js';
import { resolveOptions, type ZkLockOptions } from '../lib/zk-lock.options.js';
import type { ZkServer } from '../test/support/zookeeper.js';

/** A sleep that ends early (without throwing) when `signal` aborts. */
export async function pause(ms: number, signal?: AbortSignal): Promise<void> {
  await sleep(ms, undefined, { signal }).catch(() => undefined);
}

/**
 * Ends a session from outside, as the server does on expiry: another client resumes it with its
 * id and password (the server moves the session to it) and closes it. The library's own adapter
 * does the resuming, with its fixes for the client library's gaps around closing.
 */
export async function expireSession(
  connectionString: string,
  credentials: { id: Buffer; password: Buffer },
  tls?: ZkLockOptions['tls'],
  timeoutMs = 5_000,
): Promise<'closed' | 'already expired' | 'no answer'> {
  const adapter = new ZooKeeperClientAdapter({
    connectionString,
    sessionTimeout: 4_000,
    operationTimeout: timeoutMs,
    reconnectDelay: 200,
    auth: [],
    acl: [],
    tls: resolveOptions({ connectionString, tls }).tls,
    session: credentials,
  });
  try {
    return await new Promise((resolve) => {
      const timer = setTimeout(() => resolve('no answer'), timeoutMs);
      adapter.onEvent((event) => {
        if (event.type === 'connected') {
          clearTimeout(timer);
          // close() sends closeSession and waits for the server's answer (up to the timeout)
          adapter.close(timeoutMs).then(
            () => resolve('closed'),
            () => resolve('closed'),
          );
        } else if (event.type === 'expired') {
          clearTimeout(timer);
          resolve('already expired');
        }
      });
      adapter.connect();
    });
  } finally {
    await adapter.close(0);
  }
}

/** Starts a member again; a start that fails (say, its port still taken) is tried again, for about 20 s. */
export async function startMember(server: ZkServer): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await server.start();
      return;
    } catch (error) {
      // (also: a jar replaced under it by a package upgrade on this machine)
      if (attempt >= 10) throw error;
      await pause(2_000);
    }
  }
}
