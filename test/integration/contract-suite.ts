/**
 * The lock contract, like Curator's TestInterProcessMutexBase: one suite, run over every way of
 * holding a lock (contract-variants.ts) against a target, a real ZooKeeper server or ensemble
 * reached one way: plaintext (contract.test.ts) or TLS (tls-contract-suite.ts, for
 * tls-contract.test.ts and tls-ensemble.test.ts). Mutual exclusion; a clean give-up on timeout and
 * on abort (no node, no watch left: the servers' own `wchp`, asked over the target's transport); a
 * double release; the lost-lock signal on session expiry; shutdown.
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
import { expireSession } from '../../lib/testing/index.js';
import { OverlapDetector } from '../fixtures/lock-clients.js';
import { TcpProxy, waitFor } from '../support/index.js';
import { LONG_WAIT_MS, SHORT_WAIT_MS, type Contender, type ContractHold, type Variant } from './contract-variants.js';

/** A server the contract reads its own view from (lock nodes aside: those through a session). */
export interface ContractMember {
  readonly host: string;
  readonly port: number;
  /** A four letter word's answer, over the target's transport. */
  fourLetter(cmd: string): Promise<string>;
}

/** Where the contract runs and how a client gets there; read inside tests (the servers start in beforeAll). */
export interface ContractTarget {
  /** What the describe blocks say after "the lock contract": '' (plaintext), ' over TLS'. */
  readonly label: string;
  /** The connection string of every member. */
  connectString(): string;
  /** What every client of the target adds to its options: nothing in plaintext, the `tls` option over TLS. */
  clientOptions(): Partial<ZkLockOptions>;
  /** The members serving now (the first is where the session-expiry test's proxy leads). */
  members(): ContractMember[];
}

let paths = 0;
/** A lock path of its own for each test. */
const freshPath = () => `/contract/lock-${++paths}`;

/** Lock nodes (names ending in a 10-digit sequence) anywhere under `path`, as another session sees them. */
async function lockNodesUnder(target: ContractTarget, path: string): Promise<string[]> {
  const connection = new ZkConnectionService({ ...target.clientOptions(), connectionString: target.connectString() });
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

/** Watches the members hold on `path` and below (`wchp`: a path's line, then one line per session watching it). */
async function watchesUnder(target: ContractTarget, path: string): Promise<number> {
  let count = 0;
  for (const member of target.members()) {
    let watched: string | undefined;
    for (const line of (await member.fourLetter('wchp')).split('\n')) {
      if (line.startsWith('/')) watched = line.trim();
      else if (watched && (watched === path || watched.startsWith(`${path}/`)) && /^\s+0x[0-9a-f]+/i.test(line))
        count += 1;
    }
  }
  return count;
}

/** Waits until exactly `nodes` lock nodes and no watch are left under `path`. */
async function settlesTo(target: ContractTarget, path: string, nodes: number): Promise<void> {
  await waitFor(
    async () => (await lockNodesUnder(target, path)).length === nodes && (await watchesUnder(target, path)) === 0,
    { message: `${nodes} lock node(s) and no watch left under ${path}` },
  );
}

/** Settles `promise` into what it resolved with or threw, so that a test can look at either. */
function outcome<T>(promise: Promise<T>): Promise<{ value?: T; error?: unknown }> {
  return promise.then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  );
}

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Registers the contract on `target`, a describe block for each of `variants`. The TcpProxy of the
 * session-expiry test goes into `proxies`, which the caller closes after each test (with
 * closeContenders() and closeLockClients()).
 */
export function describeLockContract(target: ContractTarget, variants: Variant[], proxies: TcpProxy[]): void {
  describe.each(variants)(`the lock contract${target.label}: $name`, (variant: Variant) => {
    const contender = (options: Partial<ZkLockOptions> = {}): Promise<Contender> =>
      variant.contender(target.connectString(), { ...target.clientOptions(), ...options });
    const long = { timeout: LONG_WAIT_MS };
    const short = { timeout: SHORT_WAIT_MS };
    const settled = (path: string, nodes: number) => settlesTo(target, path, nodes);
    const waitsOn = (path: string, message: string) =>
      waitFor(async () => (await watchesUnder(target, path)) > 0, { message });

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
      await settled(path, 0);
    });

    it('gives up cleanly on timeout: LockTimeoutError, its node and watch gone, the holder untouched', async () => {
      const path = freshPath();
      const [a, b] = await Promise.all([contender(), contender()]);
      const held = await a.acquire(path, long);
      await expect(b.acquire(path, short)).rejects.toBeInstanceOf(LockTimeoutError);
      await settled(path, 1);
      expect(held.signal.aborted).toBe(false);
      await held.release();
      await settled(path, 0);
    });

    it('gives up cleanly on abort: rejects, its node and watch gone, the holder untouched', async () => {
      const path = freshPath();
      const [a, b] = await Promise.all([contender(), contender()]);
      const held = await a.acquire(path, long);
      const controller = new AbortController();
      const waiting = outcome(b.acquire(path, { ...long, signal: controller.signal }));
      await waitsOn(path, 'the second contender waits (a watch)');
      const reason = new Error('caller gave up');
      controller.abort(reason);
      const { error } = await waiting;
      // (The Nest variant's abort is an Observable's subscriber leaving: the wait stops, nothing is thrown at it.)
      expect(error instanceof LockAbortedError).toBe(variant.abortRejectsWithLockAborted);
      expect(error instanceof LockAbortedError ? error.cause : error).toBe(reason);
      await settled(path, 1);
      expect(held.signal.aborted).toBe(false);
      await held.release();
    });

    it('releases twice (at once and after): both resolve, nothing left, the next holder gets it at once', async () => {
      const path = freshPath();
      const [a, b] = await Promise.all([contender(), contender()]);
      const held = await a.acquire(path, long);
      await expect(Promise.all([held.release(), held.release()])).resolves.toEqual([undefined, undefined]);
      await expect(held.release()).resolves.toBeUndefined();
      await settled(path, 0);
      const next = await b.acquire(path, short);
      await next.release();
    });

    it('signals the loss when its session expires; the next holder gets a greater token', async () => {
      const path = freshPath();
      const [member] = target.members();
      const proxy = await TcpProxy.start({ host: member.host, port: member.port });
      proxies.push(proxy);
      // A short reconnect pause: back through the proxy soon after it is restored, to hear of the expiry.
      const a = await variant.contender(proxy.connectString, { ...target.clientOptions(), reconnectDelay: 100 });
      const b = await contender();
      const held = await a.acquire(path, long);
      const next = b.acquire(path, long);
      await waitsOn(path, 'the second contender waits (a watch)');

      proxy.refuse(); // the holder cannot reconnect while the server ends its session (resumed and closed)
      await expireSession(a.connection, { connectionString: target.connectString(), waitUntilTold: false });
      proxy.restore();

      const taken = await next;
      await waitFor(() => held.signal.aborted, { message: 'the holder is told' });
      expect(held.signal.reason).toBeInstanceOf(LockLostError);
      expect((held.signal.reason as LockLostError).reason).toBe('session-expired');
      expect(taken.fencingToken).toBeGreaterThan(held.fencingToken);
      await expect(held.release()).resolves.toBeUndefined(); // a lost lock's release deletes nothing
      await settled(path, 1);
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
      await waitsOn(busy, 'the contender waits (a watch)');

      await c.shutdown();
      expect((await waiting).error).toBeInstanceOf(NotConnectedError);
      expect(order).toEqual(['wait stopped', 'holder told']);
      expect((held.signal.reason as LockLostError).reason).toBe('closed');
      await settled(own, 0);
      await settled(busy, 1); // the other contender's
      await expect(c.acquire(after, short)).rejects.toBeInstanceOf(NotConnectedError);
      await expect(held.release()).resolves.toBeUndefined();
      await elsewhere.release();
    });
  });
}
