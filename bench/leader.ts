/**
 * The `leader` workload: scheduled jobs and leader elections (docs/benchmarks.md). Three Nest
 * application contexts in this process, each with its own session through its own TcpProxy (so
 * that an instance can be cut off, and its pings counted):
 *
 * - `clean`: `--handovers` times, the leader's app is closed; the time from its `close()` to the
 *   next leader's `onLeadershipAcquired`; a new instance then joins at the back.
 * - `crash`: `--crashes` times, the leader's proxy drops every packet both ways from now on (to the
 *   server, a crashed instance: nothing more comes from it); the time from then to the next
 *   leader's `onLeadershipAcquired`, against the session timeout.
 * - `skip`: ticks of an `@OnOneInstance` cron job fired (SchedulerRegistry's own `fireOnTick()`) on
 *   the instances that do not hold it; the requests the server received meanwhile, pings left out.
 *
 * Beside each handover, the bound a TTL lease with the same settings would give (computed, not
 * built: TTL = the session timeout, polled every TTL / 3).
 */
import { performance } from 'node:perf_hooks';
import type { INestApplicationContext } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { SchedulerRegistry } from '@nestjs/schedule';
import { LeadershipService, ZkConnectionService, ZooKeeperError } from '../lib/index.js';
import { isPing, TcpProxy } from '../test/support/proxy.js';
import { waitFor } from '../test/support/wait.js';
import type { BenchContext } from './context.js';
import { JOB_NAME, JOB_PATH, LEADER_PATH, LeaderRecord, leaderBenchModule } from './leader-app.js';
import { StderrLogger } from './logger.js';
import { handoverStats, perOpcode, ttlLeaseBounds, type LeaderLine, type LeaderSkipLine } from './leader-lines.js';
import { delay, round } from './stats.js';

/** Instances in the election at any time. */
export const LEADER_INSTANCES = 3;
/** The session timeout asked for: short, as for jobs that must move soon after a crash (a server grants at least 2 ticks: 4 s with tickTime 2000). */
export const LEADER_SESSION_MS = 4_000;
/**
 * The crashes come at moments spread over this span after the queue settled: the server checks
 * for expired sessions once per tickTime (2 s by default), and a crash right after the previous
 * handover (itself at such a check) would always land at the same phase of it.
 */
const CRASH_PHASES_MS = 2_000;
/** Clean handovers before the counted ones. */
const WARMUP_HANDOVERS = 2;
/** Skipped ticks fired on each instance that does not hold the job. */
export const SKIP_TICKS = 500;

interface Instance {
  readonly id: number;
  readonly app: INestApplicationContext;
  readonly record: LeaderRecord;
  readonly proxy: TcpProxy;
}

/** The instances of one kind of app, their proxies, and the pings counted through them. */
class Instances {
  readonly live: Instance[] = [];
  readonly proxies: TcpProxy[] = [];
  pings = 0;
  /** Requests sent through the proxies (pings left out), by opcode. */
  readonly opcodes = new Map<number, number>();
  private made = 0;
  /** Instances being closed (no longer live). */
  private readonly closing = new Set<Promise<void>>();

  constructor(
    private readonly ctx: BenchContext,
    private readonly kind: 'leader' | 'job',
  ) {}

  async openProxies(): Promise<void> {
    for (let i = 0; i < LEADER_INSTANCES; i += 1) {
      const [host, port] = this.ctx.server.connectString.split(':');
      const proxy = await TcpProxy.start({ host, port: Number(port) });
      proxy.onFrame((direction, frame) => {
        if (direction !== 'up' || frame.index === 0) return;
        if (isPing(frame)) this.pings += 1;
        else if (frame.opcode !== undefined) this.opcodes.set(frame.opcode, (this.opcodes.get(frame.opcode) ?? 0) + 1);
      });
      this.proxies.push(proxy);
    }
  }

  /** A new instance through `proxy`, at the back of the queue. */
  async start(proxy: TcpProxy): Promise<Instance> {
    const record = new LeaderRecord();
    const app = await NestFactory.createApplicationContext(
      leaderBenchModule(this.kind, proxy.connectString, LEADER_SESSION_MS, record),
      { logger: new StderrLogger() },
    );
    const instance = { id: ++this.made, app, record, proxy };
    this.live.push(instance);
    return instance;
  }

  /** The session timeout the server granted (the same for every instance). */
  sessionTimeout(): number {
    const session = this.live[0].app.get(ZkConnectionService).currentSession();
    if (!session) throw new Error('leader: the first instance has no session');
    return session.timeout;
  }

  /** Once every live instance has its node under `path` (the queue is full), the one that leads. */
  async settled(path: string, leads: (i: Instance) => boolean): Promise<Instance> {
    const [first] = this.live;
    const connection = first.app.get(ZkConnectionService);
    await waitFor(
      async () => {
        try {
          return (await connection.getChildren(path)).children.length === this.live.length;
        } catch (error) {
          if (ZooKeeperError.is(error, 'NO_NODE')) return false;
          throw error;
        }
      },
      { timeout: 30_000, interval: 5, message: `${this.live.length} nodes under ${path}` },
    );
    return waitFor(() => (this.live.filter(leads).length === 1 ? this.live.find(leads) : undefined), {
      timeout: 30_000,
      interval: 5,
      message: `one leader of ${path}`,
    });
  }

  /** Starts closing `instance` (no longer live); resolves when it is closed. */
  retire(instance: Instance): Promise<void> {
    this.live.splice(this.live.indexOf(instance), 1);
    const closing = instance.app.close();
    this.closing.add(closing);
    return closing.finally(() => this.closing.delete(closing));
  }

  /** Closes every instance, then the proxies. */
  async close(): Promise<void> {
    await Promise.allSettled([...this.closing, ...this.live.splice(0).map((i) => i.app.close())]);
    await Promise.all(this.proxies.splice(0).map((p) => p.close()));
  }
}

/** The next leader (another instance than `holder`) told after `since`, and when. */
function nextLeader(
  instances: Instances,
  holder: Instance,
  since: number,
  timeout: number,
): Promise<[Instance, number]> {
  return waitFor(
    () => {
      for (const other of instances.live) {
        const at = other.record.acquired.at(-1);
        if (other !== holder && at !== undefined && at > since) return [other, at] as [Instance, number];
      }
      return undefined;
    },
    { timeout, interval: 2, message: 'the next leader' },
  );
}

/** Requests (pings left out) the server received while `body` ran. */
async function requestsDuring(ctx: BenchContext, instances: Instances, body: () => Promise<void>): Promise<number> {
  const before = await ctx.server.packets();
  const pings = instances.pings;
  await body();
  const after = await ctx.server.packets();
  return after - before - (instances.pings - pings);
}

interface Handovers {
  times: number[];
  overlaps: number;
  requests: number;
  /** Requests sent during the counted handovers, by opcode (pings left out). */
  opcodes: Map<number, number>;
}

/** Runs `body` and adds what the proxies saw meanwhile (by opcode) to `into`. */
async function countingOpcodes(instances: Instances, into: Map<number, number>, body: () => Promise<void>) {
  const before = new Map(instances.opcodes);
  await body();
  for (const [code, count] of instances.opcodes) {
    const added = count - (before.get(code) ?? 0);
    if (added > 0) into.set(code, (into.get(code) ?? 0) + added);
  }
}

/** Closes the leader `count` times (after WARMUP_HANDOVERS more), timing each handover. */
async function cleanHandovers(ctx: BenchContext, instances: Instances, count: number): Promise<Handovers> {
  const result: Handovers = { times: [], overlaps: 0, requests: 0, opcodes: new Map() };
  for (let i = 0; i < WARMUP_HANDOVERS + count; i += 1) {
    const holder = await instances.settled(LEADER_PATH, (x) => x.record.leads);
    let took = 0;
    const opcodes = new Map<number, number>();
    const requests = await requestsDuring(ctx, instances, () =>
      countingOpcodes(instances, opcodes, async () => {
        const closed = performance.now();
        const closing = instances.retire(holder);
        const [, at] = await nextLeader(instances, holder, closed, 10_000);
        took = at - closed;
        await closing;
        if (!((holder.record.ended.at(-1) ?? Infinity) < at)) result.overlaps += 1;
      }),
    );
    if (i >= WARMUP_HANDOVERS) {
      result.times.push(took);
      result.requests += requests;
      for (const [code, n] of opcodes) result.opcodes.set(code, (result.opcodes.get(code) ?? 0) + n);
    }
    await instances.start(holder.proxy);
  }
  return result;
}

/** Cuts the leader off `count` times, timing each handover (the server's expiry of its session). */
async function crashHandovers(
  ctx: BenchContext,
  instances: Instances,
  count: number,
  timeout: number,
): Promise<Handovers> {
  const result: Handovers = { times: [], overlaps: 0, requests: 0, opcodes: new Map() };
  ctx.note('leader crash: each instance cut off warns that it presumes its session expired (expected)');
  for (let i = 0; i < count; i += 1) {
    const holder = await instances.settled(LEADER_PATH, (x) => x.record.leads);
    await delay(Math.round((i * CRASH_PHASES_MS) / count));
    result.requests += await requestsDuring(ctx, instances, () =>
      countingOpcodes(instances, result.opcodes, async () => {
        const cut = performance.now();
        holder.proxy.blackhole();
        const [, at] = await nextLeader(instances, holder, cut, timeout * 3 + 10_000);
        result.times.push(at - cut);
        // Its own belief must have ended (presumed lost, without hearing from the server) before.
        if (!((holder.record.ended.at(-1) ?? Infinity) < at)) result.overlaps += 1;
      }),
    );
    // Back on the network, it learns that its session expired and re-joins; then it closes.
    holder.proxy.restore();
    await instances.retire(holder);
    await instances.start(holder.proxy);
  }
  return result;
}

/** The skip point: ticks on the instances that do not hold the job cost no request. */
async function skippedTicks(ctx: BenchContext): Promise<LeaderSkipLine> {
  const instances = new Instances(ctx, 'job');
  try {
    await instances.openProxies();
    for (const proxy of instances.proxies) await instances.start(proxy);
    const isHolder = (i: Instance) => i.app.get(LeadershipService).isLeader(JOB_PATH);
    const holder = await instances.settled(JOB_PATH, isHolder);
    // Settled: the holder watches its own node, each other instance its predecessor.
    await waitFor(() => instances.live.every((i) => i.app.get(ZkConnectionService).stats().watches >= 1), {
      timeout: 30_000,
      interval: 5,
      message: 'every instance watching',
    });
    const others = instances.live.filter((i) => i !== holder);
    const requests = await requestsDuring(ctx, instances, async () => {
      for (const other of others) {
        const job = other.app.get(SchedulerRegistry).getCronJob(JOB_NAME);
        for (let tick = 0; tick < SKIP_TICKS; tick += 1) await job.fireOnTick();
      }
    });
    // The job does run, on its holder.
    await holder.app.get(SchedulerRegistry).getCronJob(JOB_NAME).fireOnTick();
    if (holder.record.runs !== 1)
      throw new Error(`leader skip: the job's holder ran ${holder.record.runs} times, not 1`);
    const skipped = others.length * SKIP_TICKS;
    return {
      workload: 'leader',
      point: 'skip',
      instances: LEADER_INSTANCES,
      skipped_ticks: skipped,
      runs: others.reduce((sum, i) => sum + i.record.runs, 0),
      requests_per_op: round(requests / skipped, 3),
    };
  } finally {
    await instances.close();
  }
}

/** The whole workload: its three lines (clean, crash, skip). */
export async function leader(ctx: BenchContext): Promise<LeaderLine[]> {
  const instances = new Instances(ctx, 'leader');
  let clean: Handovers;
  let crash: Handovers;
  let timeout: number;
  try {
    await instances.openProxies();
    for (const proxy of instances.proxies) await instances.start(proxy);
    timeout = instances.sessionTimeout();
    clean = await cleanHandovers(ctx, instances, ctx.args.handovers);
    crash = await crashHandovers(ctx, instances, ctx.args.crashes, timeout);
  } finally {
    await instances.close();
  }
  const bounds = ttlLeaseBounds(timeout);
  const c = handoverStats(clean.times);
  const k = handoverStats(crash.times);
  ctx.note(
    `leader: clean handovers (ms) ${clean.times.map((t) => t.toFixed(1)).join(' ')}; ` +
      `crash handovers (ms) ${crash.times.map((t) => t.toFixed(0)).join(' ')}`,
  );
  ctx.note(`leader: requests per clean handover: ${perOpcode(clean.opcodes, clean.times.length)}`);
  ctx.note(`leader: requests per crash handover: ${perOpcode(crash.opcodes, crash.times.length)}`);
  return [
    {
      workload: 'leader',
      point: 'clean',
      instances: LEADER_INSTANCES,
      handovers: clean.times.length,
      p50_ms: c.p50,
      p99_ms: c.p99,
      max_ms: c.max,
      session_timeout_ms: timeout,
      ttl_lease_bound_ms: bounds.clean,
      overlaps: clean.overlaps,
      requests_per_op: round(clean.requests / clean.times.length, 3),
    },
    {
      workload: 'leader',
      point: 'crash',
      instances: LEADER_INSTANCES,
      handovers: crash.times.length,
      p50_ms: k.p50,
      p99_ms: k.p99,
      max_ms: k.max,
      session_timeout_ms: timeout,
      p50_ratio: round(k.p50 / timeout, 3),
      max_ratio: round(k.max / timeout, 3),
      ttl_lease_bound_ms: bounds.crash,
      overlaps: crash.overlaps,
      requests_per_op: round(crash.requests / crash.times.length, 3),
    },
    await skippedTicks(ctx),
  ];
}
