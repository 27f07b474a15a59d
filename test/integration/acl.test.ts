/** Digest auth and the ACL of lock nodes, against a real ZooKeeper server. */
import { describe, expect, it } from 'vitest';
import { ZooKeeperError } from '../../lib/index.js';
import { lockClient } from '../fixtures/lock-clients.js';

import { useFileServer } from '../fixtures/file-server.js';

const server = useFileServer();

function zkCodeOf(error: unknown): string | undefined {
  return error instanceof ZooKeeperError ? error.zkCode : undefined;
}

describe('with digest auth', () => {
  it('lock nodes can be deleted only by sessions with the same credentials', async () => {
    const owner = await lockClient(server.connectString, { auth: [{ scheme: 'digest', credentials: 'app:s3cret' }] });
    const held = await owner.locks.acquire('/secure/orders');

    const anonymous = await lockClient(server.connectString);
    const stranger = await lockClient(server.connectString, { auth: [{ scheme: 'digest', credentials: 'other:pw' }] });
    for (const { connection } of [anonymous, stranger]) {
      expect(zkCodeOf(await connection.remove(held.node).catch((e: unknown) => e))).toBe('NO_AUTH');
      // Nor can they queue: creating a node in the lock's directory is refused, with a clear error.
      expect(
        zkCodeOf(
          await connection
            .create('/secure/orders/x-lock-', Buffer.alloc(0), 'ephemeral-sequential')
            .catch((e: unknown) => e),
        ),
      ).toBe('NO_AUTH');
    }
    const refused = await anonymous.locks.acquire('/secure/orders', { timeout: 1_000 }).catch((e: unknown) => e);
    expect(zkCodeOf(refused)).toBe('NO_AUTH');

    // Everyone may read who holds the lock (world:anyone:r), without seeing any credentials.
    const info = await anonymous.locks.inspect('/secure/orders');
    expect(info.holder?.node).toBe(held.node.split('/').pop());
    expect(JSON.stringify(info)).not.toContain('s3cret');

    // A second app with the same credentials locks as usual.
    const sibling = await lockClient(server.connectString, { auth: [{ scheme: 'digest', credentials: 'app:s3cret' }] });
    expect(await sibling.locks.tryAcquire('/secure/orders')).toBeNull();
    await held.release();
    const next = await sibling.locks.tryAcquire('/secure/orders');
    expect(next).not.toBeNull();
    await next?.release();
  });
});
