/**
 * README promises of LockService and ZkConnectionService that no other test pinned (issue 12),
 * against a real ZooKeeper server: read-lock give-up, coalescing of plain locks only, the
 * revocation marker and its cost, the event stream's life, state$, one server watch per path,
 * lockTimeout, multi-lock options, local FIFO order.
 */
import { createServer, type AddressInfo } from 'node:net';
import { Logger } from '@nestjs/common';
import { Subject } from 'rxjs';
import { describe, expect, it, onTestFinished, vi } from 'vitest';
import {
  LockAbortedError,
  LockTimeoutError,
  ZkConnectionService,
  type LockEvent,
  type LockHandle,
  type ZkConnectionEvent,
} from '../../lib/index.js';
import { useFileServer } from '../fixtures/file-server.js';
import { childrenOf, lockClient, lockClients } from '../fixtures/lock-clients.js';
import { requestsDuring } from '../fixtures/requests.js';
import { TcpProxy, waitFor, watchCount, watchesByPath } from '../support/index.js';

const server = useFileServer();

function children(path: string): Promise<string[]> {
  return childrenOf(server.connectString, path);
}

async function proxied(): Promise<TcpProxy> {
  const proxy = await TcpProxy.start({ host: server.host, port: server.port });
  onTestFinished(() => proxy.close());
  return proxy;
}

describe('a read lock that gives up', () => {
  it.each(['timeout', 'abort'] as const)(
    'by %s, behind a writer: leaves no node and no watch (it had both while waiting)',
    async (how) => {
      const [writer, reader] = await lockClients(2, server.connectString);
      const path = `/locks/read-give-up-${how}`;
      const held = await writer.locks.acquireWrite(path);
      const controller = new AbortController();
      const attempt = reader.locks
        .acquireRead(path, how === 'timeout' ? { timeout: 1_500 } : { signal: controller.signal })
        .catch((e: unknown) => e);
      await waitFor(async () => (await watchesByPath(server)).get(held.node) === 1, {
        timeout: 1_400,
        interval: 10,
        message: 'the reader watches the writer',
      });
      expect(await children(path)).toHaveLength(2);
      if (how === 'abort') controller.abort();
      expect(await attempt).toBeInstanceOf(how === 'timeout' ? LockTimeoutError : LockAbortedError);
      expect(await children(path)).toEqual([held.node.split('/').pop()]);
      expect(reader.connection.stats().watches).toBe(0);
      await waitFor(async () => (await watchCount(server)) === 0, { message: 'the server watch removed' });
      await held.release();
    },
  );
});

describe('coalesce applies to plain locks only', () => {
  it('plain locks of one process share a node; read locks, explicit writes and leases each take their own', async () => {
    const { locks } = await lockClient(server.connectString, { coalesce: { maxHoldMs: 10_000 } });

    // Plain: the second caller waits in memory behind the same node.
    const plain = await locks.acquire('/locks/co-plain');
    const plainNext = locks.acquire('/locks/co-plain');
    expect(await children('/locks/co-plain')).toHaveLength(1);
    await plain.release();
    expect((await plainNext).node).toBe(plain.node);
    await (await plainNext).release();

    // Read locks: two readers of one process are two nodes, both holding.
    const reads = [await locks.acquireRead('/locks/co-read'), await locks.acquireRead('/locks/co-read')];
    expect(reads[0].node).not.toBe(reads[1].node);
    expect((await locks.inspect('/locks/co-read')).holders).toHaveLength(2);
    for (const lock of reads) await lock.release();

    // mode 'write': the second caller queues its own node in ZooKeeper (Curator's write-lock name).
    const write = await locks.acquireWrite('/locks/co-write');
    const writeNext = locks.acquireWrite('/locks/co-write');
    await waitFor(async () => (await locks.inspect('/locks/co-write')).queue.length === 1, {
      message: 'the second writer queued in ZooKeeper',
    });
    expect((await children('/locks/co-write')).every((name) => name.includes('__WRIT__'))).toBe(true);
    await write.release();
    const second = await writeNext;
    expect(second.node).not.toBe(write.node);
    await second.release();

    // Leases: one node per lease.
    const leases = [
      await locks.acquire('/locks/co-sem', { leases: 2 }),
      await locks.acquire('/locks/co-sem', { leases: 2 }),
    ];
    expect(leases[0].node).not.toBe(leases[1].node);
    expect(await children('/locks/co-sem/leases')).toHaveLength(2);
    for (const lock of leases) await lock.release();
  });

  it('local order is FIFO, and tryAcquire is null while another caller of the process waits', async () => {
    const { locks } = await lockClient(server.connectString, { coalesce: { maxHoldMs: 10_000 } });
    const held = await locks.acquire('/locks/co-fifo');
    const order: number[] = [];
    const waiting = [0, 1, 2, 3, 4].map((i) =>
      locks.acquire('/locks/co-fifo').then(async (lock) => {
        order.push(i);
        await lock.release();
      }),
    );
    await held.release();
    // The holder is gone, but callers still wait or hold: busy for this process.
    expect(await locks.tryAcquire('/locks/co-fifo')).toBeNull();
    await Promise.all(waiting);
    expect(order).toEqual([0, 1, 2, 3, 4]);
  });
});

describe('revocation', () => {
  it('while a request is pending, inspect shows the owner as __REVOKE__; a holder with heldLockWatchDelay Infinity is never told', async () => {
    const [holder, asker] = await lockClients(2, server.connectString); // (fixture: heldLockWatchDelay Infinity)
    const held = await holder.locks.acquire('/locks/revoke-inspect');
    expect(await asker.locks.requestRelease('/locks/revoke-inspect')).toBe(1);
    const info = await asker.locks.inspect('/locks/revoke-inspect');
    expect(info.holder?.node).toBe(held.node.split('/').pop());
    expect(info.holder?.owner).toBe('__REVOKE__');
    // Nothing watches its node, so nothing can tell it: the request stays unseen.
    expect((await watchesByPath(server)).has(held.node)).toBe(false);
    expect(holder.connection.stats().watches).toBe(0);
    expect(held.signal.aborted).toBe(false);
    await held.release();
  });

  it('a holder that is not revocable sees a request once it has held the lock for heldLockWatchDelay (default 1000 ms)', async () => {
    const [holder, asker] = await lockClients(2, server.connectString, { heldLockWatchDelay: undefined });
    const held = await holder.locks.acquire('/locks/revoke-late');
    const acquiredAt = performance.now();
    expect(await asker.locks.requestRelease('/locks/revoke-late')).toBe(1);
    await waitFor(() => held.signal.aborted, { timeout: 5_000, message: 'the holder told' });
    expect(performance.now() - acquiredAt).toBeGreaterThanOrEqual(1_000 - 1);
    expect(held.signal.reason).toMatchObject({ name: 'LockLostError', reason: 'revoked' });
    await held.release();
  });

  it('revocable costs one request more per acquisition: the watch on our own node from the start', async () => {
    const proxy = await proxied();
    const { locks, connection } = await lockClient(proxy.connectString, { sessionTimeout: 4_000 });
    await connection.ensurePath('/locks/revoke-cost'); // a directory that stays: no re-creation counted
    const cycle = (revocable: boolean) =>
      requestsDuring(server, proxy, async () => {
        const lock = await locks.acquire('/locks/revoke-cost', { revocable });
        if (revocable) await waitFor(() => connection.stats().watches === 1, { message: 'own node watched' });
        await lock.release();
      });
    expect(await cycle(false)).toBe(3);
    expect(await cycle(true)).toBe(4);
    await waitFor(async () => (await watchCount(server)) === 0, { message: 'our delete fired our own watch' });
  });
});

describe('the event stream', () => {
  it('completes at shutdown', async () => {
    const { locks } = await lockClient(server.connectString);
    const seen: string[] = [];
    let completed = false;
    locks.events.subscribe({ next: (event) => seen.push(event.type), complete: () => (completed = true) });
    await locks.withLock('/locks/events-end', () => undefined);
    expect(completed).toBe(false);
    await locks.beforeApplicationShutdown();
    expect(completed).toBe(true);
    expect(seen).toEqual(['acquired', 'released']);
  });

  it('is built only while someone subscribes (or logEvents is on): nothing reaches a Subject otherwise', async () => {
    const { locks } = await lockClient(server.connectString);
    const next = vi.spyOn(Subject.prototype, 'next');
    onTestFinished(() => next.mockRestore());
    const lockEvents = () =>
      next.mock.calls.filter(([value]) => typeof value === 'object' && value !== null && 'path' in value).length;
    // Nobody listens: no event is made, a timed-out wait included.
    await locks.withLock('/locks/events-lazy', () => undefined);
    const other = await lockClient(server.connectString);
    const held = await other.locks.acquire('/locks/events-lazy');
    await expect(locks.acquire('/locks/events-lazy', { timeout: 50 })).rejects.toBeInstanceOf(LockTimeoutError);
    await held.release();
    expect(lockEvents()).toBe(0);
    // The control: while someone listens, the same calls go through the spied Subject.
    const seen: LockEvent[] = [];
    const subscription = locks.events.subscribe((event) => seen.push(event));
    await locks.withLock('/locks/events-lazy', () => undefined);
    subscription.unsubscribe();
    expect(seen.map((event) => event.type)).toEqual(['acquired', 'released']);
    expect(lockEvents()).toBe(2);
    // Unsubscribed again: nothing more.
    await locks.withLock('/locks/events-lazy', () => undefined);
    expect(lockEvents()).toBe(2);
  });
});

describe('ZkConnectionService.state$', () => {
  /** The first event a new subscriber gets, synchronously. */
  function firstEvent(connection: ZkConnectionService): ZkConnectionEvent | 'completed' | undefined {
    let first: ZkConnectionEvent | 'completed' | undefined;
    const subscription = connection.state$.subscribe({
      next: (event) => (first ??= event),
      complete: () => (first ??= 'completed'),
    });
    subscription.unsubscribe();
    return first;
  }

  it('starts with the current state: idle, connected (with the session), suspended', async () => {
    const proxy = await proxied();
    const connection = new ZkConnectionService({ connectionString: proxy.connectString, sessionTimeout: 4_000 });
    onTestFinished(() => connection.close());
    expect(firstEvent(connection)).toEqual({ state: 'idle' });
    await connection.connect();
    const session = connection.sessionCredentials()!.id.toString('hex');
    expect(firstEvent(connection)).toMatchObject({ state: 'connected', sessionId: session });
    proxy.refuse();
    proxy.reset();
    await waitFor(() => connection.state === 'suspended', { message: 'suspended' });
    expect(firstEvent(connection)).toEqual({ state: 'suspended' });
    proxy.restore();
  });

  it('after close, a new subscriber gets the current state, closed, then completion', async () => {
    const connection = new ZkConnectionService({ connectionString: server.connectString });
    await connection.connect();
    await connection.close();
    const events: (ZkConnectionEvent | 'completed')[] = [];
    connection.state$.subscribe({ next: (event) => events.push(event), complete: () => events.push('completed') });
    expect(events).toEqual([{ state: 'closed', reason: 'closed' }, 'completed']);
  });
});

describe('ZkConnectionService.watch', () => {
  it('one-shot, and one server watch per path however many callers; the last to cancel removes it', async () => {
    const [{ connection }, admin] = await lockClients(2, server.connectString);
    const path = await admin.connection.create('/watched-', Buffer.from('a'), 'ephemeral-sequential');
    const calls = [0, 0, 0];
    const watchAll = () => Promise.all(calls.map((_, i) => connection.watch(path, () => (calls[i] += 1))));
    const first = await watchAll();
    expect(first.map((registration) => registration?.data.toString())).toEqual(['a', 'a', 'a']);
    expect((await watchesByPath(server)).get(path)).toBe(1); // one session watching, once
    expect(await watchCount(server)).toBe(1);

    await admin.connection.setData(path, Buffer.from('b'));
    await waitFor(() => calls.every((count) => count === 1), { message: 'every caller told' });
    expect(await watchCount(server)).toBe(0); // one-shot: fired and gone
    await admin.connection.setData(path, Buffer.from('c'));
    await admin.connection.getData(path); // (a round trip after the change: a notification would be here)
    expect(calls).toEqual([1, 1, 1]);

    const again = await watchAll();
    expect(await watchCount(server)).toBe(1);
    again[0]!.cancel();
    again[1]!.cancel();
    expect(await watchCount(server)).toBe(1); // one caller still wants it
    again[2]!.cancel();
    await waitFor(async () => (await watchCount(server)) === 0, { message: 'the last cancel removes it' });
    await admin.connection.remove(path);
    expect(calls).toEqual([1, 1, 1]);
  });
});

describe('options', () => {
  it('lockTimeout is the default wait of acquire and withLock', async () => {
    const [holder, waiter] = await lockClients(2, server.connectString, { lockTimeout: 300 });
    const held = await holder.locks.acquire('/locks/lock-timeout');
    const started = performance.now();
    const error = await waiter.locks.acquire('/locks/lock-timeout').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LockTimeoutError);
    expect((error as LockTimeoutError).timeout).toBe(300);
    expect(performance.now() - started).toBeGreaterThanOrEqual(300 - 1);
    await expect(waiter.locks.withLock('/locks/lock-timeout', () => 'ran')).rejects.toBeInstanceOf(LockTimeoutError);
    await held.release();
  });
});

describe('reconnectDelay', () => {
  it('is the longest pause between two rounds of connection attempts', async () => {
    // A server that accepts and at once drops every connection: each one is an attempt.
    let attempts = 0;
    const refusing = createServer((socket) => {
      attempts += 1;
      socket.destroy();
    });
    await new Promise<void>((resolve) => refusing.listen(0, '127.0.0.1', resolve));
    onTestFinished(() => new Promise<void>((resolve) => refusing.close(() => resolve())));
    const { port } = refusing.address() as AddressInfo;
    const connection = new ZkConnectionService({
      connectionString: `127.0.0.1:${port}`,
      reconnectDelay: 100,
      connectTimeout: 1_500,
    });
    await expect(connection.connect()).rejects.toThrow('1500 ms');
    // Pauses of at most 100 ms (50 on average) over 1.5 s: about 30 rounds, some 55 on an idle
    // machine; with reconnectDelay 1000 it makes about 5.
    expect(attempts).toBeGreaterThanOrEqual(20);
  });
});

describe('semaphore tryAcquire', () => {
  it('is null while another contender is taking a lease, even with a lease free', async () => {
    const [{ locks }, other] = await lockClients(2, server.connectString);
    await other.connection.ensurePath('/locks/sem-taking/locks');
    // Another contender holds the inner lock: it is between its lease's create and its check.
    const taking = await other.connection.create(
      '/locks/sem-taking/locks/_c_0a0b0c0d-0000-4000-8000-000000000001-lock-',
      Buffer.alloc(0),
      'ephemeral-sequential',
    );
    expect(await locks.tryAcquire('/locks/sem-taking', { leases: 2 })).toBeNull();
    expect(await children('/locks/sem-taking/leases')).toEqual([]); // none was free-for-all meanwhile
    await other.connection.remove(taking);
    const lease = await locks.tryAcquire('/locks/sem-taking', { leases: 2 });
    expect(lease?.kind).toBe('lease');
    await lease?.release();
  });
});

describe('multi-locks', () => {
  it('mode and leases apply to every path', async () => {
    const [a, b] = await lockClients(2, server.connectString);
    const paths = ['/locks/multi-read/x', '/locks/multi-read/y'];
    const reads = await Promise.all(
      [a, b].map(({ locks }) => locks.acquireAll(paths, { mode: 'read', timeout: 5_000 })),
    );
    // Both hold both, as readers.
    expect(reads.flatMap((all) => all.locks.map((lock: LockHandle) => lock.kind))).toEqual([
      'read',
      'read',
      'read',
      'read',
    ]);
    for (const path of paths) expect((await a.locks.inspect(path)).holders).toHaveLength(2);
    for (const all of reads) await all.release();

    const leases = await a.locks.acquireAll(['/locks/multi-sem/p', '/locks/multi-sem/q'], { leases: 2 });
    expect(leases.locks.map((lock: LockHandle) => lock.kind)).toEqual(['lease', 'lease']);
    expect(leases.locks.map((lock: LockHandle) => lock.node.includes('/leases/'))).toEqual([true, true]);
    await leases.release();
  });
});

describe('a release that fails for good, after a body that failed', () => {
  it("withLock rejects with the body's error; the failed release is logged", async () => {
    // The directory grants create and read, not delete: the release fails with NO_AUTH.
    const { connection, locks } = await lockClient(server.connectString, {
      acl: [{ scheme: 'world', id: 'anyone', perms: 'cr' }],
    });
    await connection.ensurePath('/noauth-body/a');
    const warnings: string[] = [];
    const warn = vi.spyOn(Logger.prototype, 'warn').mockImplementation((message: unknown) => {
      warnings.push(String(message));
    });
    onTestFinished(() => warn.mockRestore());
    const bodyError = new Error('the body failed');
    const result = await locks
      .withLock('/noauth-body/a', () => {
        throw bodyError;
      })
      .catch((error: unknown) => error);
    expect(result).toBe(bodyError);
    expect(warnings.some((line) => line.includes('/noauth-body/a') && line.includes('NO_AUTH'))).toBe(true);
  });
});
