/**
 * Every call of the recipe settles by its deadline (timeout or abort) in every connection state,
 * and leaves nothing behind: a real server behind a loopback proxy that partitions (blackhole),
 * holds replies back (pause) or heals; and a chroot that does not exist.
 *
 * Bound checked: deadline + TOLERANCE_MS (a loaded 2-core machine); a give-up that owns a node
 * may wait CLEANUP_WAIT_MS more for its deletion (the deletion goes on in the background after that).
 */
import { performance } from 'node:perf_hooks';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  InvalidOptionsError,
  LockAbortedError,
  ZkUnavailableError,
  type ZkConnectionService,
} from '../../lib/index.js';
import { acquireLock, CLEANUP_WAIT_MS, GiveUp, type AcquireRequest } from '../../lib/lock/lock-recipe.js';
import { childrenOf, closeLockClients, lockClient } from '../fixtures/lock-clients.js';
import { packetsReceived, startZooKeeper, TcpProxy, waitFor, watchCount, type ZkServer } from '../support/index.js';

/** Scheduling slack on a loaded machine, on top of the documented bound. */
const TOLERANCE_MS = 300;

let server: ZkServer;
const proxies: TcpProxy[] = [];
const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown) => unhandled.push(reason);

beforeAll(async () => {
  server = await startZooKeeper();
  process.on('unhandledRejection', onUnhandled);
});
afterEach(async () => {
  await closeLockClients();
  await Promise.all(proxies.splice(0).map((proxy) => proxy.close()));
});
afterAll(async () => {
  process.off('unhandledRejection', onUnhandled);
  await server?.dispose();
});

async function proxied(): Promise<TcpProxy> {
  const proxy = await TcpProxy.start({ host: server.host, port: server.port });
  proxies.push(proxy);
  return proxy;
}

/** The recipe's request for an exclusive lock on `dir` with a deadline `ms` from now. */
function request(dir: string, ms: number, extra: Partial<AcquireRequest> = {}): AcquireRequest {
  return { dir, kind: 'write', data: Buffer.from('{}'), deadline: performance.now() + ms, wait: true, ...extra };
}

/** Runs `fn`, resolves with what it settled with and how long it took (ms, monotonic). */
async function timed(fn: () => Promise<unknown>): Promise<{ outcome: unknown; elapsed: number }> {
  const started = performance.now();
  const outcome = await fn().catch((error: unknown) => error);
  return { outcome, elapsed: performance.now() - started };
}

/** Lets Node report the rejections of the last ticks (it does once a tick's microtasks have run). */
function ticks(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/** Waits until the connection has a session again after a heal. */
function reconnected(connection: ZkConnectionService): Promise<unknown> {
  return waitFor(() => connection.state === 'connected', { timeout: 15_000, message: 'connected again' });
}

describe('a partition longer than the session timeout', () => {
  it('acquire({ timeout: 300 }) settles by its deadline as an outage, with no unhandled rejection when the session then ends', async () => {
    const proxy = await proxied();
    const { connection, locks } = await lockClient(proxy.connectString, { sessionTimeout: 1_000 });
    unhandled.length = 0;
    proxy.blackhole();
    const { outcome, elapsed } = await timed(() => locks.acquire('/deadline/partition', { timeout: 300 }));
    expect(outcome).toBeInstanceOf(ZkUnavailableError);
    expect(elapsed).toBeLessThan(300 + TOLERANCE_MS);
    // The create still waits for its reply; the session is presumed lost (0.9 T) and the create fails.
    await waitFor(() => connection.currentSession() === undefined, { message: 'session presumed lost' });
    await ticks();
    await ticks();
    expect(unhandled).toEqual([]);
    proxy.restore();
    await reconnected(connection);
    expect(await childrenOf(server.connectString, '/deadline/partition')).toEqual([]);
    expect(await watchCount(server)).toBe(0);
  });

  it('with no session: a no-wait attempt, or one whose deadline is due, gives up at once as an outage', async () => {
    const proxy = await proxied();
    const { connection } = await lockClient(proxy.connectString, { sessionTimeout: 1_000 });
    proxy.blackhole();
    await waitFor(() => connection.currentSession() === undefined, { message: 'session presumed lost' });
    for (const extra of [{ wait: false }, { deadline: performance.now() - 1 }]) {
      const { outcome, elapsed } = await timed(() => acquireLock(connection, request('/deadline/none', 5_000, extra)));
      expect(outcome).toBeInstanceOf(GiveUp);
      expect(outcome).toMatchObject({ why: 'timeout', unavailable: true });
      expect(elapsed).toBeLessThan(50 + TOLERANCE_MS);
    }
    // A waiting one waits for the next session until its deadline.
    const { outcome, elapsed } = await timed(() => acquireLock(connection, request('/deadline/none', 300)));
    expect(outcome).toMatchObject({ why: 'timeout', unavailable: true });
    expect(elapsed).toBeGreaterThanOrEqual(299);
    expect(elapsed).toBeLessThan(300 + TOLERANCE_MS);
  });
});

describe('a partition shorter than the session timeout (the session is kept)', () => {
  it('a no-wait attempt whose create gets no reply settles by its deadline (unavailable), and its node goes after the heal', async () => {
    const proxy = await proxied();
    const { connection } = await lockClient(proxy.connectString, { sessionTimeout: 4_000 });
    await connection.ensurePath('/deadline/no-wait');
    proxy.pause('down'); // the create reaches the server; its reply is held back
    const { outcome, elapsed } = await timed(() =>
      acquireLock(connection, request('/deadline/no-wait', 300, { wait: false })),
    );
    expect(outcome).toBeInstanceOf(GiveUp);
    expect(outcome).toMatchObject({ why: 'timeout', unavailable: true });
    expect(elapsed).toBeLessThan(300 + TOLERANCE_MS);
    expect(await childrenOf(server.connectString, '/deadline/no-wait')).toHaveLength(1); // made, reply held
    proxy.resume('down'); // the late reply: the node it reports is deleted
    await waitFor(async () => (await childrenOf(server.connectString, '/deadline/no-wait')).length === 0, {
      message: 'the late node deleted',
    });
  });

  it('an abort at 300 ms while waiting behind a holder settles by then; the node and the watch go after the heal', async () => {
    const holder = await lockClient(server.connectString);
    const held = await holder.locks.acquire('/deadline/abort');
    const proxy = await proxied();
    const waiter = await lockClient(proxy.connectString, { sessionTimeout: 4_000 });
    const controller = new AbortController();
    const attempt = timed(() => waiter.locks.acquire('/deadline/abort', { signal: controller.signal }));
    await waitFor(async () => (await watchCount(server)) === 1, { message: 'the waiter watches the holder' });
    proxy.blackhole();
    const cut = performance.now();
    const timer = setTimeout(() => controller.abort(), 300);
    const { outcome } = await attempt;
    clearTimeout(timer);
    expect(outcome).toBeInstanceOf(LockAbortedError);
    expect(performance.now() - cut).toBeLessThan(300 + CLEANUP_WAIT_MS + TOLERANCE_MS);
    expect(await childrenOf(server.connectString, '/deadline/abort')).toHaveLength(2); // ours is still there
    proxy.restore();
    await reconnected(waiter.connection);
    await waitFor(async () => (await childrenOf(server.connectString, '/deadline/abort')).length === 1, {
      message: "the waiter's node deleted once the session answers",
    });
    await waitFor(async () => (await watchCount(server)) === 0, { message: "the waiter's watch removed" });
    await held.release();
  });

  it('a timeout while waiting behind a holder on a healthy connection is a busy lock, not an outage', async () => {
    const holder = await lockClient(server.connectString);
    const held = await holder.locks.acquire('/deadline/busy');
    const { connection } = await lockClient(server.connectString);
    const { outcome, elapsed } = await timed(() => acquireLock(connection, request('/deadline/busy', 300)));
    expect(outcome).toMatchObject({ why: 'timeout', unavailable: false });
    expect(elapsed).toBeLessThan(300 + CLEANUP_WAIT_MS + TOLERANCE_MS);
    expect(await childrenOf(server.connectString, '/deadline/busy')).toEqual([held.node.split('/').pop()]);
    await held.release();
  });
});

describe('a chroot that does not exist', () => {
  it('acquire({ timeout: 500 }) fails at once with InvalidOptionsError naming the chroot, in a few requests', async () => {
    const { locks } = await lockClient(`${server.connectString}/no-such-chroot`);
    const before = await packetsReceived(server);
    const { outcome, elapsed } = await timed(() => locks.acquire('/locks/x', { timeout: 500 }));
    expect(outcome).toBeInstanceOf(InvalidOptionsError);
    expect((outcome as Error).message).toContain('/no-such-chroot');
    expect(elapsed).toBeLessThan(500 + TOLERANCE_MS);
    expect((await packetsReceived(server)) - before).toBeLessThan(20); // create, ensure, exists (+ pings)
  });
});
