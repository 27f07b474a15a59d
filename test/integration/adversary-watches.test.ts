/**
 * Adversary: no watch left on the server after any outcome, when the server answers a watch
 * request only after the request's deadline (operationTimeout) passed on a live connection.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { useFileServer } from '../fixtures/file-server.js';
import { lockClient } from '../fixtures/lock-clients.js';
import { TcpProxy, waitFor, watchCount } from '../support/index.js';

const server = useFileServer();
const proxies: TcpProxy[] = [];

afterEach(async () => {
  await Promise.all(proxies.splice(0).map((proxy) => proxy.close()));
});

const OP_GET_DATA = 4;

describe('adversary: watches', () => {
  it('a watch request answered after its deadline leaves no watch on the server', async () => {
    const path = '/adversary/late-watch';
    const holder = await lockClient(server.connectString);
    const held = await holder.locks.acquire(path);
    const proxy = await TcpProxy.start({ host: server.host, port: server.port });
    proxies.push(proxy);
    const { connection, locks } = await lockClient(proxy.connectString, {
      sessionTimeout: 4_000,
      operationTimeout: 300,
    });

    // The waiter's watch on the holder's node reaches the server; its reply (and what follows) is held.
    let watchSent = false;
    proxy.onFrame((direction, frame) => {
      if (direction === 'up' && frame.opcode === OP_GET_DATA && !watchSent) {
        watchSent = true;
        proxy.pause('down');
      }
    });
    const outcome = await locks.acquire(path, { timeout: 800 }).then(
      () => 'acquired',
      (error: unknown) => (error as Error).name,
    );
    expect(watchSent).toBe(true);
    expect(outcome).not.toBe('acquired');
    expect(await watchCount(server)).toBe(1); // the server set it: the request got through

    // The late replies arrive; two round trips later everything they caused has reached the server.
    proxy.resume('down');
    await waitFor(() => connection.state === 'connected', { message: 'connected' });
    await connection.exists('/');
    await connection.exists('/');

    expect(await watchCount(server), 'a watch of the attempt stayed on the server').toBe(0);
    expect(connection.stats().watches).toBe(0);
    await held.release();
  });
});
