/**
 * The port contract: what the lock recipe relies on from its connection (ZkPort plus the session
 * handling of ZkConnectionService), checked the same way against a real ZooKeeper server and
 * against the testing kit's in-process stand-in (InMemoryZooKeeper). The stand-in's behaviour is
 * pinned by this suite: a difference from the real server fails one of the two runs.
 *
 * Never-fired watches are shown with a fence: the watcher sets a watch on another node, the
 * writer changes that node after the changes in question, and the fence's notification arrives
 * after any notification those changes could have caused (one session's notifications come in
 * the order of the server's writes).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ZkConnectionService, ZooKeeperError, type ZkConnectionEvent, type ZkErrorCode } from '../../lib/index.js';
import { expireSession, InMemoryZooKeeper, type InMemoryZkConnection } from '../../lib/testing/index.js';
import type { ZkLockOptions } from '../../lib/index.js';
import { startZooKeeper, TcpProxy, waitFor, watchCount, type ZkServer } from '../support/index.js';

type Connection = ZkConnectionService | InMemoryZkConnection;

interface Backend {
  name: string;
  setup(): Promise<void>;
  teardown(): Promise<void>;
  /** A connected connection (its own session). `cuttable`: one that cut()/mend() can act on. */
  connect(options?: Partial<ZkLockOptions>, cuttable?: boolean): Promise<Connection>;
  /** Data watches set on the server, over all sessions. */
  serverWatches(): Promise<number>;
  /** Cuts the network between the server and a cuttable connection (both ways, nothing answers). */
  cut(connection: Connection): void;
  mend(connection: Connection): void;
}

const opened: Connection[] = [];

function realServer(): Backend {
  let server: ZkServer;
  const proxies = new Map<Connection, TcpProxy>();
  return {
    name: 'a real ZooKeeper server',
    setup: async () => {
      server = await startZooKeeper();
    },
    teardown: async () => {
      await Promise.all([...proxies.values()].map((proxy) => proxy.close()));
      await server?.dispose();
    },
    connect: async (options = {}, cuttable = false) => {
      const proxy = cuttable ? await TcpProxy.start({ host: server.host, port: server.port }) : undefined;
      const connection = new ZkConnectionService({
        connectionString: proxy?.connectString ?? server.connectString,
        sessionTimeout: 2_000,
        reconnectDelay: 50,
        ...options,
      });
      if (proxy) proxies.set(connection, proxy);
      opened.push(connection);
      await connection.connect();
      return connection;
    },
    serverWatches: () => watchCount(server),
    cut: (connection) => proxies.get(connection)!.blackhole(),
    mend: (connection) => proxies.get(connection)!.restore(),
  };
}

function standIn(): Backend {
  let zk: InMemoryZooKeeper;
  return {
    name: 'the in-process stand-in',
    setup: async () => {
      zk = new InMemoryZooKeeper();
    },
    teardown: async () => undefined,
    connect: async (options = {}) => {
      const connection = zk.connection({ sessionTimeout: 2_000, reconnectDelay: 50, ...options });
      opened.push(connection);
      await connection.connect();
      return connection;
    },
    serverWatches: async () => zk.watchCount,
    cut: (connection) => zk.disconnect(connection as InMemoryZkConnection),
    mend: (connection) => zk.reconnect(connection as InMemoryZkConnection),
  };
}

afterEach(async () => {
  await Promise.all(opened.splice(0).map((connection) => connection.close()));
});

let roots = 0;
/** A fresh persistent directory for one test. */
async function freshRoot(connection: Connection): Promise<string> {
  roots += 1;
  const root = `/contract-${process.pid}-${roots}`;
  await connection.ensurePath(root);
  return root;
}

async function expectCode(request: Promise<unknown>, code: ZkErrorCode): Promise<void> {
  const error = await request.then(
    () => new Error('resolved'),
    (failure: unknown) => failure,
  );
  expect(error).toBeInstanceOf(ZooKeeperError);
  expect((error as ZooKeeperError).zkCode).toBe(code);
}

/** Waits until `watcher` has heard of a change `writer` makes after everything it did before. */
async function fence(watcher: Connection, writer: Connection, path: string): Promise<void> {
  if ((await watcher.exists(path)) === null) await writer.create(path, Buffer.alloc(0), 'persistent');
  let fired = false;
  const registration = await watcher.watch(path, () => (fired = true));
  expect(registration).not.toBeNull();
  await writer.setData(path, Buffer.from(String(Math.random())));
  await waitFor(() => fired, { timeout: 5_000, message: 'the fence notification' });
}

function events(connection: Connection): ZkConnectionEvent[] {
  const seen: ZkConnectionEvent[] = [];
  connection.state$.subscribe((event) => seen.push(event));
  return seen;
}

describe.each([realServer(), standIn()])('port contract on $name', (backend) => {
  beforeAll(() => backend.setup(), 60_000);
  afterAll(() => backend.teardown());

  it('create: the path back; NODE_EXISTS twice, NO_NODE under a missing parent; reads of a missing node', async () => {
    const c = await backend.connect();
    const root = await freshRoot(c);
    expect(await c.create(`${root}/a`, Buffer.from('x'), 'persistent')).toBe(`${root}/a`);
    await expectCode(c.create(`${root}/a`, Buffer.alloc(0), 'persistent'), 'NODE_EXISTS');
    await expectCode(c.create(`${root}/missing/b`, Buffer.alloc(0), 'persistent'), 'NO_NODE');
    await expectCode(c.create(`${root}/missing/b-`, Buffer.alloc(0), 'ephemeral-sequential'), 'NO_NODE');
    const { data, stat } = await c.getData(`${root}/a`);
    expect(data.toString()).toBe('x');
    expect(stat).toMatchObject({ version: 0, cversion: 0, numChildren: 0, dataLength: 1, ephemeralOwner: 0n });
    expect(stat.mzxid).toBe(stat.czxid);
    expect(stat.pzxid).toBe(stat.czxid);
    await expectCode(c.getData(`${root}/none`), 'NO_NODE');
    await expectCode(c.getChildren(`${root}/none`), 'NO_NODE');
    await expectCode(c.setData(`${root}/none`, Buffer.alloc(0)), 'NO_NODE');
    expect(await c.exists(`${root}/none`)).toBeNull();
    expect(await c.exists(`${root}/a`)).toEqual(stat);
  });

  it("sequence numbers: 10 digits counting the parent's child creates; its cversion counts creates and deletes", async () => {
    const c = await backend.connect();
    const root = await freshRoot(c);
    const dir = `${root}/q`;
    await c.create(dir, Buffer.alloc(0), 'persistent');
    const first = await c.create(`${dir}/n-`, Buffer.alloc(0), 'ephemeral-sequential');
    const second = await c.create(`${dir}/n-`, Buffer.alloc(0), 'ephemeral-sequential');
    expect([first, second]).toEqual([`${dir}/n-0000000000`, `${dir}/n-0000000001`]);
    await c.remove(first);
    await c.create(`${dir}/plain`, Buffer.alloc(0), 'persistent');
    expect((await c.getChildren(dir)).stat).toMatchObject({ cversion: 4, numChildren: 2 });
    // The fourth create: a delete moves cversion but not the sequence (a server stores the count
    // of creates and reports cversion as 2 * creates - numChildren).
    expect(await c.create(`${dir}/m-`, Buffer.alloc(0), 'ephemeral-sequential')).toBe(`${dir}/m-0000000003`);
    const { children, stat } = await c.getChildren(dir);
    expect(children.toSorted()).toEqual(['m-0000000003', 'n-0000000001', 'plain']);
    expect(stat).toMatchObject({ cversion: 5, numChildren: 3 });
    await c.remove(`${dir}/plain`);
    await c.remove(`${dir}/m-0000000003`);
    expect((await c.getChildren(dir)).stat).toMatchObject({ cversion: 7, numChildren: 1 });
    expect(await c.create(`${dir}/k-`, Buffer.alloc(0), 'ephemeral-sequential')).toBe(`${dir}/k-0000000004`);
  });

  it("getChildren's Stat: pzxid is the zxid of the last create or delete of a child; data changes do not move it", async () => {
    const c = await backend.connect();
    const root = await freshRoot(c);
    const dir = `${root}/d`;
    await c.create(dir, Buffer.alloc(0), 'persistent');
    await c.create(`${dir}/a`, Buffer.alloc(0), 'persistent');
    const a = (await c.exists(`${dir}/a`))!;
    expect((await c.getChildren(dir)).stat.pzxid).toBe(a.czxid);
    const changed = await c.setData(`${dir}/a`, Buffer.from('new'));
    expect(changed.mzxid).toBeGreaterThan(a.czxid);
    expect(changed.version).toBe(1);
    expect((await c.getChildren(dir)).stat.pzxid).toBe(a.czxid);
    await c.remove(`${dir}/a`);
    const afterDelete = (await c.getChildren(dir)).stat.pzxid;
    expect(afterDelete).toBeGreaterThan(changed.mzxid);
    await c.create(`${dir}/b`, Buffer.alloc(0), 'persistent');
    const b = (await c.exists(`${dir}/b`))!;
    expect(b.czxid).toBeGreaterThan(afterDelete);
    expect((await c.getChildren(dir)).stat).toMatchObject({ pzxid: b.czxid, cversion: 3, numChildren: 1 });
  });

  it('remove: NOT_EMPTY with children, BAD_VERSION with another version, NO_NODE when gone; setData checks versions too', async () => {
    const c = await backend.connect();
    const root = await freshRoot(c);
    await c.create(`${root}/p`, Buffer.alloc(0), 'persistent');
    await c.create(`${root}/p/child`, Buffer.alloc(0), 'persistent');
    await expectCode(c.remove(`${root}/p`), 'NOT_EMPTY');
    await expectCode(c.remove(`${root}/p/child`, 3), 'BAD_VERSION');
    await expectCode(c.setData(`${root}/p/child`, Buffer.alloc(0), 3), 'BAD_VERSION');
    expect((await c.setData(`${root}/p/child`, Buffer.from('v1'), 0)).version).toBe(1);
    await c.remove(`${root}/p/child`, 1);
    await expectCode(c.remove(`${root}/p/child`), 'NO_NODE');
    await c.remove(`${root}/p`);
  });

  it('ephemeral nodes: owned by the session, gone when it expires; ended aborts once (session-expired); a new session follows', async () => {
    const c = await backend.connect();
    const other = await backend.connect();
    const root = await freshRoot(c);
    const session = c.currentSession()!;
    const node = await c.create(`${root}/e-`, Buffer.alloc(0), 'ephemeral-sequential');
    const owned = (await other.exists(node))!;
    expect(owned.ephemeralOwner).toBe(session.id);
    const reasons: unknown[] = [];
    session.ended.addEventListener('abort', () => reasons.push(session.ended.reason));
    const seen = events(c);

    await expireSession(c);
    expect(reasons).toEqual(['session-expired']);
    expect(await other.exists(node)).toBeNull();
    expect((await other.getChildren(root)).stat.pzxid).toBeGreaterThan(owned.czxid);
    const next = await c.waitForSession();
    expect(next.id).not.toBe(session.id);
    expect(next.ended.aborted).toBe(false);
    expect(seen).toContainEqual({ state: 'expired', reason: 'session-expired' });
    expect(seen.at(-1)).toMatchObject({ state: 'connected', newSession: true });
    await expectCode(c.create(`${root}/x/y`, Buffer.alloc(0), 'ephemeral'), 'NO_NODE'); // (requests go on)
  });

  it('close: ended aborts (closed) before the nodes go; the ephemeral nodes go at once; then requests fail', async () => {
    const c = await backend.connect();
    const other = await backend.connect();
    const root = await freshRoot(c);
    const node = await c.create(`${root}/e`, Buffer.alloc(0), 'ephemeral');
    const session = c.currentSession()!;
    await c.close();
    expect(session.ended.reason).toBe('closed');
    expect(c.state).toBe('closed');
    expect(await other.exists(node)).toBeNull();
    await expect(c.getData(node)).rejects.toThrow(/closed/);
    await expect(c.waitForSession()).rejects.toThrow(/closed/);
  });

  it('containers: reclaimed once emptied after having children, emptied container parents too; others stay', async () => {
    const c = await backend.connect();
    const root = await freshRoot(c);
    await c.ensureLockDirectory(`${root}/a/b`);
    await c.ensureLockDirectory(`${root}/unused`);
    await c.ensurePath(`${root}/persistent`);
    await c.ensureLockDirectory(`${root}/a/b`); // existing nodes are fine
    const child = await c.create(`${root}/a/b/n-`, Buffer.alloc(0), 'ephemeral-sequential');
    await c.remove(child);
    await waitFor(async () => (await c.exists(`${root}/a`)) === null, {
      timeout: 15_000,
      message: 'the emptied containers reclaimed',
    });
    expect((await c.getChildren(root)).children.toSorted()).toEqual(['persistent', 'unused']);
  });

  it('watches: once on a data change, once on delete, never after cancel; a missing node gives null and no watch', async () => {
    const w = await backend.connect();
    const x = await backend.connect();
    const root = await freshRoot(w);
    const node = `${root}/n`;
    const gate = `${root}/fence`;
    await x.create(node, Buffer.from('a'), 'persistent');
    const calls: string[] = [];

    const changed = await w.watch(node, () => calls.push('changed'));
    expect(changed?.data.toString()).toBe('a');
    await x.setData(node, Buffer.from('b'));
    await waitFor(() => calls.length === 1, { message: 'the change notification' });
    await x.setData(node, Buffer.from('c')); // the watch was one-shot
    await fence(w, x, gate);
    expect(calls).toEqual(['changed']);

    await w.watch(node, () => calls.push('deleted'));
    await x.remove(node);
    await waitFor(() => calls.length === 2, { message: 'the delete notification' });

    await x.create(node, Buffer.alloc(0), 'persistent');
    const cancelled = await w.watch(node, () => calls.push('cancelled'));
    cancelled!.cancel();
    expect(await w.watch(`${root}/none`, () => calls.push('missing'))).toBeNull();
    await x.setData(node, Buffer.from('d'));
    await x.create(`${root}/none`, Buffer.alloc(0), 'persistent');
    await fence(w, x, gate);
    expect(calls).toEqual(['changed', 'deleted']);
    expect(w.stats().watches).toBe(0);
    await waitFor(async () => (await backend.serverWatches()) === 0, { message: 'no watch left on the server' });
  });

  it('one server watch per path: two listeners, one notification; each registration cancels only itself', async () => {
    const w = await backend.connect();
    const x = await backend.connect();
    const root = await freshRoot(w);
    const node = `${root}/n`;
    await x.create(node, Buffer.alloc(0), 'persistent');
    const calls: string[] = [];
    const first = await w.watch(node, () => calls.push('first'));
    await w.watch(node, () => calls.push('second'));
    const third = await w.watch(node, () => calls.push('third'));
    expect(w.stats().watches).toBe(1);
    expect(await backend.serverWatches()).toBe(1);
    first!.cancel();
    third!.cancel();
    const before = w.stats().notifications;
    await x.setData(node, Buffer.from('b'));
    await waitFor(() => calls.length > 0, { message: 'the notification' });
    expect(calls).toEqual(['second']);
    expect(w.stats().notifications).toBe(before + 1);
    expect(w.stats().watches).toBe(0);
  });

  it('a cut connection: requests wait up to operationTimeout; suspended; mended in time, the session and its nodes survive', async () => {
    const c = await backend.connect({ sessionTimeout: 4_000, operationTimeout: 600 }, true);
    const other = await backend.connect();
    const root = await freshRoot(other);
    const session = c.currentSession()!;
    const node = await c.create(`${root}/e`, Buffer.alloc(0), 'ephemeral');
    const seen = events(c);
    backend.cut(c);
    await expectCode(c.getData(node), 'OPERATION_TIMEOUT');
    await waitFor(() => c.state === 'suspended', { timeout: 5_000, message: 'suspended' });
    const waiting = c.create(`${root}/made-while-cut`, Buffer.alloc(0), 'persistent');
    backend.mend(c);
    await waitFor(() => c.state === 'connected', { timeout: 5_000, message: 'connected again' });
    expect(c.currentSession()).toBe(session);
    expect(session.ended.aborted).toBe(false);
    expect(seen.at(-1)).toMatchObject({ state: 'connected', newSession: false });
    await expect(waiting).resolves.toBe(`${root}/made-while-cut`);
    expect(await other.exists(node)).not.toBeNull();
  }, 20_000);

  it('a cut connection not mended: presumed lost at 90% of the session timeout (connection-lost), expired by the server after it', async () => {
    const c = await backend.connect({ sessionTimeout: 2_000 }, true);
    const other = await backend.connect();
    const root = await freshRoot(other);
    const session = c.currentSession()!;
    const node = await c.create(`${root}/e`, Buffer.alloc(0), 'ephemeral');
    let toldAt = Infinity;
    session.ended.addEventListener('abort', () => (toldAt = performance.now()));
    backend.cut(c);
    const goneAt = await waitFor(async () => ((await other.exists(node)) === null ? performance.now() : 0), {
      timeout: 10_000,
      message: 'expired by the server',
    });
    // The holder's side is told before the server lets anybody else have its nodes.
    expect(toldAt).toBeLessThan(goneAt);
    expect(session.ended.reason).toBe('connection-lost');
    backend.mend(c);
    const next = await c.waitForSession();
    expect(next.id).not.toBe(session.id);
  }, 20_000);
});
