/**
 * The connection's part of "no two beliefs overlap", against real ZooKeeper servers behind the
 * loopback proxy. A holder believes it holds a lock from "acquired" until its signal aborts (or it
 * releases); the next holder's belief must start after that, on one monotonic clock
 * (performance.now(), one process).
 *
 * Test servers tick every 200 ms, so session timeouts are between 400 ms and 4 s.
 */
import type { EventEmitter } from 'node:events';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ZooKeeperClientAdapter } from '../../lib/connection/zookeeper-client.adapter.js';
import { ZooKeeperError, type LockHandle, type ZkConnectionEvent } from '../../lib/index.js';
import { useFileServer } from '../fixtures/file-server.js';
import { childrenOf, lockClient, type LockClient } from '../fixtures/lock-clients.js';
import { delay, isNotification, isPing, startZooKeeper, TcpProxy, waitFor, type ZkFrame } from '../support/index.js';

const server = useFileServer();
const proxies: TcpProxy[] = [];

afterEach(async () => {
  vi.restoreAllMocks();
  await Promise.all(proxies.splice(0).map((proxy) => proxy.close()));
});

async function proxied(): Promise<TcpProxy> {
  const proxy = await TcpProxy.start({ host: server.host, port: server.port });
  proxies.push(proxy);
  return proxy;
}

/** performance.now() of the signal's abort, once it has happened. */
function abortTime(signal: AbortSignal): () => number | undefined {
  let at: number | undefined;
  signal.addEventListener('abort', () => (at ??= performance.now()), { once: true });
  return () => at;
}

/** Resolves with the time of the next frame going `direction` that `match`es. */
function nextFrame(proxy: TcpProxy, direction: 'up' | 'down', match: (frame: ZkFrame) => boolean): Promise<number> {
  return new Promise((resolve) => {
    const stop = proxy.onFrame((d, frame) => {
      if (d !== direction || !match(frame)) return;
      stop();
      resolve(performance.now());
    });
  });
}

/** Rejects after `ms` (monotonic), naming what did not happen. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

interface Belief {
  /** A's lock L: acquired, and its signal aborted. */
  aAcquired: number;
  aAborted: number;
  /** C's lock L: acquired. */
  cAcquired: number;
  /** When A's last ping before the cut went up, and when the cut happened. */
  pingAt: number;
  cutAt: number;
  /** The fault happened as staged (no other ping of A's between pingAt and the cut). */
  staged: boolean;
}

const SESSION_TIMEOUT = 4_000;

/** A: holds L; C waits for L. `fault` cuts A off; then C gets L once A's session expires on the server. */
async function cutOffHolder(
  proxy: TcpProxy,
  name: string,
  fault: (a: LockClient, b: LockClient) => Promise<{ pingAt: number; cutAt: number; staged: boolean }>,
): Promise<Belief> {
  const clients: LockClient[] = [];
  try {
    const sessionTimeout = SESSION_TIMEOUT;
    const [a, b, c] = await Promise.all([
      lockClient(proxy.connectString, { sessionTimeout }),
      lockClient(server.connectString, { sessionTimeout }),
      lockClient(server.connectString, { sessionTimeout }),
    ]);
    clients.push(a, b, c);
    const lockL = `/safety/${name}/L`;
    const heldL = await a.locks.acquire(lockL);
    const aAcquired = performance.now();
    const aAborted = abortTime(heldL.signal);
    let cAcquired = 0;
    const cGetsL = c.locks.acquire(lockL, { timeout: 30_000 }).then((handle) => {
      cAcquired = performance.now();
      return handle;
    });
    await waitFor(async () => (await childrenOf(server.connectString, lockL)).length === 2, {
      message: 'C queued on L',
    });

    const { pingAt, cutAt, staged } = await fault(a, b);

    const heldByC = await within(cGetsL, 3 * sessionTimeout, 'C acquiring L');
    await waitFor(() => aAborted() !== undefined, { timeout: 3 * sessionTimeout, message: "A's signal aborted" });
    await heldByC.release();
    return { aAcquired, aAborted: aAborted()!, cAcquired, pingAt, cutAt, staged };
  } finally {
    proxy.restore();
    await Promise.all(clients.map((client) => client.connection.close()));
  }
}

/**
 * Issue 11, item 1: A also waits for M behind B; B releases M; the notification reaches A and
 * right then A is cut off both ways, about 1 s after A's last ping reached the server.
 */
function notificationThenCut(proxy: TcpProxy, name: string): Promise<Belief> {
  return cutOffHolder(proxy, name, async (a, b) => {
    const lockM = `/safety/${name}/M`;
    const heldM = await b.locks.acquire(lockM);
    const stopA = new AbortController();
    // A's wait ends with the test (aborted) or with its session: either way it is not the point.
    void a.locks.acquire(lockM, { signal: stopA.signal, timeout: 60_000 }).then(
      (handle) => handle.release(),
      () => undefined,
    );
    await waitFor(async () => (await childrenOf(server.connectString, lockM)).length === 2, {
      message: 'A queued on M',
    });
    // A's next ping goes up; 1 s later B releases M, and the proxy delivers the notification to A
    // and cuts A off at once, both ways. (The 1 s is the fault's timing, not a wait for an event.)
    const pingAt = await within(nextFrame(proxy, 'up', isPing), SESSION_TIMEOUT, 'a ping from A');
    let pings = 0;
    const stopCounting = proxy.onFrame((d, frame) => d === 'up' && isPing(frame) && pings++);
    await delay(Math.max(0, pingAt + 1_000 - performance.now()));
    const cut = proxy.cutAfter('down', isNotification);
    await heldM.release();
    const { at: cutAt } = await within(cut, 5_000, 'the notification to A');
    stopCounting();
    stopA.abort();
    return { pingAt, cutAt, staged: pings === 0 };
  });
}

/** A is cut off both ways just before its next ping leaves: the server last heard A a third of T before. */
function cutBeforePing(proxy: TcpProxy, name: string): Promise<Belief> {
  return cutOffHolder(proxy, name, async () => {
    const pingAt = await within(nextFrame(proxy, 'up', isPing), SESSION_TIMEOUT, 'a ping from A');
    const { at: cutAt } = await within(proxy.cutBefore('up', isPing), SESSION_TIMEOUT, "A's next ping");
    return { pingAt, cutAt, staged: true };
  });
}

/** Runs `runs` times `scenario`, in `lanes` lanes at once (each lane its own proxy, runs one after another). */
async function inLanes(
  lanes: number,
  runs: number,
  scenario: (proxy: TcpProxy, name: string) => Promise<Belief>,
): Promise<Belief[]> {
  const lane = async (index: number): Promise<Belief[]> => {
    await delay(index * 700); // spread the lanes' faults apart
    const proxy = await proxied();
    const beliefs: Belief[] = [];
    for (let run = index; run < runs; run += lanes) beliefs.push(await scenario(proxy, `${scenario.name}-${run}`));
    return beliefs;
  };
  return (await Promise.all(Array.from({ length: lanes }, (_, i) => lane(i)))).flat();
}

/** The runs in which A still believed it held L when C got it, described. */
function overlapping(beliefs: Belief[]): string[] {
  return beliefs
    .filter((b) => b.aAborted >= b.cAcquired)
    .map(
      (b) =>
        `cut ${Math.round(b.cutAt - b.pingAt)} ms after A's ping; A told ${Math.round(b.aAborted - b.cutAt)} ms ` +
        `after the cut, C acquired ${Math.round(b.cAcquired - b.cutAt)} ms after it`,
    );
}

describe('presumed expiry counts from the send time of the last answered request or ping', () => {
  it('notification, then a cut both ways: the holder is told before the next holder gets in (20 runs)', async () => {
    // 20 runs, 4 at a time (about 30 s).
    const beliefs = await inLanes(4, 20, notificationThenCut);
    expect(beliefs).toHaveLength(20);
    expect(overlapping(beliefs)).toEqual([]);
    for (const b of beliefs) expect(b.aAcquired).toBeLessThan(b.aAborted);
    // The fault was staged as meant (no other ping of A's between its ping and the cut) in most runs.
    expect(beliefs.filter((b) => b.staged).length).toBeGreaterThanOrEqual(beliefs.length / 2);
  }, 120_000);

  it('a cut just before a ping: the holder is told before the next holder gets in (4 runs)', async () => {
    const beliefs = await inLanes(4, 4, cutBeforePing);
    expect(beliefs).toHaveLength(4);
    expect(overlapping(beliefs)).toEqual([]);
  }, 60_000);

  it('a stream of notifications does not starve the session of pings: the session lives on', async () => {
    const sessionTimeout = 2_000;
    const proxy = await proxied();
    const a = await lockClient(proxy.connectString, { sessionTimeout });
    const b = await lockClient(server.connectString);
    const nodes = Array.from({ length: 30 }, (_, i) => `/safety/stream/n${i}`);
    await b.connection.ensurePath('/safety/stream');
    for (const node of nodes) await b.connection.create(node, Buffer.alloc(0), 'persistent');
    let notified = 0;
    for (const node of nodes) await a.connection.watch(node, () => notified++);
    const session = a.connection.currentSession();
    const events: ZkConnectionEvent[] = [];
    a.connection.state$.subscribe((event) => events.push(event));
    let pings = 0;
    proxy.onFrame((d, frame) => d === 'up' && isPing(frame) && pings++);

    // A notification every 150 ms for 4.5 s (2.25 T): the socket is never idle for T/3, and A sends nothing else.
    for (const node of nodes) {
      await b.connection.setData(node, Buffer.from('x'));
      await delay(150);
    }
    await waitFor(() => notified === nodes.length, { message: 'every notification arrived' });

    expect(events.map((event) => event.state)).not.toContain('expired');
    expect(a.connection.currentSession()).toBe(session);
    expect(pings).toBeGreaterThanOrEqual(3); // one per T/3 of quiet sending: about 6
    await a.connection.exists('/safety/stream'); // the session still answers
    expect(a.connection.currentSession()).toBe(session);
  });

  it('a wall-clock step backwards does not delay the loss signal', async () => {
    const sessionTimeout = 2_000;
    const proxy = await proxied();
    const a = await lockClient(proxy.connectString, { sessionTimeout });
    const held = await a.locks.acquire('/safety/clock-step');
    const aborted = abortTime(held.signal);
    const cutAt = performance.now();
    proxy.blackhole();
    const realNow = Date.now.bind(Date);
    vi.spyOn(Date, 'now').mockImplementation(() => realNow() - 3_600_000); // NTP stepped the clock back an hour

    // 0.9 T after the last answered send, which was at most about T/3 before the cut; 1 s for a loaded machine.
    const bound = 0.9 * sessionTimeout + 1_000;
    await within(
      new Promise<void>((resolve) => held.signal.addEventListener('abort', () => resolve(), { once: true })),
      bound,
      "the cut-off holder's signal",
    );
    expect(aborted()! - cutAt).toBeLessThanOrEqual(bound);
    vi.restoreAllMocks();
    proxy.restore();
  });
});

describe('close() tells the holders first', () => {
  it('with 300 ms of server-to-client latency, the holder is told before the next holder gets in', async () => {
    const proxy = await proxied();
    const a = await lockClient(proxy.connectString, { sessionTimeout: 4_000 });
    const b = await lockClient(server.connectString);
    const held = await a.locks.acquire('/safety/close-first');
    const aborted = abortTime(held.signal);
    let bAcquired = 0;
    const bGets = b.locks.acquire('/safety/close-first', { timeout: 10_000 }).then((handle: LockHandle) => {
      bAcquired = performance.now();
      return handle;
    });
    await waitFor(async () => (await childrenOf(server.connectString, '/safety/close-first')).length === 2, {
      message: 'B queued',
    });
    proxy.setLatency('down', 300);

    const closing = a.connection.close();
    const next = await bGets;
    await closing;
    expect(aborted()).toBeDefined();
    expect(aborted()!).toBeLessThan(bAcquired);
    await next.release();
  });

  it('a second close() resolves when the connection is closed, not before', async () => {
    const proxy = await proxied();
    const a = await lockClient(proxy.connectString, { sessionTimeout: 4_000 });
    await a.locks.acquire('/safety/close-twice');
    proxy.setLatency('both', 100);
    const first = a.connection.close();
    await a.connection.close();
    expect(a.connection.state).toBe('closed');
    expect(await childrenOf(server.connectString, '/safety/close-twice')).toEqual([]);
    await first;
  });
});

describe('close() on a cut-off connection', () => {
  it('settles by its timeout and leaves no listener on the client', async () => {
    const proxy = await proxied();
    const adapter = new ZooKeeperClientAdapter({
      connectionString: proxy.connectString,
      sessionTimeout: 4_000,
      operationTimeout: 10_000,
      reconnectDelay: 200,
      auth: [],
      acl: [],
    });
    let connected = false;
    adapter.onEvent((event) => (connected ||= event.type === 'connected'));
    adapter.connect();
    await waitFor(() => connected, { message: 'connected' });
    const client = (adapter as unknown as { client: EventEmitter }).client;
    const listeners = client.listenerCount('disconnected');
    proxy.blackhole(); // the close request and its answer are lost: no 'disconnected' comes

    const started = performance.now();
    await within(adapter.close(300), 2_000, 'close(300)');
    expect(performance.now() - started).toBeGreaterThanOrEqual(290);
    expect(client.listenerCount('disconnected')).toBe(listeners);
  });
});

describe('a long session', () => {
  it('keeps request xids in int32: the 2^31st request works like the first', async () => {
    const adapter = new ZooKeeperClientAdapter({
      connectionString: server.connectString,
      sessionTimeout: 4_000,
      operationTimeout: 10_000,
      reconnectDelay: 200,
      auth: [],
      acl: [],
    });
    try {
      let connected = false;
      adapter.onEvent((event) => (connected ||= event.type === 'connected'));
      adapter.connect();
      await waitFor(() => connected, { message: 'connected' });
      // As after 2^31 - 3 requests (a day or two of a busy session).
      (adapter as unknown as { client: { connectionManager: { xid: number } } }).client.connectionManager.xid =
        2 ** 31 - 3;
      for (let i = 0; i < 6; i++) expect(await adapter.exists('/')).not.toBeNull();
      expect(adapter.isConnected()).toBe(true);
    } finally {
      await adapter.close(1_000);
    }
  });
});

describe('a reply with an error code the client does not know', () => {
  it('QUOTAEXCEEDED (-125) fails that request as a ZooKeeperError; the connection stays', async () => {
    // A server enforcing quotas (zookeeper.enforceQuota, ZooKeeper 3.7+), for this test only.
    const saved = process.env['JAVA_TOOL_OPTIONS'];
    process.env['JAVA_TOOL_OPTIONS'] = `${saved ?? ''} -Dzookeeper.enforceQuota=true`.trim();
    const quotaServer = await startZooKeeper().finally(() => {
      if (saved === undefined) delete process.env['JAVA_TOOL_OPTIONS'];
      else process.env['JAVA_TOOL_OPTIONS'] = saved;
    });
    let a: LockClient | undefined;
    try {
      a = await lockClient(quotaServer.connectString, { sessionTimeout: 4_000 });
      const events: ZkConnectionEvent[] = [];
      a.connection.state$.subscribe((event) => events.push(event));
      const session = a.connection.currentSession();
      // A hard limit of 2 nodes under /q (itself included), as `setquota -N 2 /q` writes it.
      await a.connection.create('/q', Buffer.alloc(0), 'persistent');
      await a.connection.ensurePath('/zookeeper/quota/q');
      const limits = 'count=-1,bytes=-1,countHardLimit=2,byteHardLimit=-1';
      await a.connection.create('/zookeeper/quota/q/zookeeper_limits', Buffer.from(limits), 'persistent');
      await a.connection.create('/zookeeper/quota/q/zookeeper_stats', Buffer.from('count=0,bytes=0'), 'persistent');
      await a.connection.create('/q/one', Buffer.alloc(0), 'persistent');

      const error = await a.connection.create('/q/two', Buffer.alloc(0), 'persistent').then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(ZooKeeperError);
      expect((error as ZooKeeperError).zkCode).toBe('QUOTA_EXCEEDED');
      expect((error as Error).message).toContain('QUOTAEXCEEDED (-125)');
      // Same connection, same session: nothing was dropped.
      expect(await a.connection.exists('/q/one')).not.toBeNull();
      expect(a.connection.currentSession()).toBe(session);
      expect(events.map((event) => event.state)).toEqual(['connected']);

      // A lock under the quota fails with that error, by its deadline, instead of retrying the create.
      const started = performance.now();
      const acquired = await a.locks.acquire('/q/lock', { timeout: 5_000 }).then(
        (handle) => handle,
        (e: unknown) => e,
      );
      expect(acquired).toBeInstanceOf(Error);
      expect(performance.now() - started).toBeLessThan(5_000);
      expect(a.connection.currentSession()).toBe(session);
    } finally {
      await a?.connection.close();
      await quotaServer.dispose();
    }
  });
});
