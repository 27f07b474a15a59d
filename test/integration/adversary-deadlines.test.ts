/**
 * Adversary: calls that must settle by their deadline (plus a small tolerance) whatever the
 * connection does after they started, against a real server behind the loopback proxy.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { useFileServer } from '../fixtures/file-server.js';
import { childrenOf, lockClient } from '../fixtures/lock-clients.js';
import { TcpProxy, waitFor } from '../support/index.js';

const server = useFileServer();
const proxies: TcpProxy[] = [];

afterEach(async () => {
  await Promise.all(proxies.splice(0).map((proxy) => proxy.close()));
});

/** The documented give-up bound: the deadline, plus CLEANUP_WAIT_MS (100 ms) for our nodes, plus a loaded machine. */
const TOLERANCE = 500;

describe('adversary: deadlines', () => {
  it('acquireAll that fails after taking a part settles by its timeout when the partition holds the part', async () => {
    const base = '/adversary/all-partition';
    const [a, b] = [`${base}/a`, `${base}/b`];
    const other = await lockClient(server.connectString);
    const blocking = await other.locks.acquire(b);
    const proxy = await TcpProxy.start({ host: server.host, port: server.port });
    proxies.push(proxy);
    const { locks } = await lockClient(proxy.connectString, { sessionTimeout: 4_000 });

    const timeout = 1_500;
    const started = performance.now();
    const all = locks.acquireAll([a, b], { timeout }).then(
      () => 'acquired',
      (error: unknown) => error,
    );
    // Part a is ours, part b waits behind the other holder: then the network goes silent.
    await waitFor(async () => (await childrenOf(server.connectString, b)).length === 2, { message: 'b queued' });
    expect(await childrenOf(server.connectString, a)).toHaveLength(1);
    proxy.blackhole();

    const outcome = await all;
    const took = performance.now() - started;
    expect(outcome).toBeInstanceOf(Error);
    expect(took, 'acquireAll settled late').toBeLessThanOrEqual(timeout + TOLERANCE);

    // Nothing of ours stays: part a's node goes (deleted, or with the session).
    proxy.restore();
    await waitFor(async () => (await childrenOf(server.connectString, a)).length === 0, {
      timeout: 15_000,
      message: "part a's node is gone",
    });
    await blocking.release();
  });
});
