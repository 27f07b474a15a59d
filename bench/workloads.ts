/**
 * The exclusive lock's workloads (floor, w1, nest, idle, w2, w2c, w3, mem, http; the other kinds
 * are in kinds.ts). Each returns its JSON line (docs/benchmarks.md describes the fields), ending
 * with `requests_per_op` (requests the server received per counted cycle or
 * acquisition, from `mntr` zk_packets_received before and after).
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { NestFactory } from '@nestjs/core';
import { lockPathFor, ZkConnectionService, ZooKeeperError } from '../lib/index.js';
import { BENCH_ROOT, perOp, perSecond, type BenchContext } from './context.js';
import type { KindsLine } from './kinds.js';
import type { LeaderLine } from './leader-lines.js';
import type { TlsLine } from './tls.js';
import {
  closeSessions,
  notifications,
  openSessions,
  removeEmptyTree,
  runCycles,
  runInterleaved,
  runTimed,
  WARMUP_CYCLES,
  WARMUP_MS,
} from './harness.js';
import { HTTP_LOCK_PATH, httpBenchModule, NEST_LOCK_PATH, nestBenchModule, NestBenchService } from './http-app.js';
import { StderrLogger } from './logger.js';
import { RawZooKeeper } from './raw-client.js';
import { delay, nowUs, round, Samples } from './stats.js';

export interface CycleLine {
  /**
   * nest: w1's acquire + release through a @DistributedLock service method (no HTTP). idle:
   * floor's cycle after 1 ms without traffic (not measured), as a request's round trips start.
   */
  workload: 'floor' | 'w1' | 'nest' | 'idle';
  cycles: number;
  p50_us: number;
  p99_us: number;
  per_s: number;
  requests_per_op: number;
}

export interface W2Line {
  /** w2c: the same load from callers in ONE process sharing one session with the `coalesce` option. */
  workload: 'w2' | 'w2c';
  clients: number;
  acquisitions: number;
  per_s: number;
  wait_p50_us: number;
  wait_p99_us: number;
  overlaps: number;
  watch_events_per_acq: number;
  requests_per_op: number;
}

export interface W3Line {
  workload: 'w3';
  clients: number;
  acquisitions: number;
  per_s: number;
  p50_us: number;
  p99_us: number;
  requests_per_op: number;
  /** Only on the distinct-keys scale point: how many keys (lock paths) the sessions share out. */
  keys?: number;
  /** Only on the distinct-keys scale point: lock directories left on the server after the run (then deleted). */
  /** Lock directories still there once the server had RECLAIM_WAIT_MS to delete the empty containers. */
  leftover_dirs?: number;
  /** How long until they were all gone (or RECLAIM_WAIT_MS). */
  reclaim_ms?: number;
}

export interface MemLine {
  workload: 'mem';
  cycles: number;
  heap_start_bytes: number;
  heap_end_bytes: number;
  server_watches_after: number;
  leftover_nodes: number;
  requests_per_op: number;
}

export interface HttpLine {
  workload: 'http';
  requests: number;
  locked_p50_us: number;
  plain_p50_us: number;
  overhead_p50_us: number;
  requests_per_op: number;
}

/** Plus the lock kinds' workloads (rw, sem, multi): see kinds.ts; leader: see leader.ts; tls: see tls.ts. */
export type BenchLine = CycleLine | W2Line | W3Line | MemLine | HttpLine | KindsLine | LeaderLine | TlsLine;

// ---- floor and w1 ----

/** The same owner data the library writes into its nodes (host, pid, since), so that both send as many bytes. */
function ownerData(): Buffer {
  return Buffer.from(
    JSON.stringify({ host: hostname().slice(0, 255), pid: process.pid, since: new Date().toISOString() }),
  );
}

/**
 * LONG_LIVED: the lock directories of w1, nest, w3's plain points, mem and http are made
 * persistent before they run. The library makes lock directories as containers, which the server
 * deletes once they are empty; the bench's own server checks every 500 ms (so that w3's 1,000
 * keys are seen reclaimed), and a directory empty for a moment between two cycles was sometimes
 * deleted and made again (2 requests more). A production server checks once a minute, so a lock
 * in use keeps its directory: persistent directories measure that case.
 */

/** A cycle workload set up and ready to loop. */
export interface CycleWorkload {
  workload: CycleLine['workload'];
  cycle: () => Promise<void>;
  /** Done before each cycle, not measured. */
  pause?: () => Promise<void>;
  close(): Promise<void>;
}

/** floor: one session, raw client: create EPHEMERAL_SEQUENTIAL + getChildren + delete, the recipe's 3-request floor. */
async function openFloor(ctx: BenchContext, name = 'floor'): Promise<CycleWorkload> {
  const dir = `${BENCH_ROOT}/${name}`;
  const raw = await RawZooKeeper.connect(ctx.server.connectString);
  try {
    await raw.mkdirp(dir);
  } catch (error) {
    await raw.close();
    throw error;
  }
  const prefix = `${dir}/_c_${randomUUID()}-lock-`;
  const data = ownerData();
  return {
    workload: 'floor',
    cycle: async () => {
      const node = await raw.createEphemeralSequential(prefix, data);
      await raw.getChildren(dir);
      await raw.remove(node);
    },
    close: () => raw.close(),
  };
}

/** w1: one LockService (one session, the library's defaults): acquire + release on one path, uncontended. */
export async function openW1(ctx: BenchContext): Promise<CycleWorkload> {
  const path = `${BENCH_ROOT}/w1`;
  const sessions = await openSessions(ctx.server.connectString, 1, { tls: ctx.tls });
  const { locks, connection } = sessions[0];
  await connection.ensurePath(path); // long-lived (see LONG_LIVED)
  return {
    workload: 'w1',
    cycle: async () => {
      const lock = await locks.acquire(path);
      await lock.release();
    },
    close: () => closeSessions(sessions),
  };
}

/**
 * idle: floor's raw cycle, each after a 1 ms pause without traffic (not measured). A Nest request's
 * lock round trips start after such a pause (the HTTP client's turn); on this kind of machine the
 * first round trip after idle is slower (the server's thread and ours wake from sleep), which is
 * part of what http measures beyond w1. Without the library, so that the effect is the platform's.
 */
async function openIdle(ctx: BenchContext): Promise<CycleWorkload> {
  const floor = await openFloor(ctx, 'idle');
  return { ...floor, workload: 'idle', pause: () => delay(1) };
}

/** nest: a Nest application context (the library's defaults); one call of a @DistributedLock service method per cycle. */
async function openNest(ctx: BenchContext): Promise<CycleWorkload> {
  const app = await NestFactory.createApplicationContext(nestBenchModule(ctx.server.connectString), {
    logger: new StderrLogger(),
  });
  const service = app.get(NestBenchService);
  await app.get(ZkConnectionService).ensurePath(NEST_LOCK_PATH); // long-lived (see LONG_LIVED)
  return { workload: 'nest', cycle: () => service.locked(), close: () => app.close() };
}

/**
 * floor and/or w1 and/or nest, `cycles` each. When both run they take turns in short blocks (see
 * runInterleaved), so that `w1.p50_us / floor.p50_us` compares like with like.
 */
export async function floorAndW1(ctx: BenchContext, which: CycleLine['workload'][]): Promise<CycleLine[]> {
  const opened: CycleWorkload[] = [];
  try {
    const open = { floor: (c: BenchContext) => openFloor(c), w1: openW1, nest: openNest, idle: openIdle };
    for (const workload of which) opened.push(await open[workload](ctx));
    const runs = await runInterleaved(
      ctx.args.cycles,
      opened.map((w) => w.cycle),
      () => ctx.server.packets(),
      opened.map((w) => w.pause),
    );
    return opened.map((w, i): CycleLine => {
      const [p50, p99] = runs[i].latencies.percentiles(50, 99);
      return {
        workload: w.workload,
        cycles: ctx.args.cycles,
        p50_us: p50,
        p99_us: p99,
        per_s: perSecond(ctx.args.cycles, runs[i].elapsedUs),
        requests_per_op: perOp(runs[i].requests, ctx.args.cycles),
      };
    });
  } finally {
    for (const w of opened) await w.close();
  }
}

// ---- w2 ----

/**
 * N sessions, one path: acquire -> critical section (read a shared counter, yield to the event
 * loop, write it back: a lost update if two were inside) -> release, for `seconds`. Sessions are
 * made with `heldLockWatchDelay: Infinity`, so holders never watch their own node and every watch
 * notification is a waiter being woken.
 */
export async function w2(ctx: BenchContext, clients: number, coalesced = false): Promise<W2Line> {
  const path = `${BENCH_ROOT}/${coalesced ? 'w2c' : 'w2'}`;
  // w2c: `clients` callers of one process on ONE session with in-process coalescing.
  const sessions = coalesced
    ? await openSessions(ctx.server.connectString, 1, { heldLockWatchDelay: Infinity, coalesce: true })
    : await openSessions(ctx.server.connectString, clients, { heldLockWatchDelay: Infinity, tls: ctx.tls });
  try {
    const shared = { counter: 0, inside: 0, overlaps: 0, iterations: 0 };
    const waits = new Samples();
    const run = await runTimed({
      loops: clients,
      seconds: ctx.args.seconds,
      iteration: async (i, measuring) => {
        const asked = nowUs();
        const lock = await sessions[coalesced ? 0 : i].locks.acquire(path);
        const waited = nowUs() - asked;
        shared.inside += 1;
        if (shared.inside > 1) shared.overlaps += 1;
        const read = shared.counter;
        await new Promise<void>((resolve) => setImmediate(resolve));
        shared.counter = read + 1;
        shared.inside -= 1;
        shared.iterations += 1;
        await lock.release();
        if (measuring) waits.push(waited);
      },
      counters: async () => ({ packets: await ctx.server.packets(), notifications: notifications(sessions) }),
    });
    const lost = shared.iterations - shared.counter;
    if (lost !== 0) ctx.note(`w2 ${clients} clients: ${lost} lost update(s) of the shared counter`);
    const acquisitions = waits.length;
    const [p50, p99] = waits.percentiles(50, 99);
    return {
      workload: coalesced ? 'w2c' : 'w2',
      clients,
      acquisitions,
      per_s: perSecond(acquisitions, run.elapsedUs),
      wait_p50_us: p50,
      wait_p99_us: p99,
      // Counted over the whole run, warm-up included.
      overlaps: Math.max(shared.overlaps, lost),
      watch_events_per_acq: round((run.after.notifications - run.before.notifications) / acquisitions, 3),
      requests_per_op: perOp(run.after.packets - run.before.packets, acquisitions),
    };
  } finally {
    await closeSessions(sessions);
  }
}

// ---- w3 ----

/**
 * N sessions, each on paths of its own (no contention), for `seconds`; p50/p99 are of whole
 * acquire + release cycles, like w1's. With `keys`, the scale point over many distinct lock paths:
 * `keys` dynamic paths (`lockPathFor('/bench/keys', k)`) shared out among the sessions, each
 * session cycling through its own; the warm-up lasts until every key was locked once (which
 * creates its directory). Afterwards the directories left on the server are counted, then deleted.
 */
/** How long w3's key scale point waits for the server to reclaim the empty lock directories. */
const RECLAIM_WAIT_MS = 30_000;

/** Children of `path`, 0 when it is gone. */
async function childCount(connection: ZkConnectionService, path: string): Promise<number> {
  try {
    return (await connection.getChildren(path)).children.length;
  } catch (error) {
    if (ZooKeeperError.is(error, 'NO_NODE')) return 0;
    throw error;
  }
}

export async function w3(ctx: BenchContext, clients: number, keys?: number): Promise<W3Line> {
  const base = keys === undefined ? `${BENCH_ROOT}/w3` : `${BENCH_ROOT}/keys`;
  const paths: string[][] = Array.from({ length: clients }, (_, i) => {
    if (keys === undefined) return [`${base}/${i}`];
    const own: string[] = [];
    for (let k = i; k < keys; k += clients) own.push(lockPathFor(base, k));
    return own;
  });
  const done = Array.from({ length: clients }, () => 0);
  const sessions = await openSessions(ctx.server.connectString, clients);
  // The paths of the plain points are long-lived (see LONG_LIVED); the keys' point is about reclaiming.
  if (keys === undefined) for (const [i, [own]] of paths.entries()) await sessions[i].connection.ensurePath(own);
  let line: W3Line;
  try {
    const latencies = new Samples();
    const run = await runTimed({
      loops: clients,
      seconds: ctx.args.seconds,
      iteration: async (i, measuring) => {
        const own = paths[i];
        const started = nowUs();
        const lock = await sessions[i].locks.acquire(own[done[i] % own.length]);
        await lock.release();
        done[i] += 1;
        if (measuring) latencies.push(nowUs() - started);
      },
      counters: () => ctx.server.packets(),
      warmedUp: () => done.every((count, i) => count >= paths[i].length),
    });
    const [p50, p99] = latencies.percentiles(50, 99);
    line = {
      workload: 'w3',
      clients,
      acquisitions: latencies.length,
      per_s: perSecond(latencies.length, run.elapsedUs),
      p50_us: p50,
      p99_us: p99,
      requests_per_op: perOp(run.after - run.before, latencies.length),
    };
  } finally {
    await closeSessions(sessions);
  }
  if (keys === undefined) return line;

  // Our sessions are closed, so their lock nodes are gone: the directories are empty containers,
  // which the server deletes on its container check (every 500 ms on the bench's own server; every
  // minute by default, so give a --connect server up to RECLAIM_WAIT_MS, then delete what is left).
  const [admin] = await openSessions(ctx.server.connectString, 1);
  try {
    const started = Date.now();
    let left = await childCount(admin.connection, base);
    while (left > 0 && Date.now() - started < RECLAIM_WAIT_MS) {
      await delay(250); // polling the server's own timer: there is no event to wait for
      left = await childCount(admin.connection, base);
    }
    const reclaimMs = Date.now() - started;
    const removed = left > 0 ? await removeEmptyTree(admin.connection, base) : 0;
    ctx.note(
      `w3 ${keys} keys: ${left === 0 ? `every lock directory reclaimed by the server within ${reclaimMs} ms` : `${left} lock directories left after ${reclaimMs} ms; deleted ${removed - 1}`}`,
    );
    return { ...line, keys, leftover_dirs: left, reclaim_ms: reclaimMs };
  } finally {
    await closeSessions([admin]);
  }
}

// ---- mem ----

type GlobalWithGc = typeof globalThis & { gc?: () => void };

/** Heap in use after a full garbage collection (node --expose-gc). */
function heapAfterGc(): number {
  const gc = (globalThis as GlobalWithGc).gc;
  if (!gc) throw new Error('mem needs a full GC: run node with --expose-gc (scripts/bench.sh does)');
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

/**
 * `memCycles` acquire/release cycles on one LockService (library defaults); the heap after a full
 * GC at 10% and at 100% of them; then, with the session still open, the server's watch count
 * (`wchs`, all sessions) and the children left in the lock's directory.
 */
export async function mem(ctx: BenchContext): Promise<MemLine> {
  const path = `${BENCH_ROOT}/mem`;
  const cycles = ctx.args.memCycles;
  const sessions = await openSessions(ctx.server.connectString, 1);
  const { locks, connection } = sessions[0];
  await connection.ensurePath(path); // long-lived (see LONG_LIVED)
  try {
    const cycle = async () => {
      const lock = await locks.acquire(path);
      await lock.release();
    };
    const warmStart = Date.now();
    for (let done = 0; done < WARMUP_CYCLES || Date.now() - warmStart < WARMUP_MS; done++) await cycle();
    const tenth = Math.max(1, Math.round(cycles / 10));
    let heapStart = Number.NaN;
    const before = await ctx.server.packets();
    for (let i = 1; i <= cycles; i++) {
      await cycle();
      if (i === tenth) heapStart = heapAfterGc();
    }
    const after = await ctx.server.packets();
    const heapEnd = heapAfterGc();
    const watches = await ctx.server.watches();
    const left = await childCount(connection, path); // 0 also when the server reclaimed the empty directory
    return {
      workload: 'mem',
      cycles,
      heap_start_bytes: heapStart,
      heap_end_bytes: heapEnd,
      server_watches_after: watches,
      leftover_nodes: left,
      requests_per_op: perOp(after - before, cycles),
    };
  } finally {
    await closeSessions(sessions);
  }
}

// ---- http ----

/**
 * A Nest application (Express, the library's defaults) with `GET /locked` (`@DistributedLock`)
 * and `GET /plain`, the same handler; one client in the same process sends `cycles` requests to
 * each, one at a time, alternating which goes first (so that both see the same machine).
 */
export async function http(ctx: BenchContext): Promise<HttpLine> {
  const app = await NestFactory.create(httpBenchModule(ctx.server.connectString), { logger: new StderrLogger() });
  try {
    await app.listen(0, '127.0.0.1');
    await app.get(ZkConnectionService).ensurePath(HTTP_LOCK_PATH); // long-lived (see LONG_LIVED)
    const url = await app.getUrl();
    const get = async (route: 'locked' | 'plain'): Promise<number> => {
      const started = nowUs();
      const response = await fetch(`${url}/${route}`);
      await response.arrayBuffer();
      if (response.status !== 200) throw new Error(`GET /${route} answered ${response.status}`);
      return nowUs() - started;
    };
    const locked = new Samples();
    const plain = new Samples();
    let turn = 0;
    const run = await runCycles(
      ctx.args.cycles,
      async (measuring) => {
        const order = turn++ % 2 === 0 ? (['locked', 'plain'] as const) : (['plain', 'locked'] as const);
        for (const route of order) {
          const took = await get(route);
          if (measuring) (route === 'locked' ? locked : plain).push(took);
        }
      },
      () => ctx.server.packets(),
    );
    const [lockedP50] = locked.percentiles(50);
    const [plainP50] = plain.percentiles(50);
    return {
      workload: 'http',
      requests: ctx.args.cycles,
      locked_p50_us: lockedP50,
      plain_p50_us: plainP50,
      overhead_p50_us: lockedP50 - plainP50,
      requests_per_op: perOp(run.after - run.before, ctx.args.cycles),
    };
  } finally {
    await app.close();
  }
}
