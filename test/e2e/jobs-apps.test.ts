/**
 * Scheduled jobs and leader elections in three Nest apps in one process (three sessions), real
 * ZooKeeper, real @nestjs/schedule: ticks fired through SchedulerRegistry's own cron jobs.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { performance } from 'node:perf_hooks';
import { Injectable, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Interval, ScheduleModule, SchedulerRegistry } from '@nestjs/schedule';
import { describe, expect, it, onTestFinished } from 'vitest';
import { InvalidOptionsError, LockService, ZkConnectionService, ZkLockModule } from '../../lib/index.js';
import { JOB_CHANNELS, LeadershipService, OnOneInstance } from '../../lib/jobs/index.js';
import type { JobEvent, JobSkippedEvent } from '../../lib/lock/lock-events.js';
import { useFileServer } from '../fixtures/file-server.js';
import {
  ANYWHERE_PATH,
  APP_NAME,
  ELECTION_PATHS,
  fireTick,
  JobsLog,
  jobsAppModule,
  LEADER_PATH,
  RecordingLogger,
  ReportJobs,
  SLOW_PATH,
  STICKY_PATH,
  type JobRun,
} from '../fixtures/jobs-app.js';
import { isPing, packetsReceived, TcpProxy, waitFor, watchCount } from '../support/index.js';
import type { INestApplicationContext } from '@nestjs/common';

const server = useFileServer();
const logger = new RecordingLogger();

interface Instance {
  name: string;
  app: INestApplicationContext;
  log: JobsLog;
  registry: SchedulerRegistry;
  leadership: LeadershipService;
  connection: ZkConnectionService;
  proxy: TcpProxy | undefined;
}

/** Starts an app named `name` (through its own proxy with `proxied`); closed after the test. */
async function start(name: string, proxied = false): Promise<Instance> {
  const proxy = proxied ? await TcpProxy.start({ host: server.host, port: server.port }) : undefined;
  if (proxy) onTestFinished(() => proxy.close());
  const app = await NestFactory.createApplicationContext(
    jobsAppModule({ connectionString: proxy?.connectString ?? server.connectString, name }),
    { logger, abortOnError: false },
  );
  let closed = false;
  const close = app.close.bind(app);
  app.close = async () => {
    if (closed) return;
    closed = true;
    await close();
  };
  onTestFinished(() => app.close());
  return {
    name,
    app,
    proxy,
    log: app.get(JobsLog),
    registry: app.get(SchedulerRegistry),
    leadership: app.get(LeadershipService),
    connection: app.get(ZkConnectionService),
  };
}

function startAll(proxied = false): Promise<Instance[]> {
  logger.lines.length = 0;
  return Promise.all(['a', 'b', 'c'].map((name) => start(name, proxied)));
}

/**
 * The instance that leads `path`, once one does (the tests then check that it is the only one:
 * their assertions, not this wait, fail on a broken lock).
 */
function holderOf(instances: Instance[], path: string): Promise<Instance> {
  return waitFor(() => instances.find((i) => i.leadership.isLeader(path)), { message: `a leader of ${path}` });
}

function tickAll(instances: Instance[], job: string, tick: number): Promise<void[]> {
  return Promise.all(instances.map((i) => fireTick(i.registry, i.log, job, tick)));
}

function runsOf(instances: Instance[], job: string): JobRun[] {
  return instances.flatMap((i) => i.log.runs.filter((run) => run.job === job)).toSorted((x, y) => x.tick - y.tick);
}

function strictlyIncreasing(values: bigint[]): boolean {
  return values.every((value, i) => i === 0 || value > values[i - 1]);
}

/** Records the job events published on `channel` during the test. */
function record<E extends JobEvent>(channel: string): E[] {
  const seen: E[] = [];
  const listener = (message: unknown) => seen.push(message as E);
  subscribe(channel, listener);
  onTestFinished(() => {
    unsubscribe(channel, listener);
  });
  return seen;
}

describe('@OnOneInstance', () => {
  it('every tick runs exactly once, always on the same instance while it lives; skipped ticks throw nothing and log no error', async () => {
    const all = await startAll();
    const holder = await holderOf(all, STICKY_PATH);
    for (let tick = 1; tick <= 10; tick += 1) {
      await tickAll(all, 'sticky', tick);
      await tickAll(all, 'reversed', tick);
    }
    for (const job of ['sticky', 'reversed']) {
      const runs = runsOf(all, job);
      expect(runs.map((run) => run.tick)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      expect(new Set(runs.map((run) => run.app)).size).toBe(1);
      expect(strictlyIncreasing(runs.map((run) => run.token))).toBe(true);
    }
    expect(runsOf(all, 'sticky')[0].app).toBe(holder.name);
    // A direct call on an instance that does not hold the job resolves undefined.
    const other = all.find((i) => i !== holder)!;
    await expect(other.app.get(ReportJobs).sticky()).resolves.toBeUndefined();
    expect(logger.of('error')).toEqual([]);
    expect(logger.of('warn')).toEqual([]);
    // One debug line per skipped tick: 2 instances x 10 ticks, plus the direct call.
    expect(logger.of('debug', 'ReportJobs#sticky: tick skipped (not-leader)')).toHaveLength(21);
  });

  it('a skipped tick makes no ZooKeeper request (counted at the proxies and on the server)', async () => {
    const all = await startAll(true);
    const holder = await holderOf(all, STICKY_PATH);
    for (const path of ELECTION_PATHS) await holderOf(all, path);
    // Settled: per election, the holder watches its own node and each waiter its predecessor.
    await waitFor(async () => (await watchCount(server)) === 3 * ELECTION_PATHS.length, {
      message: 'every election settled',
    });
    const others = all.filter((i) => i !== holder);
    let requests = 0;
    let pings = 0;
    const stops = all.map((i) =>
      i.proxy!.onFrame((direction, frame) => {
        if (direction !== 'up') return;
        if (isPing(frame)) pings += 1;
        else if (i !== holder) requests += 1;
      }),
    );
    const before = await packetsReceived(server);
    for (let tick = 1; tick <= 20; tick += 1) await tickAll(others, 'sticky', tick);
    const after = await packetsReceived(server);
    for (const stop of stops) stop();
    expect(runsOf(all, 'sticky')).toEqual([]);
    expect(requests).toBe(0);
    expect(after - before - pings).toBe(0); // the server's own counter: nothing but pings

    // A run costs: the node's data (first run of a term), the setData that gives its token, and
    // the re-registration of the holder's own-node watch that the setData fired.
    const byHolder: number[] = [];
    for (let tick = 21; tick <= 23; tick += 1) {
      let sent = 0;
      const stop = holder.proxy!.onFrame((direction, frame) => {
        if (direction === 'up' && !isPing(frame)) sent += 1;
      });
      await fireTick(holder.registry, holder.log, 'sticky', tick);
      await waitFor(async () => (await watchCount(server)) === 3 * ELECTION_PATHS.length, { message: 'watch back' });
      stop();
      byHolder.push(sent);
    }
    console.log(`requests of the holder per run: ${byHolder.join(', ')} (first run of its term first)`);
    expect(byHolder).toEqual([3, 2, 2]);
  });

  it('after a clean shutdown of the holder, the next tick runs on another instance (handover measured)', async () => {
    const all = await startAll();
    const holder = await holderOf(all, STICKY_PATH);
    await tickAll(all, 'sticky', 1);
    const others = all.filter((i) => i !== holder);
    const took: { name: string; at: number }[] = [];
    for (const other of others) {
      other.leadership.changesOf(STICKY_PATH).subscribe((change) => {
        if (change.leader) took.push({ name: other.name, at: change.at });
      });
    }
    const closing = performance.now();
    await holder.app.close();
    const closed = performance.now();
    const next = await holderOf(others, STICKY_PATH);
    await tickAll(others, 'sticky', 2);
    const ran = performance.now();
    const runs = runsOf(all, 'sticky');
    expect(runs.map((run) => [run.tick, run.app])).toEqual([
      [1, holder.name],
      [2, next.name],
    ]);
    expect(runs[1].token).toBeGreaterThan(runs[0].token);
    expect(took).toHaveLength(1);
    const handover = took[0].at - closing;
    console.log(
      `clean handover: new holder ${handover.toFixed(1)} ms after close() began (close took ${(closed - closing).toFixed(1)} ms); ` +
        `the next tick ran ${(ran - closing).toFixed(1)} ms after close() began`,
    );
    // Documented bound: one notification after the node's deletion (target < 100 ms); asserted
    // loosely for a loaded machine.
    expect(handover).toBeLessThan(2_000);
    expect(logger.of('error')).toEqual([]);
  });

  it('a run in progress at the holder shutdown gets the signal, and the next holder starts after it (with @WithoutOverlapping)', async () => {
    const all = await startAll();
    for (const i of all) i.log.slowMs = 800;
    const holder = await holderOf(all, SLOW_PATH);
    await tickAll(all, 'slow', 1);
    await waitFor(() => holder.log.started.some((s) => s.job === 'slow'), { message: 'the slow run started' });
    const others = all.filter((i) => i !== holder);
    /** When another instance took the job: how many runs of it had ended by then. */
    const took: { at: bigint; runsEnded: number }[] = [];
    for (const other of others) {
      other.leadership.changesOf(SLOW_PATH).subscribe((change) => {
        if (change.leader) took.push({ at: process.hrtime.bigint(), runsEnded: runsOf(all, 'slow').length });
      });
    }
    await holder.app.close();
    await holderOf(others, SLOW_PATH);
    expect(took).toHaveLength(1);
    expect(took[0].runsEnded, 'the run had ended when the next holder took the job').toBe(1);
    const [run] = runsOf(all, 'slow');
    expect(run.aborted).toBe(true); // its signal aborted when the shutdown began
    expect(took[0].at).toBeGreaterThan(run.exit);
  });

  it('an outage during a tick: the tick skips with one warning, no error; the holder runs again once reconnected', async () => {
    const all = await Promise.all(['a', 'b'].map((name) => start(name, true)));
    logger.lines.length = 0;
    const holder = await holderOf(all, STICKY_PATH);
    holder.proxy!.refuse();
    holder.proxy!.reset();
    await waitFor(() => holder.connection.state === 'suspended', { interval: 5, message: 'the holder is cut off' });
    await fireTick(holder.registry, holder.log, 'sticky', 1);
    holder.proxy!.restore();
    await waitFor(() => holder.connection.state === 'connected', { interval: 5, message: 'reconnected' });
    await tickAll(all, 'sticky', 2);
    expect(runsOf(all, 'sticky').map((run) => [run.tick, run.app])).toEqual([[2, holder.name]]);
    const warned = logger.lines.filter(
      (l) => l.level === 'warn' && l.message.includes('ReportJobs#sticky: tick skipped'),
    );
    expect(warned).toHaveLength(1);
    expect(warned[0].message).toContain('ZooKeeper unavailable');
    expect(warned[0].extra).toEqual(['ZkJobs']); // the logger's context only: no stack
    expect(logger.of('error')).toEqual([]);
  });

  it('two jobs on one path fail at start-up with an error naming both methods', async () => {
    @Injectable()
    class Twins {
      @OnOneInstance('/jobs-test/twins')
      first(): void {}

      @OnOneInstance('/jobs-test/twins')
      second(): void {}
    }
    @Module({
      imports: [ZkLockModule.forRoot({ connectionString: server.connectString })],
      providers: [Twins],
    })
    class TwinsModule {}
    const failed = await NestFactory.createApplicationContext(TwinsModule, { logger: false, abortOnError: false }).then(
      async (app) => {
        await app.close();
        return undefined;
      },
      (error: unknown) => error,
    );
    expect(failed).toBeInstanceOf(InvalidOptionsError);
    expect((failed as Error).message).toMatch(/Twins#second.*\/jobs-test\/twins.*Twins#first/);
  });
});

describe('next to @Interval (either order)', () => {
  it('an interval job runs on one instance only', async () => {
    const seen: string[] = [];
    @Injectable()
    class IntervalJobs {
      constructor(private readonly log: JobsLog) {}

      @Interval('below', 20)
      @OnOneInstance('/jobs-test/interval-below')
      below(): void {
        seen.push(`below ${this.log.app}`);
      }

      @OnOneInstance('/jobs-test/interval-above')
      @Interval('above', 20)
      above(): void {
        seen.push(`above ${this.log.app}`);
      }
    }
    const apps = await Promise.all(
      ['a', 'b'].map(async (name) => {
        @Module({
          imports: [
            ZkLockModule.forRoot({ connectionString: server.connectString, sessionTimeout: 2_000 }),
            ScheduleModule.forRoot(),
          ],
          providers: [{ provide: APP_NAME, useValue: name }, JobsLog, IntervalJobs],
        })
        class IntervalModule {}
        const app = await NestFactory.createApplicationContext(IntervalModule, { logger, abortOnError: false });
        onTestFinished(() => app.close());
        return app;
      }),
    );
    await waitFor(() => ['below', 'above'].every((job) => seen.filter((s) => s.startsWith(job)).length >= 5), {
      message: 'five runs of each',
    });
    await Promise.all(apps.map((app) => app.close()));
    for (const job of ['below', 'above']) expect(new Set(seen.filter((s) => s.startsWith(job))).size).toBe(1);
  });
});

describe('@WithoutOverlapping', () => {
  it('a slow run makes the next ticks skip everywhere, quietly (alone, and with @OnOneInstance)', async () => {
    const all = await startAll();
    for (const i of all) i.log.slowMs = 1_500;
    const skipped = record<JobSkippedEvent>(JOB_CHANNELS['job-skipped']);
    const [first] = all;
    // Alone: whoever takes the no-wait lock runs.
    await fireTick(first.registry, first.log, 'anywhere', 1);
    await waitFor(() => first.log.started.some((s) => s.job === 'anywhere'), { message: 'the run started' });
    const anywhere = () => skipped.filter((e) => e.method === 'ReportJobs#anywhere').map((e) => e.reason);
    // (one tick at a time: a tick while this instance's previous one is still deciding skips as 'running')
    await tickAll(all, 'anywhere', 2);
    await waitFor(() => anywhere().length === 3, { message: 'three skips' });
    await tickAll(all, 'anywhere', 3);
    await waitFor(() => anywhere().length === 6, { message: 'six skips' });
    expect(anywhere().toSorted()).toEqual(['busy', 'busy', 'busy', 'busy', 'running', 'running']);
    await waitFor(() => runsOf(all, 'anywhere').length === 1, { message: 'the slow run ended', timeout: 5_000 });
    for (const i of all) i.log.slowMs = 0;
    await fireTick(all[1].registry, all[1].log, 'anywhere', 4); // free again: runs
    await waitFor(() => runsOf(all, 'anywhere').length === 2, { message: 'the next run' });
    expect(runsOf(all, 'anywhere')[1].token).toBeGreaterThan(runsOf(all, 'anywhere')[0].token);
    expect(skipped.every((e) => e.path === ANYWHERE_PATH || e.method !== 'ReportJobs#anywhere')).toBe(true);

    // With @OnOneInstance: the holder alone runs; its own ticks skip while its run goes on.
    for (const i of all) i.log.slowMs = 1_500;
    const holder = await holderOf(all, SLOW_PATH);
    await tickAll(all, 'slow', 1);
    await waitFor(() => holder.log.started.some((s) => s.job === 'slow'), { message: 'the slow run started' });
    await tickAll(all, 'slow', 2);
    await tickAll(all, 'slow', 3);
    const slow = () => skipped.filter((e) => e.method === 'ReportJobs#slow').map((e) => e.reason);
    await waitFor(() => slow().length === 8, { message: 'eight skips' });
    expect(slow().filter((reason) => reason === 'running')).toHaveLength(2);
    expect(slow().filter((reason) => reason === 'not-leader')).toHaveLength(6);
    await waitFor(() => runsOf(all, 'slow').length === 1, { message: 'the slow run ended', timeout: 5_000 });
    expect(runsOf(all, 'slow')[0].app).toBe(holder.name);
    expect(logger.of('error')).toEqual([]);
    expect(logger.of('warn')).toEqual([]);
  });
});

describe('@LeaderElection', () => {
  /** The leadership terms of every instance, in order, checked: one at a time, tokens growing. */
  function checkedTerms(instances: Instance[]) {
    const terms = instances.flatMap((i) => i.log.terms).toSorted((x, y) => (x.acquired < y.acquired ? -1 : 1));
    for (let i = 1; i < terms.length; i += 1) {
      // No two leaders' signals live at once, on one monotonic clock.
      expect(terms[i - 1].lost, 'the earlier leader had lost before the next one began').toBeDefined();
      expect(terms[i].acquired).toBeGreaterThan(terms[i - 1].lost!);
      expect(terms[i].token).toBeGreaterThan(terms[i - 1].token);
    }
    return terms;
  }

  it('exactly one leader among three; after its shutdown, a new one; onLeadershipLost on the old one after its signal', async () => {
    const all = await startAll();
    const first = await holderOf(all, LEADER_PATH);
    await waitFor(() => first.log.terms.length === 1, { message: 'onLeadershipAcquired called' });
    expect(all.map((i) => i.log.terms.length).toSorted((x, y) => x - y)).toEqual([0, 0, 1]);
    expect(first.leadership.leaderLock(LEADER_PATH)?.fencingToken).toBe(first.log.terms[0].token);
    await first.app.close();
    const others = all.filter((i) => i !== first);
    const second = await holderOf(others, LEADER_PATH);
    await waitFor(() => second.log.terms.length === 1, { message: 'the second leader was told' });
    expect(first.log.terms[0]).toMatchObject({ lostReason: 'shutdown', abortedBeforeLost: true });
    expect(checkedTerms(all)).toHaveLength(2);
    expect(others.filter((i) => i.leadership.isLeader(LEADER_PATH))).toEqual([second]);
  });

  it('after the leader is cut off (a crash, seen from the others), a new one, after the old one stopped believing', async () => {
    const all = await startAll(true);
    const first = await holderOf(all, LEADER_PATH);
    await waitFor(() => first.log.terms.length === 1, { message: 'onLeadershipAcquired called' });
    first.proxy!.blackhole();
    const others = all.filter((i) => i !== first);
    const second = await holderOf(others, LEADER_PATH);
    await waitFor(() => second.log.terms.length === 1, { message: 'the second leader was told', timeout: 15_000 });
    expect(first.log.terms[0].lost).toBeDefined();
    expect(['connection-lost', 'session-expired']).toContain(first.log.terms[0].lostReason);
    first.proxy!.restore(); // it re-joins, behind the others
    await waitFor(() => first.connection.state === 'connected', { message: 'the old leader reconnected' });
    expect(checkedTerms(all)).toHaveLength(2);
    expect(all.filter((i) => i.leadership.isLeader(LEADER_PATH))).toEqual([second]);
  });

  it('an onLeadershipAcquired that throws steps down: onLeadershipLost, and the instance re-joins behind the others', async () => {
    const all = await startAll();
    const first = await holderOf(all, LEADER_PATH);
    await waitFor(() => first.log.terms.length === 1, { message: 'onLeadershipAcquired called' });
    const others = all.filter((i) => i !== first);
    for (const other of others) other.log.acquireThrows = 1;
    const lost = record<JobEvent>(JOB_CHANNELS['leadership-lost']);
    await first.app.close();
    // The next one throws and steps down; the third one then leads, throws, steps down; the first
    // one to step down, now behind it, leads.
    const final = await waitFor(
      () => others.find((i) => i.log.terms.length === 1 && i.leadership.isLeader(LEADER_PATH)),
      { message: 'a leader that did not throw' },
    );
    const calls = others
      .flatMap((i) => i.log.acquiredCalls.map((at) => ({ at, name: i.name })))
      .toSorted((x, y) => (x.at < y.at ? -1 : 1))
      .map((call) => call.name);
    const third = others.find((i) => i !== final)!;
    expect(calls).toEqual([final.name, third.name, final.name]);
    expect(lost.filter((e) => e.type === 'leadership-lost' && e.reason === 'stepped-down')).toHaveLength(2);
    expect(logger.of('error', 'onLeadershipAcquired failed; stepping down')).toHaveLength(2);
    expect(checkedTerms(all)).toHaveLength(2);
    expect(others.filter((i) => i.leadership.isLeader(LEADER_PATH))).toEqual([final]);
  });
});

describe('the run', () => {
  it("gets a LockHandle in the lock context (LockService.current), whose token is above its holder's election token", async () => {
    const all = await startAll();
    const holder = await holderOf(all, STICKY_PATH);
    const locks = holder.app.get(LockService);
    let seen: { token: bigint; aborted: boolean } | undefined;
    const jobs = holder.app.get(ReportJobs);
    const original = holder.log.run.bind(holder.log);
    holder.log.run = async (job, lock, ms) => {
      const current = locks.current();
      seen = current && { token: current.fencingToken, aborted: current.signal.aborted };
      return original(job, lock, ms);
    };
    await jobs.sticky();
    expect(seen?.aborted).toBe(false);
    expect(seen!.token).toBeGreaterThan(holder.leadership.leaderLock(STICKY_PATH)!.fencingToken);
    expect(locks.current()).toBeUndefined(); // only inside the run
  });
});
