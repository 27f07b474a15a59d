/** A connection string with a chroot: every path is relative to it, watches included. */
import { describe, expect, it } from 'vitest';
import { LockTimeoutError } from '../../lib/index.js';
import { childrenOf, lockClient } from '../fixtures/lock-clients.js';
import { waitFor, watchCount, watchesByPath } from '../support/index.js';
import { useFileServer } from '../fixtures/file-server.js';

const server = useFileServer();

describe('chroot', () => {
  it('locks live under the chroot; a timed-out waiter leaves no watch there', async () => {
    const admin = await lockClient(server.connectString);
    await admin.connection.ensurePath('/tenants/blue');
    const [a, b] = [
      await lockClient(`${server.connectString}/tenants/blue`),
      await lockClient(`${server.connectString}/tenants/blue`),
    ];
    const held = await a.locks.acquire('/locks/report');
    expect(held.node).toMatch(/^\/locks\/report\/_c_/);
    expect(await childrenOf(server.connectString, '/tenants/blue/locks/report')).toEqual([held.node.split('/').pop()]);
    expect(await childrenOf(server.connectString, '/locks/report')).toEqual([]);

    await waitFor(async () => (await watchCount(server)) === 0);
    const attempt = b.locks.acquire('/locks/report', { timeout: 1_500 }).catch((e: unknown) => e);
    // While it waits, the server has its watch on the holder's node, under the chroot.
    const heldOnServer = `/tenants/blue${held.node}`;
    await waitFor(async () => (await watchesByPath(server)).get(heldOnServer) === 1, {
      timeout: 1_400,
      interval: 10,
      message: 'the waiter watches the holder under the chroot',
    });
    expect(b.connection.stats().watches).toBe(1);
    expect(await attempt).toBeInstanceOf(LockTimeoutError);
    expect(b.connection.stats().watches).toBe(0);
    await waitFor(async () => (await watchCount(server)) === 0, {
      message: 'the waiter watch removed under the chroot',
    });
    await held.release();
    expect(await childrenOf(server.connectString, '/tenants/blue/locks/report')).toEqual([]);
  });
});
