/**
 * The sequence counter past 2^31 - 1, on a real server started from a snapshot in which the lock
 * directories' child counters (cversion) are at 2^31 - 4 (test/fixtures/WrappedCounterSnapshot.java
 * writes it with ZooKeeper's own DataTree). After a few creates, ZooKeeper 3.8 names every child
 * `2147483647`, or `-2147483648`, `-2147483647`... when creates are in flight at once: the sequence
 * no longer gives the creation order, nor a unique name. Several contenders must still never hold
 * at once, and fencing tokens must strictly increase from one holder to the next.
 */
import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { AcquireOptions, LockHandle } from '../../lib/index.js';
import { childrenOf, closeLockClients, lockClients, noOverlap } from '../fixtures/lock-clients.js';
import { runJavaFixture, startZooKeeper, waitFor, watchCount, type ZkServer } from '../support/index.js';

const COUNTER = 2 ** 31 - 4;
const MUTEX = '/wrapped/mutex';
const READ_WRITE = '/wrapped/rw';
const SEMAPHORE = '/wrapped/sem';
const PROCESSES = '/wrapped/processes';
const INSPECTED = '/wrapped/inspected';
const LOCK_PROCESS = fileURLToPath(new URL('../fixtures/lock-process.mjs', import.meta.url));

let server: ZkServer;

beforeAll(async () => {
  server = await startZooKeeper({
    prepareData: async (dataDir) => {
      const dirs = [MUTEX, READ_WRITE, `${SEMAPHORE}/locks`, `${SEMAPHORE}/leases`, PROCESSES, INSPECTED];
      await runJavaFixture('WrappedCounterSnapshot', [dataDir, String(COUNTER), ...dirs]);
    },
  });
}, 180_000);
afterEach(closeLockClients);
afterAll(async () => {
  await server?.dispose();
});

/** One holding: its kind, its token, and when it began and ended on the monotonic clock. */
interface Holding {
  kind: 'read' | 'write';
  node: string;
  token: bigint;
  acquired: number;
  released: number;
}

/** Wrapped-range names: what the server appends once the counter is at 2^31 - 1. */
function wrapped(node: string): boolean {
  return /(?:2147483647|-\d{9,10})$/.test(node);
}

/**
 * `clients` sessions, each taking the lock `rounds` times with `options(i)` for its i-th turn,
 * holding it across a few event-loop turns. Returns every holding and the peak number of holders
 * inside by kind, counted at each entry.
 */
async function contend(
  path: string,
  clients: number,
  rounds: number,
  options: (client: number, round: number) => AcquireOptions,
): Promise<{ holdings: Holding[]; violations: string[] }> {
  const sessions = await lockClients(clients, server.connectString);
  const holdings: Holding[] = [];
  const violations: string[] = [];
  const inside = { read: 0, write: 0, leases: 0 };
  await Promise.all(
    sessions.map(async ({ locks }, client) => {
      for (let round = 0; round < rounds; round += 1) {
        const opts = options(client, round);
        const kind = opts.mode ?? 'write';
        const lock: LockHandle = await locks.acquire(path, { timeout: 60_000, ...opts });
        const acquired = performance.now();
        if (opts.leases !== undefined) {
          inside.leases += 1;
          if (inside.leases > opts.leases) violations.push(`${inside.leases} lease holders`);
        } else if (kind === 'write') {
          if (inside.write > 0 || inside.read > 0) violations.push(`a writer entered beside ${JSON.stringify(inside)}`);
        } else if (inside.write > 0) violations.push('a reader entered beside a writer');
        if (opts.leases === undefined) inside[kind] += 1;
        for (let turn = 0; turn < 3; turn += 1) await new Promise<void>((resolve) => setImmediate(resolve));
        if (opts.leases === undefined) inside[kind] -= 1;
        else inside.leases -= 1;
        const token = lock.fencingToken;
        await lock.release();
        holdings.push({ kind, node: lock.node, token, acquired, released: performance.now() });
      }
    }),
  );
  return { holdings, violations };
}

/**
 * Tokens strictly increase from a holding to any holding that began after it ended, for every
 * pair that excludes each other (all but reader-reader); returns the pairs that break it.
 */
function tokenInversions(holdings: Holding[]): string[] {
  const broken: string[] = [];
  for (const a of holdings) {
    for (const b of holdings) {
      if (a === b || (a.kind === 'read' && b.kind === 'read') || a.released >= b.acquired) continue;
      if (b.token <= a.token) broken.push(`${a.node} (${a.token}) then ${b.node} (${b.token})`);
    }
  }
  return broken;
}

describe('lock directories whose sequence counter went past 2^31 - 1', () => {
  it('exclusive lock: 6 sessions x 8 turns, never two holders, tokens strictly increasing', async () => {
    const { holdings, violations } = await contend(MUTEX, 6, 8, () => ({}));
    expect(violations).toEqual([]);
    expect(holdings).toHaveLength(48);
    expect(holdings.filter((holding) => wrapped(holding.node)).length).toBeGreaterThan(40);
    const inOrder = holdings.toSorted((a, b) => a.acquired - b.acquired);
    for (let i = 1; i < inOrder.length; i += 1) expect(inOrder[i].token).toBeGreaterThan(inOrder[i - 1].token);
    expect(tokenInversions(holdings)).toEqual([]);
    expect(await childrenOf(server.connectString, MUTEX)).toEqual([]);
    await waitFor(async () => (await watchCount(server)) === 0, { message: 'no watch left' });
  }, 120_000);

  it('read/write lock: 6 sessions, readers and writers mixed, writers exclude everyone, tokens increase', async () => {
    const { holdings, violations } = await contend(READ_WRITE, 6, 8, (client, round) => ({
      mode: (client + round) % 3 === 0 ? 'write' : 'read',
    }));
    expect(violations).toEqual([]);
    expect(holdings.filter((holding) => holding.kind === 'write').length).toBeGreaterThan(10);
    expect(holdings.filter((holding) => wrapped(holding.node)).length).toBeGreaterThan(40);
    expect(tokenInversions(holdings)).toEqual([]);
    expect(await childrenOf(server.connectString, READ_WRITE)).toEqual([]);
  }, 120_000);

  it('semaphore with 1 lease: 5 sessions x 6 turns, one holder at a time, tokens strictly increasing', async () => {
    const { holdings, violations } = await contend(SEMAPHORE, 5, 6, () => ({ leases: 1 }));
    expect(violations).toEqual([]);
    expect(holdings).toHaveLength(30);
    expect(holdings.filter((holding) => wrapped(holding.node)).length).toBeGreaterThan(20);
    const inOrder = holdings.toSorted((a, b) => a.acquired - b.acquired);
    for (let i = 1; i < inOrder.length; i += 1) expect(inOrder[i].token).toBeGreaterThan(inOrder[i - 1].token);
    expect(await childrenOf(server.connectString, `${SEMAPHORE}/leases`)).toEqual([]);
    expect(await childrenOf(server.connectString, `${SEMAPHORE}/locks`)).toEqual([]);
  }, 120_000);

  it('3 processes (each its own attempt-id prefix, so names order randomly) x 15 turns: no two sections overlap', async () => {
    const runs = Array.from({ length: 3 }, () => loopProcess(server.connectString, PROCESSES, 15));
    const outputs = await Promise.all(runs);
    const intervals = outputs.flatMap((lines) => {
      const enters = lines.filter((line) => line.startsWith('enter ')).map((line) => BigInt(line.slice(6)));
      const exits = lines.filter((line) => line.startsWith('exit ')).map((line) => BigInt(line.slice(5)));
      return enters.map((enter, i) => ({ enter, exit: exits[i] }));
    });
    expect(intervals).toHaveLength(45);
    expect(noOverlap(intervals)).toBe(true);
    expect(await childrenOf(server.connectString, PROCESSES)).toEqual([]);
  }, 120_000);

  it('inspect names the holder by creation order when the names no longer tell it', async () => {
    const [first, second, reader] = await lockClients(3, server.connectString);
    // Saturate the counter (at 2^31 - 4 in the snapshot): from now on every child is named ...2147483647.
    for (let i = 0; i < 4; i += 1) {
      const node = await first.connection.create(`${INSPECTED}/filler-`, Buffer.alloc(0), 'ephemeral-sequential');
      await first.connection.remove(node);
    }
    // Created first, but its name sorts last; the other one sorts first.
    const holder = await first.connection.create(
      `${INSPECTED}/_c_ffff-lock-`,
      Buffer.from('{}'),
      'ephemeral-sequential',
    );
    const waiter = await second.connection.create(
      `${INSPECTED}/_c_0000-lock-`,
      Buffer.from('{}'),
      'ephemeral-sequential',
    );
    expect([holder, waiter].every(wrapped)).toBe(true);
    const info = await reader.locks.inspect(INSPECTED);
    expect(info.holder?.node).toBe(holder.slice(INSPECTED.length + 1));
    expect(info.queue.map((owner) => owner.node)).toEqual([waiter.slice(INSPECTED.length + 1)]);
  }, 60_000);
});

/** Runs test/fixtures/lock-process.mjs `loop` (built dist/) and resolves with its lines once it exits 0. */
function loopProcess(connectString: string, path: string, count: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [LOCK_PROCESS, 'loop', connectString, path, String(count)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 100_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(output.split('\n').filter(Boolean));
      else reject(new Error(`lock-process loop exited with ${code}:\n${output}`));
    });
  });
}
