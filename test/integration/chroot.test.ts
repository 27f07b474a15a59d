/** A connection string with a chroot: every path is relative to it, watches included. */
import { describe, expect, it } from 'vitest';
import { LockTimeoutError } from '../../lib/index.js';
import { childrenOf, lockClient } from '../fixtures/lock-clients.js';
import { waitFor, watchCount } from '../support/index.js';
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
    await expect(b.locks.acquire('/locks/report', { timeout: 300 })).rejects.toBeInstanceOf(LockTimeoutError);
    await waitFor(async () => (await watchCount(server)) === 0, {
      message: 'the waiter watch removed under the chroot',
    });
    await held.release();
    expect(await childrenOf(server.connectString, '/tenants/blue/locks/report')).toEqual([]);
  });
});
