/**
 * Adversary tests of lib/jobs (helper H14): the scheduled jobs and elections attacked at their
 * awaits. Real ZooKeeper; Nest application contexts in one process (one session each); ticks are
 * direct calls of the job methods (the same wrapper the scheduler calls).
 */
import { Injectable, Module, type INestApplicationContext } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { describe, expect, it, onTestFinished } from 'vitest';
import { LockService, ZkConnectionService, ZkLockModule } from '../../lib/index.js';
import { LeadershipService, OnOneInstance, WithoutOverlapping, type LeadershipChange } from '../../lib/jobs/index.js';
import { useFileServer } from '../fixtures/file-server.js';
import { TcpProxy, waitFor, watchesByPath } from '../support/index.js';

const server = useFileServer();

const STICKY = '/adversary-jobs/sticky';
const BOTH = '/adversary-jobs/both';
const BOTH_LOCK = '/adversary-jobs/both-lock';
/** The setData opcode (frames seen at the proxy). */
const SET_DATA = 5;

/** What one app's job bodies saw. */
interface Ran {
  job: string;
  tick: number;
  /** The run's handle was gone from its context, or its signal had aborted, when its body began. */
  abortedAtStart: boolean;
}

const APP = Symbol('adversary app');

@Injectable()
class Jobs {
  tick = 0;
  readonly ran: Ran[] = [];

  constructor(private readonly locks: LockService) {}

  @OnOneInstance(STICKY)
  async sticky(): Promise<void> {
    this.record('sticky', STICKY);
  }

  @OnOneInstance(BOTH)
  @WithoutOverlapping(BOTH_LOCK)
  async both(): Promise<void> {
    this.record('both', BOTH);
  }

  private record(job: string, path: string): void {
    const lock = this.locks.current(path); // (a lost handle is not current)
    this.ran.push({ job, tick: this.tick, abortedAtStart: !lock || lock.signal.aborted });
  }
}

interface Instance {
  name: string;
  app: INestApplicationContext;
  jobs: Jobs;
  locks: LockService;
  leadership: LeadershipService;
  connection: ZkConnectionService;
  proxy: TcpProxy | undefined;
  changes: LeadershipChange[];
}

async function start(name: string, proxied = false): Promise<Instance> {
  const proxy = proxied ? await TcpProxy.start({ host: server.host, port: server.port }) : undefined;
  if (proxy) onTestFinished(() => proxy.close());
  @Module({
    imports: [
      ZkLockModule.forRoot({
        connectionString: proxy?.connectString ?? server.connectString,
        sessionTimeout: 4_000,
        appName: name,
        shutdownTimeout: 2_000,
      }),
    ],
    providers: [{ provide: APP, useValue: name }, Jobs],
  })
  class AdversaryModule {}
  const app = await NestFactory.createApplicationContext(AdversaryModule, { logger: false, abortOnError: false });
  let closed = false;
  const close = app.close.bind(app);
  app.close = async () => {
    if (closed) return;
    closed = true;
    await close();
  };
  onTestFinished(() => app.close());
  const leadership = app.get(LeadershipService);
  const changes: LeadershipChange[] = [];
  leadership.changes.subscribe((change) => changes.push(change));
  return {
    name,
    app,
    proxy,
    changes,
    jobs: app.get(Jobs),
    locks: app.get(LockService),
    leadership,
    connection: app.get(ZkConnectionService),
  };
}

/** Starts `first`, waits until it leads `path`, then the others (so `first` is the holder). */
async function holderFirst(path: string, proxiedHolder = false): Promise<[Instance, Instance]> {
  const holder = await start('a', proxiedHolder);
  await waitFor(() => holder.leadership.isLeader(path), { message: `a leads ${path}` });
  const other = await start('b');
  // b is queued behind a (its node exists): from here on a hand-over goes to b.
  await waitFor(async () => (await other.locks.inspect(path)).queue.length === 1, { message: 'b queued' });
  return [holder, other];
}

describe('@OnOneInstance + @WithoutOverlapping(path): the term ends while the tick takes its lock', () => {
  it('the tick skips (no body with an aborted signal, no run after the hand-over), and its lock is released', async () => {
    const [a, b] = await holderFirst(BOTH);
    // While a's tick takes the @WithoutOverlapping lock, its job is revoked (another process asks
    // for a release): a's term ends and b takes the job.
    const acquire = a.locks.acquire.bind(a.locks);
    let asked = 0;
    a.locks.acquire = async (path, options) => {
      if (path === BOTH_LOCK) {
        asked = await b.locks.requestRelease(BOTH);
        await waitFor(() => b.leadership.isLeader(BOTH), { message: 'b took the job' });
      }
      return acquire(path, options);
    };
    a.jobs.tick = 1;
    await a.jobs.both();
    expect(asked).toBe(1);
    expect(a.jobs.ran, 'a ran a tick after its term had ended').toEqual([]);
    expect(a.changes.filter((c) => !c.leader).map((c) => c.reason)).toEqual(['revoked']);
    // Nothing of a's tick is left on the lock: b's tick runs.
    await waitFor(async () => (await b.locks.inspect(BOTH_LOCK)).holders.length === 0, {
      message: 'the lock released',
    });
    b.jobs.tick = 2;
    await b.jobs.both();
    expect(b.jobs.ran).toEqual([{ job: 'both', tick: 2, abortedAtStart: false }]);
  });
});

describe('a release request (requestRelease) on a job election', () => {
  it("is not overwritten by a run's token setData that lands after it: the holder steps down", async () => {
    const [a, b] = await holderFirst(STICKY, true);
    a.jobs.tick = 1;
    await a.jobs.sticky(); // the first run of the term reads the node's data
    expect(a.jobs.ran).toHaveLength(1);
    const node = a.leadership.leaderLock(STICKY)!.node;
    // Settled: a watches its own node again (after its setData), b its predecessor.
    await waitFor(async () => (await watchesByPath(server)).get(node) === 2, { message: 'the watches back' });
    // a's setData request, and whether the server answered it (the answer is held, a hears nothing).
    let setData: number | undefined;
    const answered = new Set<number>();
    const stop = a.proxy!.onFrame((direction, frame) => {
      if (direction === 'up' && frame.opcode === SET_DATA) setData ??= frame.xid;
      if (direction === 'down' && frame.xid !== undefined && frame.xid >= 0) answered.add(frame.xid);
    });
    onTestFinished(stop);
    // a does not hear anything from now on (its requests still reach the server).
    a.proxy!.pause('down');
    expect(await b.locks.requestRelease(STICKY)).toBe(1); // writes the release request into a's node
    a.jobs.tick = 2;
    const tick = a.jobs.sticky(); // a has not heard of the request: its run's setData comes after it
    await waitFor(() => setData !== undefined && answered.has(setData), { message: "the server answered a's setData" });
    a.proxy!.resume('down');
    await tick;
    // The request was not lost: a steps down, b holds the job.
    await waitFor(() => b.leadership.isLeader(STICKY), { message: 'b holds the job', timeout: 5_000 });
    expect(a.leadership.isLeader(STICKY)).toBe(false);
    expect(a.changes.filter((c) => c.path === STICKY && !c.leader).map((c) => c.reason)).toEqual(['revoked']);
  });
});

describe('LeadershipService.leave', () => {
  it('called twice, the second call also resolves only once the node is gone', async () => {
    const a = await start('a');
    const b = await start('b');
    const path = '/adversary-jobs/by-hand';
    let lostCalled = false;
    a.leadership.join(path, {
      // A slow onLeadershipLost keeps the node (within shutdownTimeout) while the leave goes on.
      lost: () => {
        lostCalled = true;
        return new Promise((resolve) => setTimeout(resolve, 500));
      },
    });
    await waitFor(() => a.leadership.isLeader(path), { message: 'a leads' });
    const first = a.leadership.leave(path);
    const second = a.leadership.leave(path);
    await second;
    expect(lostCalled).toBe(true);
    expect((await b.locks.inspect(path)).holders, 'the node is gone when leave() resolves').toEqual([]);
    await first;
  });
});
