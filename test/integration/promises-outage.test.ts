/**
 * README promises about outages (issue 11 items 7-8, pinned here for issue 12): while ZooKeeper is
 * unreachable, a wait that ends is reported as ZkUnavailableError (HTTP 503), never as a busy lock,
 * and a call whose deadline is already due (timeout: 0, tryAcquire) fails at once when there is no
 * session. Through a loopback proxy that severs the connection and refuses new ones.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { ZkUnavailableError, type LockHandle } from '../../lib/index.js';
import { useFileServer } from '../fixtures/file-server.js';
import { lockClient } from '../fixtures/lock-clients.js';
import { TcpProxy, waitFor } from '../support/index.js';

const server = useFileServer();

/** Timer lag allowed on a loaded 2-core machine, above a call's own deadline. */
const TOLERANCE = 300;

/** How a call ended, and when (ms after `started`). */
async function outcome(call: () => Promise<LockHandle | null>): Promise<{ result: unknown; ms: number }> {
  const started = performance.now();
  const result = await call().catch((error: unknown) => error);
  return { result, ms: performance.now() - started };
}

async function cutOff(sessionTimeout: number) {
  const proxy = await TcpProxy.start({ host: server.host, port: server.port });
  onTestFinished(() => proxy.close());
  const client = await lockClient(proxy.connectString, { sessionTimeout });
  // A lock taken before the outage, so that the path's directory exists.
  await (await client.locks.acquire('/locks/outage')).release();
  proxy.refuse();
  proxy.reset();
  return { proxy, client };
}

describe('while ZooKeeper is unreachable', () => {
  it('suspended (the session may live): a wait that ends at its timeout is ZkUnavailableError, by the timeout', async () => {
    const { client } = await cutOff(4_000);
    await waitFor(() => client.connection.state === 'suspended', { message: 'suspended' });
    const { result, ms } = await outcome(() => client.locks.acquire('/locks/outage', { timeout: 300 }));
    expect(result).toBeInstanceOf(ZkUnavailableError);
    expect(ms).toBeLessThanOrEqual(300 + TOLERANCE);
  });

  it('no session (presumed expired, reconnects refused): timeout 0 and tryAcquire fail at once, a wait by its timeout', async () => {
    const { client } = await cutOff(2_000);
    await waitFor(() => client.connection.currentSession() === undefined, {
      message: 'the session presumed expired',
    });
    for (const call of [
      () => client.locks.acquire('/locks/outage', { timeout: 0 }),
      () => client.locks.tryAcquire('/locks/outage'),
    ]) {
      const { result, ms } = await outcome(call);
      expect(result).toBeInstanceOf(ZkUnavailableError);
      expect(ms).toBeLessThanOrEqual(TOLERANCE);
    }
    const { result, ms } = await outcome(() => client.locks.acquire('/locks/outage', { timeout: 300 }));
    expect(result).toBeInstanceOf(ZkUnavailableError);
    expect(ms).toBeLessThanOrEqual(300 + TOLERANCE);
  });
});
