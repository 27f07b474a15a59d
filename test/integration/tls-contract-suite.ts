/**
 * The lock contract of contract.test.ts, over TLS (issue 16): the same checks, against servers
 * with only a secureClientPort, every contender connecting with the `tls` option. The server's
 * own view (lock nodes, watches) is read over TLS too: another TLS session, four letter words on
 * the secure port. Used by tls-contract.test.ts (a standalone server) and tls-ensemble.test.ts.
 */
import { describe, expect, it } from 'vitest';
import {
  LockAbortedError,
  LockLostError,
  LockTimeoutError,
  NotConnectedError,
  ZkConnectionService,
  ZooKeeperError,
  type ZkLockOptions,
} from '../../lib/index.js';
import { ZooKeeperClientAdapter } from '../../lib/connection/zookeeper-client.adapter.js';
import { resolveOptions } from '../../lib/zk-lock.options.js';
import { tlsFourLetter } from '../../lib/testing/servers/tls.js';
import { OverlapDetector } from '../fixtures/lock-clients.js';
import { TcpProxy, waitFor, type ZkServer } from '../support/index.js';
import { LONG_WAIT_MS, SHORT_WAIT_MS, type Contender, type ContractHold, type Variant } from './contract-variants.js';

/** Where the contract runs: read inside tests (the servers start in beforeAll). */
export interface TlsTarget {
  /** The connection string of every member. */
  connectString(): string;
  /** The running members (four letter words go to each). */
  servers(): ZkServer[];
  /** The `tls` option of a client of these servers. */
  tls(): NonNullable<ZkLockOptions['tls']>;
}

/** Registers the contract over TLS for each variant; `proxies` are closed by the caller after each test. */
export function describeContractOverTls(target: TlsTarget, variants: Variant[], proxies: TcpProxy[]): void {
  let paths = 0;
  const freshPath = () => `/contract-tls/lock-${++paths}`;

  /** Lock nodes (names ending in a 10-digit sequence) under `path`, as another TLS session sees them. */
  async function lockNodesUnder(path: string): Promise<string[]> {
    const connection = new ZkConnectionService({ connectionString: target.connectString(), tls: target.tls() });
    await connection.connect();
    const walk = async (dir: string): Promise<string[]> => {
      let children: string[];
      try {
        ({ children } = await connection.getChildren(dir));
      } catch (error) {
        if (ZooKeeperError.is(error, 'NO_NODE')) return [];
        throw error;
      }
      const found = await Promise.all(
        children.map(async (child) => (/\d{10}$/.test(child) ? [`${dir}/${child}`] : walk(`${dir}/${child}`))),
      );
      return found.flat();
    };
    try {
      return (await walk(path)).toSorted();
    } finally {
      await connection.close();
    }
  }

  /** Watches the servers hold on `path` and below (`wchp` over TLS: one line per session and path). */
  async function watchesUnder(path: string): Promise<number> {
    let count = 0;
    for (const server of target.servers().filter((member) => member.isRunning())) {
      let watched: string | undefined;
      for (const line of (
        await tlsFourLetter({ host: server.host, port: server.port, tls: server.tls! }, 'wchp')
      ).split('\n')) {
        if (line.startsWith('/')) watched = line.trim();
        else if (watched && (watched === path || watched.startsWith(`${path}/`)) && /^\s+0x[0-9a-f]+/i.test(line))
          count += 1;
      }
    }
    return count;
  }

  async function settlesTo(path: string, nodes: number): Promise<void> {
    await waitFor(async () => (await lockNodesUnder(path)).length === nodes && (await watchesUnder(path)) === 0, {
      message: `${nodes} lock node(s) and no watch left under ${path}`,
    });
  }

  /** Ends a session from outside, as the server does on expiry: resume it over TLS, then close it. */
  async function expireSession(credentials: { id: Buffer; password: Buffer }): Promise<void> {
    const options = resolveOptions({ connectionString: target.connectString(), tls: target.tls() });
    const adapter = new ZooKeeperClientAdapter({ ...options, sessionTimeout: 2_000, session: credentials });
    try {
      await new Promise<void>((resolve) => {
        adapter.onEvent((event) => {
          if (event.type === 'connected') resolve();
        });
        adapter.connect();
      });
      await adapter.close(5_000);
    } finally {
      await adapter.close(0);
    }
  }

  const outcome = <T>(promise: Promise<T>) =>
    promise.then(
      (value) => ({ value, error: undefined as unknown }),
      (error: unknown) => ({ value: undefined, error }),
    );
  const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

  describe.each(variants)('the lock contract over TLS: $name', (variant: Variant) => {
    const contender = (options: Partial<ZkLockOptions> = {}): Promise<Contender> =>
      variant.contender(target.connectString(), { tls: target.tls(), ...options });
    const long = { timeout: LONG_WAIT_MS };
    const short = { timeout: SHORT_WAIT_MS };

    it('excludes: while one holds, another times out; after the release it holds, with a greater token', async () => {
      const path = freshPath();
      const [a, b] = await Promise.all([contender(), contender()]);
      const first = await a.acquire(path, long);
      await expect(b.acquire(path, short)).rejects.toBeInstanceOf(LockTimeoutError);
      await first.release();
      const second = await b.acquire(path, short);
      expect(second.fencingToken).toBeGreaterThan(first.fencingToken);
      await second.release();
    });

    it('excludes under contention: 3 sessions x 2 callers x 4 turns, never two inside, tokens growing', async () => {
      const path = freshPath();
      const contenders = await Promise.all([contender(), contender(), contender()]);
      const inside = new OverlapDetector();
      const tokens: bigint[] = [];
      const turns = async (c: Contender) => {
        for (let turn = 0; turn < 4; turn += 1) {
          const hold = await c.acquire(path, long);
          inside.enter();
          tokens.push(hold.fencingToken);
          await tick();
          await tick();
          inside.exit();
          await hold.release();
        }
      };
      await Promise.all(contenders.flatMap((c) => [turns(c), turns(c)]));
      expect({ entries: inside.entries, overlaps: inside.overlaps }).toEqual({ entries: 24, overlaps: 0 });
      expect(tokens.every((token, i) => i === 0 || token > tokens[i - 1])).toBe(true);
      await settlesTo(path, 0);
    });

    it('gives up cleanly on timeout: LockTimeoutError, its node and watch gone, the holder untouched', async () => {
      const path = freshPath();
      const [a, b] = await Promise.all([contender(), contender()]);
      const held = await a.acquire(path, long);
      await expect(b.acquire(path, short)).rejects.toBeInstanceOf(LockTimeoutError);
      await settlesTo(path, 1);
      expect(held.signal.aborted).toBe(false);
      await held.release();
      await settlesTo(path, 0);
    });

    it('gives up cleanly on abort: rejects, its node and watch gone, the holder untouched', async () => {
      const path = freshPath();
      const [a, b] = await Promise.all([contender(), contender()]);
      const held = await a.acquire(path, long);
      const controller = new AbortController();
      const waiting = outcome(b.acquire(path, { ...long, signal: controller.signal }));
      await waitFor(async () => (await watchesUnder(path)) > 0, { message: 'the second contender waits (a watch)' });
      const reason = new Error('caller gave up');
      controller.abort(reason);
      const { error } = await waiting;
      expect(error instanceof LockAbortedError).toBe(variant.abortRejectsWithLockAborted);
      expect(error instanceof LockAbortedError ? error.cause : error).toBe(reason);
      await settlesTo(path, 1);
      expect(held.signal.aborted).toBe(false);
      await held.release();
    });

    it('releases twice (at once and after): both resolve, nothing left, the next holder gets it at once', async () => {
      const path = freshPath();
      const [a, b] = await Promise.all([contender(), contender()]);
      const held = await a.acquire(path, long);
      await expect(Promise.all([held.release(), held.release()])).resolves.toEqual([undefined, undefined]);
      await expect(held.release()).resolves.toBeUndefined();
      await settlesTo(path, 0);
      const next = await b.acquire(path, short);
      await next.release();
    });

    it('signals the loss when its session expires; the next holder gets a greater token', async () => {
      const path = freshPath();
      const server = target.servers().find((member) => member.isRunning())!;
      const proxy = await TcpProxy.start({ host: server.host, port: server.port });
      proxies.push(proxy);
      const a = await variant.contender(proxy.connectString, { tls: target.tls(), reconnectDelay: 100 });
      const b = await contender();
      const held = await a.acquire(path, long);
      const next = b.acquire(path, long);
      await waitFor(async () => (await watchesUnder(path)) > 0, { message: 'the second contender waits (a watch)' });

      proxy.refuse(); // the holder cannot reconnect while its session is taken over and closed
      await expireSession(a.connection.sessionCredentials()!);
      proxy.restore();

      const taken = await next;
      await waitFor(() => held.signal.aborted, { message: 'the holder is told' });
      expect(held.signal.reason).toBeInstanceOf(LockLostError);
      expect((held.signal.reason as LockLostError).reason).toBe('session-expired');
      expect(taken.fencingToken).toBeGreaterThan(held.fencingToken);
      await expect(held.release()).resolves.toBeUndefined();
      await settlesTo(path, 1);
      await taken.release();
    });

    it('shuts down: waits stop at once, holders are told, nothing is left, no new lock', async () => {
      const [busy, own, after] = [freshPath(), freshPath(), freshPath()];
      const [c, other] = await Promise.all([contender(), contender()]);
      const elsewhere = await other.acquire(busy, long);
      const held: ContractHold = await c.acquire(own, long);
      const order: string[] = [];
      held.signal.addEventListener('abort', () => order.push('holder told'), { once: true });
      const waiting = outcome(c.acquire(busy, long)).then((result) => {
        order.push('wait stopped');
        return result;
      });
      await waitFor(async () => (await watchesUnder(busy)) > 0, { message: 'the contender waits (a watch)' });

      await c.shutdown();
      expect((await waiting).error).toBeInstanceOf(NotConnectedError);
      expect(order).toEqual(['wait stopped', 'holder told']);
      expect((held.signal.reason as LockLostError).reason).toBe('closed');
      await settlesTo(own, 0);
      await settlesTo(busy, 1);
      await expect(c.acquire(after, short)).rejects.toBeInstanceOf(NotConnectedError);
      await expect(held.release()).resolves.toBeUndefined();
      await elsewhere.release();
    });
  });
}
