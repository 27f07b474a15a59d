/**
 * The library's lock on the testing kit's in-process stand-in (no Java, no network): mutual
 * exclusion, no herd effect, lost-lock signals on expiry and on a cut, outage errors, nothing
 * left behind. The stand-in's ZooKeeper semantics are pinned by test/integration/port-contract.test.ts
 * (the same checks on a real server); the project's own lock tests use real servers.
 */
import 'reflect-metadata';
import { afterEach, describe, expect, it } from 'vitest';
import {
  LockLostError,
  LockService,
  LockTimeoutError,
  ZkUnavailableError,
  type LockHandle,
  type ZkConnectionEvent,
  type ZkLockOptions,
} from '../../lib/index.js';
import { expireSession, InMemoryZooKeeper, waitFor, type InMemoryZkConnection } from '../../lib/testing/index.js';
import { OverlapDetector } from '../fixtures/lock-clients.js';

const opened: { connection: InMemoryZkConnection; locks: LockService }[] = [];

afterEach(async () => {
  for (const { connection, locks } of opened.splice(0)) {
    await locks.beforeApplicationShutdown();
    await connection.close();
  }
});

async function client(zk: InMemoryZooKeeper, options: Partial<ZkLockOptions> = {}) {
  const connection = await zk.connect({ sessionTimeout: 2_000, heldLockWatchDelay: Infinity, ...options });
  const locks = new LockService(connection.asConnectionService());
  opened.push({ connection, locks });
  return { connection, locks };
}

function notifications(clients: { connection: InMemoryZkConnection }[]): number {
  return clients.reduce((sum, { connection }) => sum + connection.stats().notifications, 0);
}

describe('the lock on the stand-in', () => {
  it('excludes: 4 clients x 25 acquisitions, never two inside, tokens growing, nothing left', async () => {
    const zk = new InMemoryZooKeeper();
    const clients = await Promise.all([1, 2, 3, 4].map(() => client(zk)));
    const detector = new OverlapDetector();
    const tokens: bigint[] = [];
    await Promise.all(
      clients.map(async ({ locks }) => {
        for (let i = 0; i < 25; i += 1) {
          await locks.withLock('/locks/shared', async (lock) => {
            detector.enter();
            tokens.push(lock.fencingToken);
            await new Promise((resolve) => setImmediate(resolve));
            detector.exit();
          });
        }
      }),
    );
    expect(detector.entries).toBe(100);
    expect(detector.overlaps).toBe(0);
    expect(tokens).toEqual(tokens.toSorted((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
    expect(new Set(tokens).size).toBe(100);
    expect(zk.nodes('/locks')).toEqual([]); // the lock directories were containers: reclaimed
    expect(zk.watchCount).toBe(0);
  });

  it('no herd: each release wakes one waiter, one notification per release', async () => {
    const zk = new InMemoryZooKeeper();
    const clients = await Promise.all([1, 2, 3, 4, 5, 6].map(() => client(zk)));
    const first = await clients[0].locks.acquire('/locks/herd');
    const order: number[] = [];
    const waiting = clients.slice(1).map(({ locks }, i) =>
      locks.acquire('/locks/herd', { timeout: 5_000 }).then((lock) => {
        order.push(i + 1);
        return lock;
      }),
    );
    await waitFor(() => zk.watchCount === 5, { message: 'every waiter watches its predecessor' });
    const before = notifications(clients);
    let holder: LockHandle = first;
    for (let i = 0; i < 5; i += 1) {
      await holder.release();
      holder = await waiting[i];
      expect(notifications(clients) - before).toBe(i + 1);
    }
    expect(order).toEqual([1, 2, 3, 4, 5]);
    await holder.release();
  });

  it('expireSession: the holder is told (session-expired) before anyone else gets the lock; a new session follows', async () => {
    const zk = new InMemoryZooKeeper();
    const a = await client(zk);
    const b = await client(zk);
    const events: ZkConnectionEvent[] = [];
    a.connection.state$.subscribe((event) => events.push(event));
    const held = await a.locks.acquire('/locks/lost');
    let toldFirst: boolean | undefined;
    const next = b.locks.acquire('/locks/lost', { timeout: 5_000 }).then((lock) => {
      toldFirst = held.signal.aborted;
      return lock;
    });
    await waitFor(() => zk.watchCount === 1, { message: 'the waiter watches the holder' });

    await expireSession(a.connection);
    expect(held.signal.aborted).toBe(true);
    expect(held.signal.reason).toBeInstanceOf(LockLostError);
    expect((held.signal.reason as LockLostError).reason).toBe('session-expired');
    const got = await next;
    expect(toldFirst).toBe(true);
    expect(got.fencingToken).toBeGreaterThan(held.fencingToken);
    expect(events.map((event) => event.state)).toEqual(['connected', 'expired', 'connecting', 'connected']);
    expect(events.at(-1)).toMatchObject({ newSession: true });
    await got.release();
    const again = await a.locks.acquire('/locks/lost', { timeout: 1_000 });
    expect(again.fencingToken).toBeGreaterThan(got.fencingToken);
    await again.release();
  });

  it('disconnect: suspended, presumed lost after 90% of the session timeout (connection-lost), then the server lets the next holder in', async () => {
    const zk = new InMemoryZooKeeper();
    const a = await client(zk, { sessionTimeout: 400 });
    const b = await client(zk);
    const held = await a.locks.acquire('/locks/cut');
    const next = b.locks.acquire('/locks/cut', { timeout: 5_000 });
    zk.disconnect(a.connection);
    expect(a.connection.state).toBe('suspended');
    await expect(a.locks.tryAcquire('/locks/other')).rejects.toBeInstanceOf(ZkUnavailableError);
    await waitFor(() => held.signal.aborted, { message: 'the holder is told' });
    expect((held.signal.reason as LockLostError).reason).toBe('connection-lost');
    const got = await next;
    expect(got.fencingToken).toBeGreaterThan(held.fencingToken);
    zk.reconnect(a.connection);
    await waitFor(() => a.connection.state === 'connected', { message: 'a new session' });
    await got.release();
  });

  it('disconnect and reconnect in time: the session, and the lock, survive', async () => {
    const zk = new InMemoryZooKeeper();
    const a = await client(zk, { sessionTimeout: 2_000 });
    const held = await a.locks.acquire('/locks/blip');
    const session = a.connection.currentSession();
    zk.disconnect(a.connection);
    const inspected = a.locks.inspect('/locks/blip'); // waits for the connection
    zk.reconnect(a.connection);
    await waitFor(() => a.connection.state === 'connected', { message: 'back' });
    expect(a.connection.currentSession()).toBe(session);
    expect(held.signal.aborted).toBe(false);
    expect((await inspected).holder?.node).toBe(held.node.split('/').pop());
    await held.release();
  });

  it('a server outage (disconnect() for all): waits give up as outages, not busy locks', async () => {
    const zk = new InMemoryZooKeeper();
    const a = await client(zk);
    zk.disconnect();
    await expect(a.locks.acquire('/locks/outage', { timeout: 200 })).rejects.toBeInstanceOf(ZkUnavailableError);
    zk.reconnect();
    await waitFor(() => a.connection.state === 'connected', { message: 'back' });
    const lock = await a.locks.acquire('/locks/outage', { timeout: 1_000 });
    await lock.release();
  });

  it('read/write locks, semaphores, timeouts and inspect work as on a server', async () => {
    const zk = new InMemoryZooKeeper();
    const a = await client(zk);
    const b = await client(zk);
    const readers = await Promise.all([a.locks.acquireRead('/locks/rw'), b.locks.acquireRead('/locks/rw')]);
    await expect(a.locks.acquireWrite('/locks/rw', { timeout: 50 })).rejects.toBeInstanceOf(LockTimeoutError);
    const leases = await Promise.all([
      a.locks.acquire('/locks/sem', { leases: 2 }),
      b.locks.acquire('/locks/sem', { leases: 2 }),
    ]);
    expect(await a.locks.tryAcquire('/locks/sem', { leases: 2 })).toBeNull();
    const info = await b.locks.inspect('/locks/sem');
    expect(info.holders).toHaveLength(2);
    for (const lock of [...readers, ...leases]) await lock.release();
    expect(zk.nodes('/locks')).toEqual([]);
  });

  it('a chroot in the connection string: paths are below it, and it must exist', async () => {
    const zk = new InMemoryZooKeeper();
    const setup = await zk.connect();
    await setup.ensurePath('/app');
    const a = await client(zk, { connectionString: 'in-memory:2181/app' });
    const lock = await a.locks.acquire('/locks/rooted');
    expect(zk.nodes('/app/locks/rooted')).toHaveLength(2);
    await lock.release();
    const missing = await client(zk, { connectionString: 'in-memory:2181/missing' });
    await expect(missing.locks.acquire('/locks/x', { timeout: 500 })).rejects.toThrow(/chroot/);
    await setup.close();
  });
});
