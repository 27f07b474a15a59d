/**
 * Adversary (issue 13's perf work, commits c2b93b7 and d9553e1), against a real ZooKeeper server:
 * - release() is no longer an async function (the delete's continuation settles it): it must not
 *   settle before the server answered the delete, and a delete cut off by a connection loss is
 *   retried on the same session before it settles;
 * - the delayed own-node watch (one shared timer per delay in d9553e1, a timer per lock again
 *   since 5b6ea7e): a lock held past the delay still watches its node when a lock taken before it
 *   was released first, and a released lock never watches;
 * - take() is no longer an async function, and a call without a signal of its own goes straight to
 *   the recipe on the service's shutdown signal: what its checks throw must still reject (never
 *   throw), and shutdown must still end every such wait, also one waiting for a session.
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  InvalidLockPathError,
  InvalidOptionsError,
  LockLostError,
  NotConnectedError,
  ZkUnavailableError,
  type LockHandle,
} from '../../lib/index.js';
import { useFileServer } from '../fixtures/file-server.js';
import { childrenOf, lockClient } from '../fixtures/lock-clients.js';
import { TcpProxy, waitFor, type ZkFrame } from '../support/index.js';

const server = useFileServer();
const proxies: TcpProxy[] = [];

afterEach(async () => {
  for (const proxy of proxies) proxy.restore();
  await Promise.all(proxies.splice(0).map((proxy) => proxy.close()));
});

async function proxied(): Promise<TcpProxy> {
  const proxy = await TcpProxy.start({ host: server.host, port: server.port });
  proxies.push(proxy);
  return proxy;
}

function basename(node: string): string {
  return node.slice(node.lastIndexOf('/') + 1);
}

const OP_DELETE = 2;
const isDelete = (frame: ZkFrame): boolean => frame.index > 0 && frame.opcode === OP_DELETE;

/** Rejects after `ms`, naming what did not happen (so a wait that never ends fails fast). */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** How a promise settled, without letting a rejection go unhandled. */
function settled<T>(promise: Promise<T>): Promise<{ value?: T; error?: unknown }> {
  return promise.then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  );
}

describe('adversary: release() without an async layer', () => {
  it('does not settle before the server answered the delete; the node is gone when it does', async () => {
    const proxy = await proxied();
    const a = await lockClient(proxy.connectString, { sessionTimeout: 4_000 });
    const held = await a.locks.acquire('/adversary-perf/release-answer');
    proxy.pause('down'); // the delete reaches the server; its answer waits in the proxy
    const answered = new Promise<void>((resolve) => {
      const stop = proxy.onFrame((direction, frame) => {
        if (direction === 'up' && isDelete(frame)) {
          stop();
          resolve();
        }
      });
    });
    let done = false;
    const release = held.release().then(() => (done = true));
    expect(held.released).toBe(true);
    await answered;
    // The server has deleted the node; its answer has not come: the release has not settled.
    await waitFor(async () => (await childrenOf(server.connectString, '/adversary-perf/release-answer')).length === 0, {
      message: 'the server deleted the node',
    });
    await new Promise((resolve) => setImmediate(resolve));
    expect(proxy.held('down')).toBeGreaterThan(0);
    expect(done).toBe(false);
    proxy.resume('down');
    await release;
    expect(done).toBe(true);
  });

  it('retries a delete cut off by a connection loss, on the same session, and settles once the node is gone', async () => {
    const proxy = await proxied();
    const a = await lockClient(proxy.connectString, { sessionTimeout: 4_000 });
    const session = a.connection.currentSession();
    const held = await a.locks.acquire('/adversary-perf/release-cut');
    const cut = proxy.cutBefore('up', isDelete); // the first delete never reaches the server
    const release = settled(held.release());
    await cut;
    expect(await childrenOf(server.connectString, '/adversary-perf/release-cut')).toEqual([basename(held.node)]);
    proxy.restore(); // the client reconnects to its session
    const outcome = await release;
    expect(outcome.error).toBeUndefined();
    expect(a.connection.currentSession()).toBe(session);
    expect(await childrenOf(server.connectString, '/adversary-perf/release-cut')).toEqual([]);
  });
});

describe('adversary: the delayed own-node watch', () => {
  it('a lock held past the delay watches its node though a lock taken before it was released first; the released one never watches', async () => {
    const DELAY = 300;
    const [a, intruder] = await Promise.all([
      lockClient(server.connectString, { heldLockWatchDelay: DELAY }),
      lockClient(server.connectString),
    ]);
    const first = await a.locks.acquire('/adversary-perf/watch-first');
    const second = await a.locks.acquire('/adversary-perf/watch-second');
    await first.release(); // goes before it is due
    expect(a.connection.stats().watches).toBe(0);
    // The second lock's watch comes after its delay (and only its own: one watch).
    await waitFor(() => a.connection.stats().watches === 1, {
      timeout: DELAY + 5_000,
      message: "the second lock's own-node watch",
    });
    expect(second.signal.aborted).toBe(false);
    // Someone deletes its node: the holder hears it, through that watch.
    await intruder.connection.remove(second.node);
    await waitFor(() => second.signal.aborted, { timeout: 5_000, message: 'the holder told of the deletion' });
    expect((second.signal.reason as LockLostError).reason).toBe('node-deleted');
    await second.release();
    expect(a.connection.stats().watches).toBe(0);
  });
});

describe('adversary: take() without an async layer', () => {
  it('rejects, never throws, whatever its checks find wrong', async () => {
    const a = await lockClient(server.connectString);
    const calls: [string, () => Promise<unknown>, new (...args: never[]) => Error][] = [
      ['a path without a slash', () => a.locks.acquire('no-slash'), InvalidLockPathError],
      ['a negative timeout', () => a.locks.acquire('/adversary-perf/options', { timeout: -1 }), InvalidOptionsError],
      ['leases 0', () => a.locks.acquire('/adversary-perf/options', { leases: 0 }), InvalidOptionsError],
      ['tryAcquire of a bad path', () => a.locks.tryAcquire('/bad//path'), InvalidLockPathError],
    ];
    for (const [what, call, type] of calls) {
      let promise: Promise<unknown> | undefined;
      expect(() => (promise = call())).not.toThrow();
      const { error } = await settled(promise!);
      expect({ what, error }).toEqual({ what, error: expect.any(type) });
    }
    // A write lock in a call chain holding the read lock (reentrancy's check).
    await a.locks.withLock(
      '/adversary-perf/upgrade',
      async () => {
        let promise: Promise<unknown> | undefined;
        expect(() => (promise = a.locks.acquire('/adversary-perf/upgrade'))).not.toThrow();
        expect((await settled(promise!)).error).toBeInstanceOf(InvalidOptionsError);
      },
      { mode: 'read' },
    );
    // No session: a call that does not wait is an outage at once.
    const proxy = await proxied();
    const b = await lockClient(proxy.connectString, { sessionTimeout: 4_000 });
    proxy.blackhole();
    proxy.reset();
    await waitFor(() => b.connection.state !== 'connected', { message: 'b disconnected' });
    let busy: Promise<unknown> | undefined;
    expect(() => (busy = b.locks.tryAcquire('/adversary-perf/outage'))).not.toThrow();
    expect((await settled(busy!)).error).toBeInstanceOf(ZkUnavailableError);
    // After shutdown began, and on a closed connection.
    await a.locks.beforeApplicationShutdown();
    let late: Promise<unknown> | undefined;
    expect(() => (late = a.locks.acquire('/adversary-perf/late'))).not.toThrow();
    expect((await settled(late!)).error).toBeInstanceOf(NotConnectedError);
    await b.connection.close();
    let closed: Promise<unknown> | undefined;
    expect(() => (closed = b.locks.acquire('/adversary-perf/closed'))).not.toThrow();
    expect((await settled(closed!)).error).toBeInstanceOf(NotConnectedError);
  });

  it('shutdown ends every wait without a signal of its own (write, read, lease), and one waiting for a session', async () => {
    const proxy = await proxied();
    const [holder, waiter] = await Promise.all([lockClient(server.connectString), lockClient(server.connectString)]);
    const held: LockHandle[] = [
      await holder.locks.acquire('/adversary-perf/shutdown-w'),
      await holder.locks.acquire('/adversary-perf/shutdown-r', { mode: 'write' }),
      await holder.locks.acquire('/adversary-perf/shutdown-l', { leases: 1 }),
    ];
    const waits = [
      waiter.locks.acquire('/adversary-perf/shutdown-w', { timeout: 60_000 }),
      waiter.locks.acquire('/adversary-perf/shutdown-w', { timeout: Infinity }),
      waiter.locks.acquireRead('/adversary-perf/shutdown-r', { timeout: 60_000 }),
      waiter.locks.acquire('/adversary-perf/shutdown-l', { leases: 1, timeout: 60_000 }),
    ].map(settled);
    await waitFor(async () => (await childrenOf(server.connectString, '/adversary-perf/shutdown-w')).length === 3, {
      message: 'two waiters queued on the write lock',
    });
    await waitFor(async () => (await childrenOf(server.connectString, '/adversary-perf/shutdown-r')).length === 2, {
      message: 'a reader queued',
    });
    // And one on a service whose connection has no session: it waits for one.
    const cutOff = await lockClient(proxy.connectString, { sessionTimeout: 4_000 });
    proxy.blackhole();
    proxy.reset();
    await waitFor(() => cutOff.connection.state !== 'connected', { message: 'disconnected' });
    const forSession = settled(cutOff.locks.acquire('/adversary-perf/shutdown-s', { timeout: 60_000 }));

    const started = performance.now();
    await Promise.all([waiter.locks.beforeApplicationShutdown(), cutOff.locks.beforeApplicationShutdown()]);
    const outcomes = await within(Promise.all([...waits, forSession]), 5_000, 'every wait ended by shutdown');
    expect(performance.now() - started).toBeLessThan(3_000);
    for (const outcome of outcomes) {
      expect(outcome.error).toBeInstanceOf(NotConnectedError);
      expect(String(outcome.error)).toContain('shutting down');
    }
    // The waiters' nodes and watches went; the holder's nodes stay.
    await waitFor(async () => (await childrenOf(server.connectString, '/adversary-perf/shutdown-w')).length === 1, {
      message: "the waiters' nodes deleted",
    });
    expect(await childrenOf(server.connectString, '/adversary-perf/shutdown-w')).toEqual([basename(held[0].node)]);
    expect(await childrenOf(server.connectString, '/adversary-perf/shutdown-r')).toEqual([basename(held[1].node)]);
    expect(waiter.connection.stats().watches).toBe(0);
    for (const handle of held) await handle.release();
  });
});
