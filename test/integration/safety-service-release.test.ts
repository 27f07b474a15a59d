/**
 * The ends of a lock against a real ZooKeeper server: an acquisition that completes after
 * shutdown began, a release whose delete fails for good, release requests and `tryAcquire` on the
 * coalesced path, a handle lost before it was returned, and long timeouts.
 */
import { performance } from 'node:perf_hooks';
import { afterEach, describe, expect, it } from 'vitest';
import {
  InvalidOptionsError,
  LockLostError,
  LockService,
  NotConnectedError,
  ZkConnectionService,
  ZooKeeperError,
} from '../../lib/index.js';
import type { ZkSession } from '../../lib/connection/zk-port.js';
import { childrenOf, lockClient, closeSessionFromOutside } from '../fixtures/lock-clients.js';
import { useFileServer } from '../fixtures/file-server.js';
import { TcpProxy, waitFor } from '../support/index.js';

const server = useFileServer();
const proxies: TcpProxy[] = [];
const connections: ZkConnectionService[] = [];
afterEach(async () => {
  await Promise.all(connections.splice(0).map((connection) => connection.close()));
  await Promise.all(proxies.splice(0).map((proxy) => proxy.close()));
});

function children(path: string): Promise<string[]> {
  return childrenOf(server.connectString, path);
}

function basename(node: string): string {
  return node.slice(node.lastIndexOf('/') + 1);
}

/**
 * Ends the session of `connection` (which goes through `proxy`) from outside, as the server does
 * on expiry: cut the client off, resume the session with a raw client and close it, then let
 * the client reconnect and hear that its session expired.
 */
async function expireSession(proxy: TcpProxy, connection: ZkConnectionService): Promise<void> {
  const session = connection.currentSession()!;
  proxy.blackhole(); // else the client may take the session back before the raw client closes it
  await closeSessionFromOutside(server.connectString, connection.sessionCredentials()!);
  proxy.restore();
  await waitFor(() => session.ended.aborted, { message: 'the client learns of the expiry' });
}

describe('an acquisition that completes after shutdown began (issue 11, item 3)', () => {
  it('is released and rejects with NotConnectedError: never returned as held, nothing left', async () => {
    const path = '/safety/late-grant';
    const proxy = await TcpProxy.start({ host: server.host, port: server.port });
    proxies.push(proxy);
    const { connection, locks } = await lockClient(proxy.connectString, { sessionTimeout: 4_000 });
    await connection.ensurePath(path); // persistent: the attempt is exactly create + listing
    proxy.pause('up');
    const attempt = locks.acquire(path, { timeout: 10_000 }).catch((error: unknown) => error);
    await waitFor(() => proxy.held('up') > 0, { message: 'the create is sent' });
    // The create goes through; the listing that follows it reaches the server, its reply is held.
    const off = proxy.onData((direction) => {
      if (direction !== 'up') return;
      proxy.pause('down');
      off();
    });
    proxy.resume('up');
    await waitFor(() => proxy.held('down') > 0, { message: 'the listing reply is held back' });
    expect(await children(path)).toHaveLength(1); // our node: the lock is free, the grant is on its way

    await locks.beforeApplicationShutdown(); // nothing held yet: done at once
    proxy.resume('down'); // the grant arrives after shutdown took its snapshot
    const outcome = await attempt;
    expect(outcome).toBeInstanceOf(NotConnectedError);
    expect(String(outcome)).toContain('shutting down');
    await waitFor(async () => (await children(path)).length === 0, { message: 'the late node is deleted' });
  });
});

describe('release() when the delete fails for good (issue 11, item 12)', () => {
  it('rejects with the ZooKeeperError (NO_AUTH); the handle counts as released; the node stays until the session ends', async () => {
    // Nodes made by this client may be created and read, not deleted from: the lock directory
    // lacks the DELETE permission its children's deletes need.
    const { connection, locks } = await lockClient(server.connectString, {
      acl: [{ scheme: 'world', id: 'anyone', perms: 'cr' }],
    });
    await connection.ensurePath('/noauth/orders');
    const held = await locks.acquire('/noauth/orders');
    const failure = await held.release().catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(ZooKeeperError);
    expect((failure as ZooKeeperError).zkCode).toBe('NO_AUTH');
    expect(held.released).toBe(true);
    await expect(held.release()).rejects.toBe(failure); // the same outcome when asked again
    expect(await children('/noauth/orders')).toEqual([basename(held.node)]);

    // withLock: the body ran; the failed release is its outcome.
    const other = await lockClient(server.connectString, { acl: [{ scheme: 'world', id: 'anyone', perms: 'cr' }] });
    const viaWithLock = await other.locks
      .withLock('/noauth/reports', () => 'ran', { timeout: 5_000 })
      .catch((error: unknown) => error);
    expect((viaWithLock as ZooKeeperError).zkCode).toBe('NO_AUTH');

    await connection.close(); // the session's end removes the node
    await waitFor(async () => (await children('/noauth/orders')).length === 0, { message: 'the node goes' });
  });
});

describe('the coalesced path (issue 11, item 12)', () => {
  it('honours revocable: the first local holder and one handed the node both see a release request at once', async () => {
    const path = '/safety/coalesced-revocable';
    // The fixture's heldLockWatchDelay is Infinity: only `revocable` makes the node watched.
    const { locks } = await lockClient(server.connectString, { coalesce: { maxHoldMs: 60_000 } });
    const other = await lockClient(server.connectString);
    const first = await locks.acquire(path, { revocable: true });
    expect(await other.locks.requestRelease(path)).toBe(1);
    await waitFor(() => first.signal.aborted, { timeout: 3_000, message: 'the holder sees the release request' });
    expect((first.signal.reason as LockLostError).reason).toBe('revoked');
    await first.release();

    const plain = await locks.acquire(path); // a new node, not watched
    const next = locks.acquire(path, { revocable: true, timeout: 5_000 });
    await plain.release(); // handed over in memory
    const second = await next;
    expect(second.node).toBe(plain.node);
    expect(await other.locks.requestRelease(path)).toBe(1);
    await waitFor(() => second.signal.aborted, { timeout: 3_000, message: 'the new holder sees the release request' });
    expect((second.signal.reason as LockLostError).reason).toBe('revoked');
    await second.release();
    await waitFor(async () => (await children(path)).length === 0, { message: 'the node goes' });
  });

  it('tryAcquire and timeout 0 wait for the release of the last node in flight instead of answering busy', async () => {
    const path = '/safety/coalesced-try';
    const { locks } = await lockClient(server.connectString, { coalesce: true });
    for (const take of [() => locks.tryAcquire(path), () => locks.acquire(path, { timeout: 0 })]) {
      const held = await locks.acquire(path);
      const releasing = held.release(); // nobody waits: the node's delete is now in flight
      const started = performance.now();
      const next = await take();
      expect(next).not.toBeNull();
      expect(performance.now() - started).toBeLessThan(2_000);
      await releasing;
      expect(next!.node).not.toBe(held.node);
      expect(next!.fencingToken).toBeGreaterThan(held.fencingToken);
      expect(await children(path)).toEqual([basename(next!.node)]);
      await next!.release();
    }
    // A caller of the process that holds it: still busy, at once.
    const held = await locks.acquire(path);
    expect(await locks.tryAcquire(path)).toBeNull();
    await held.release();
  });
});

/** A connection whose next delete under `prefix` first waits for `hook` (to time a real event exactly). */
class HookedConnection extends ZkConnectionService {
  hook: { prefix: string; run: () => Promise<void> } | undefined;

  override async remove(path: string, version?: number): Promise<void> {
    const hook = this.hook;
    if (hook && path.startsWith(hook.prefix)) {
      this.hook = undefined;
      await hook.run();
    }
    return super.remove(path, version);
  }
}

describe('a handle lost before it was returned (commit 2e7a25f)', () => {
  it('is not kept among the held locks: shutdown does not wait for it', async () => {
    const path = '/safety/lost-before-returned';
    const proxy = await TcpProxy.start({ host: server.host, port: server.port });
    proxies.push(proxy);
    const connection = new HookedConnection({
      connectionString: proxy.connectString,
      sessionTimeout: 2_000,
      heldLockWatchDelay: Infinity,
      shutdownTimeout: 10_000,
    });
    connections.push(connection);
    await connection.connect();
    const locks = new LockService(connection);
    // The semaphore's lease is taken; the inner lock's delete is next. Just then the session
    // expires (for real, on the server): the lease comes back from a session that has ended.
    let before: ZkSession | undefined;
    connection.hook = {
      prefix: `${path}/locks/`,
      run: async () => {
        before = connection.currentSession();
        await expireSession(proxy, connection);
      },
    };
    const lease = await locks.acquire(path, { leases: 1, timeout: 10_000 });
    expect(before).toBeDefined(); // the hook ran
    // Today's recipe hands the lease back from the ended session (lost before it was returned);
    // a recipe that starts over instead returns a live lease of the next session.
    const how = lease.released ? (lease.signal.reason as LockLostError).reason : lease.signal.aborted ? 'odd' : 'live';
    expect(['session-expired', 'live']).toContain(how);
    await lease.release();
    const started = performance.now();
    await locks.beforeApplicationShutdown();
    expect(performance.now() - started).toBeLessThan(2_000); // not the 10 s shutdownTimeout
  });
});

describe('durations up to 2^31-1 ms (issue 11, item 11)', () => {
  it.each([
    ['plain', {}],
    ['coalesce', { coalesce: true }],
  ])('%s: a wait with the longest timeout waits (no timer overflow) and gets the lock', async (mode, options) => {
    const path = `/safety/long-timeout-${mode}`;
    const holder = await lockClient(server.connectString);
    const { locks } = await lockClient(server.connectString, options);
    const held = await holder.locks.acquire(path);
    const waiting = locks.acquire(path, { timeout: 2 ** 31 - 1 });
    let settled = false;
    void waiting.then(
      () => (settled = true),
      () => (settled = true),
    );
    await waitFor(async () => (await children(path)).length === 2, { message: 'the waiter queues' });
    expect(settled).toBe(false);
    await held.release();
    const handle = await waiting;
    expect(handle.fencingToken).toBeGreaterThan(held.fencingToken);
    await handle.release();
    await expect(locks.acquire(path, { timeout: 2 ** 31 })).rejects.toBeInstanceOf(InvalidOptionsError);
  });
});
