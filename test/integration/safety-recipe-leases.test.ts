/**
 * Semaphores against a real server: a caller with another number of leases is refused (each
 * lease node records its N), and a lease whose session ends between the listing that grants it
 * and its return is never returned (the attempt starts over in the next session).
 */
import { performance } from 'node:perf_hooks';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { InvalidOptionsError, type ZkConnectionService } from '../../lib/index.js';
import type { NodeStat, WatchRegistration, ZkCreateMode, ZkPort, ZkSession } from '../../lib/connection/zk-port.js';
import { acquireLease } from '../../lib/lock/lock-recipe.js';
import { childrenOf, closeLockClients, lockClient, lockClients } from '../fixtures/lock-clients.js';
import { startZooKeeper, TcpProxy, waitFor, watchCount, type ZkServer } from '../support/index.js';

let server: ZkServer;
const proxies: TcpProxy[] = [];

beforeAll(async () => {
  server = await startZooKeeper();
});
afterEach(async () => {
  await closeLockClients();
  await Promise.all(proxies.splice(0).map((proxy) => proxy.close()));
});
afterAll(async () => {
  await server?.dispose();
});

function byName(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function children(path: string): Promise<string[]> {
  return childrenOf(server.connectString, path);
}

describe('a semaphore caller with another number of leases', () => {
  it('is refused beside a holder with fewer leases (it would fit by its own count): InvalidOptionsError naming both', async () => {
    const [a, b] = await lockClients(2, server.connectString);
    const held = await a.locks.acquire('/leases/fewer', { leases: 1 });
    const error = await b.locks.acquire('/leases/fewer', { leases: 2, timeout: 2_000 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidOptionsError);
    expect((error as Error).message).toContain('leases = 2');
    expect((error as Error).message).toContain('leases: 1');
    expect(await b.locks.tryAcquire('/leases/fewer', { leases: 2 }).catch((e: unknown) => e)).toBeInstanceOf(
      InvalidOptionsError,
    );
    expect(await children('/leases/fewer/leases')).toEqual([held.node.split('/').pop()]);
    expect(await children('/leases/fewer/locks')).toEqual([]);
    await held.release();
  });

  it('is refused when it has to wait behind holders with more leases (the watches bring their N)', async () => {
    const [a, b, c] = await lockClients(3, server.connectString);
    const held = [
      await a.locks.acquire('/leases/more', { leases: 2 }),
      await b.locks.acquire('/leases/more', { leases: 2 }),
    ];
    const error = await c.locks.acquire('/leases/more', { leases: 1, timeout: 2_000 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidOptionsError);
    expect((error as Error).message).toContain('leases = 1');
    expect((error as Error).message).toContain('leases: 2');
    expect((await children('/leases/more/leases')).toSorted(byName)).toEqual(
      held.map((l) => l.node.split('/').pop()!).toSorted(byName),
    );
    expect(await children('/leases/more/locks')).toEqual([]);
    await waitFor(async () => (await watchCount(server)) === 0, { message: 'no watch left' });
    await Promise.all(held.map((lock) => lock.release()));
  });

  it('the same number is admitted as before', async () => {
    const [a, b] = await lockClients(2, server.connectString);
    const first = await a.locks.acquire('/leases/same', { leases: 2 });
    const second = await b.locks.acquire('/leases/same', { leases: 2, timeout: 2_000 });
    expect(second.fencingToken).toBeGreaterThan(0n);
    await Promise.all([first.release(), second.release()]);
  });
});

/**
 * The connection as the recipe sees it, except that the first listing of `<dir>/leases` is
 * handed over only after the session has ended (cut off by the proxy until presumed lost).
 */
class SessionEndsAfterLeaseListing implements ZkPort {
  cut = false;
  constructor(
    private readonly connection: ZkConnectionService,
    private readonly proxy: TcpProxy,
  ) {}
  currentSession(): ZkSession | undefined {
    return this.connection.currentSession();
  }
  waitForSession(signal?: AbortSignal): Promise<ZkSession> {
    return this.connection.waitForSession(signal);
  }
  create(path: string, data: Buffer, mode: ZkCreateMode): Promise<string> {
    return this.connection.create(path, data, mode);
  }
  ensureLockDirectory(path: string): Promise<void> {
    return this.connection.ensureLockDirectory(path);
  }
  remove(path: string, version?: number): Promise<void> {
    return this.connection.remove(path, version);
  }
  async getChildren(path: string): Promise<{ children: string[]; stat: NodeStat }> {
    const listing = await this.connection.getChildren(path);
    if (!this.cut && path.endsWith('/leases')) {
      this.cut = true;
      const session = this.connection.currentSession()!;
      this.proxy.blackhole();
      await waitFor(() => session.ended.aborted, { message: 'session presumed lost' });
      this.proxy.restore();
    }
    return listing;
  }
  getData(path: string): Promise<{ data: Buffer; stat: NodeStat }> {
    return this.connection.getData(path);
  }
  exists(path: string): Promise<NodeStat | null> {
    return this.connection.exists(path);
  }
  setData(path: string, data: Buffer, version?: number): Promise<NodeStat> {
    return this.connection.setData(path, data, version);
  }
  watch(path: string, onChange: () => void): Promise<WatchRegistration | null> {
    return this.connection.watch(path, onChange);
  }
}

describe('a lease whose session ends between its granting listing and its return', () => {
  it('is not returned: the attempt starts over and returns a lease of the new session', async () => {
    const proxy = await TcpProxy.start({ host: server.host, port: server.port });
    proxies.push(proxy);
    const { connection } = await lockClient(proxy.connectString, { sessionTimeout: 1_000 });
    const first = connection.currentSession()!;
    const port = new SessionEndsAfterLeaseListing(connection, proxy);
    const lease = await acquireLease(port, {
      dir: '/leases/lost',
      data: Buffer.from('{"leases":1}'),
      deadline: performance.now() + 20_000,
      wait: true,
      leases: 1,
    });
    expect(port.cut).toBe(true);
    expect(first.ended.aborted).toBe(true);
    expect(lease).not.toBeNull();
    expect(lease!.session).not.toBe(first);
    expect(lease!.session.ended.aborted).toBe(false);
    expect(await children('/leases/lost/leases')).toEqual([lease!.node.split('/').pop()]);
    await connection.remove(lease!.node);
  }, 30_000);
});
