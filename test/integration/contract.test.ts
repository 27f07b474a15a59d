/**
 * The lock contract, like Curator's TestInterProcessMutexBase: one suite, run over every way of
 * holding a lock (contract-variants.ts: plain, mode 'write', coalesce: true, leases: 1,
 * acquireAll([path]), a @DistributedLock service method), against one real ZooKeeper server.
 * Mutual exclusion; a clean give-up on timeout and on abort (no node, no watch left: the
 * server's own `wchp`); a double release; the lost-lock signal on session expiry; shutdown.
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  LockAbortedError,
  LockLostError,
  LockTimeoutError,
  NotConnectedError,
  ZkConnectionService,
  ZooKeeperError,
} from '../../lib/index.js';
import { useFileServer } from '../fixtures/file-server.js';
import { OverlapDetector, closeSessionFromOutside } from '../fixtures/lock-clients.js';
import { TcpProxy, waitFor, watchesByPath } from '../support/index.js';
import {
  closeContenders,
  LONG_WAIT_MS,
  SHORT_WAIT_MS,
  VARIANTS,
  type Contender,
  type ContractHold,
  type Variant,
} from './contract-variants.js';

const server = useFileServer();
const proxies: TcpProxy[] = [];
afterEach(async () => {
  await closeContenders();
  await Promise.all(proxies.splice(0).map((proxy) => proxy.close()));
});

let paths = 0;
/** A lock path of its own for each test. */
const freshPath = () => `/contract/lock-${++paths}`;

/** Lock nodes (names ending in a 10-digit sequence) anywhere under `path`, as another session sees them. */
async function lockNodesUnder(path: string): Promise<string[]> {
  const connection = new ZkConnectionService({ connectionString: server.connectString });
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

/** Watches the server holds on `path` and below (`wchp`: one per session and path). */
async function watchesUnder(path: string): Promise<number> {
  let count = 0;
  for (const [watched, sessions] of await watchesByPath(server)) {
    if (watched === path || watched.startsWith(`${path}/`)) count += sessions;
  }
  return count;
}

/** Waits until exactly `nodes` lock nodes and no watch are left under `path`. */
async function settlesTo(path: string, nodes: number): Promise<void> {
  await waitFor(async () => (await lockNodesUnder(path)).length === nodes && (await watchesUnder(path)) === 0, {
    message: `${nodes} lock node(s) and no watch left under ${path}`,
  });
}

/** Settles `promise` into what it resolved with or threw, so that a test can look at either. */
function outcome<T>(promise: Promise<T>): Promise<{ value?: T; error?: unknown }> {
  return promise.then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  );
}

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

describe.each(VARIANTS)('the lock contract: $name', (variant: Variant) => {
  const contender = (options?: Parameters<Variant['contender']>[1]): Promise<Contender> =>
    variant.contender(server.connectString, options);
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
        await tick(); // a critical section others could interleave with
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
    // (The Nest variant's abort is an Observable's subscriber leaving: the wait stops, nothing is thrown at it.)
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
    const proxy = await TcpProxy.start({ host: server.host, port: server.port });
    proxies.push(proxy);
    // A short reconnect pause: back through the proxy soon after it is restored, to hear of the expiry.
    const a = await variant.contender(proxy.connectString, { reconnectDelay: 100 });
    const b = await contender();
    const held = await a.acquire(path, long);
    const next = b.acquire(path, long);
    await waitFor(async () => (await watchesUnder(path)) > 0, { message: 'the second contender waits (a watch)' });

    proxy.refuse(); // the holder cannot reconnect while its session is taken over and closed
    await closeSessionFromOutside(server.connectString, a.connection.sessionCredentials()!);
    proxy.restore();

    const taken = await next;
    await waitFor(() => held.signal.aborted, { message: 'the holder is told' });
    expect(held.signal.reason).toBeInstanceOf(LockLostError);
    expect((held.signal.reason as LockLostError).reason).toBe('session-expired');
    expect(taken.fencingToken).toBeGreaterThan(held.fencingToken);
    await expect(held.release()).resolves.toBeUndefined(); // a lost lock's release deletes nothing
    await settlesTo(path, 1);
    await taken.release();
  });

  it('shuts down: waits stop at once, holders are told after the grace period, nothing is left, no new lock', async () => {
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
    await settlesTo(busy, 1); // the other contender's
    await expect(c.acquire(after, short)).rejects.toBeInstanceOf(NotConnectedError);
    await expect(held.release()).resolves.toBeUndefined();
    await elsewhere.release();
  });
});
