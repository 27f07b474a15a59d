/**
 * The testing kit's Nest wiring: a user's @DistributedLock service under Test.createTestingModule
 * with ZkLockTestingModule.forRoot() (no Java, well under a second), lost-lock handling through
 * expireSession, a whole application module swapped over with useInMemoryZooKeeper, and two
 * applications contending on one stand-in.
 */
import 'reflect-metadata';
import * as fs from 'node:fs';
import { Controller, Get, Injectable, Module } from '@nestjs/common';
import { HealthCheck, HealthCheckService, TerminusModule } from '@nestjs/terminus';
import { Test, type TestingModule } from '@nestjs/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { ZkHealthIndicator } from '../../lib/health/index.js';
import {
  DistributedLock,
  LockLostError,
  LockService,
  OnOneInstance,
  ZkConnectionService,
  ZkLockModule,
} from '../../lib/index.js';
import { LeadershipService } from '../../lib/jobs/index.js';
import {
  expireSession,
  InMemoryZkConnection,
  InMemoryZooKeeper,
  useInMemoryZooKeeper,
  waitFor,
  ZkLockTestingModule,
} from '../../lib/testing/index.js';

/** Who is inside the locked section, over every application of a test. */
const inside = { now: 0, max: 0, runs: 0 };

@Injectable()
class ReportService {
  constructor(readonly locks: LockService) {}

  @DistributedLock('/locks/report')
  async generate(): Promise<bigint> {
    inside.now += 1;
    inside.max = Math.max(inside.max, inside.now);
    await new Promise((resolve) => setImmediate(resolve));
    inside.now -= 1;
    inside.runs += 1;
    return this.locks.current()!.fencingToken;
  }

  /** Holds the lock until it is lost; resolves with why. */
  @DistributedLock('/locks/long-job')
  async holdUntilLost(started: () => void): Promise<string> {
    const lock = this.locks.current()!;
    started();
    await new Promise((resolve) => lock.signal.addEventListener('abort', resolve, { once: true }));
    return (lock.signal.reason as LockLostError).reason;
  }
}

const modules: TestingModule[] = [];

afterEach(async () => {
  await Promise.all(modules.splice(0).map((moduleRef) => moduleRef.close()));
  Object.assign(inside, { now: 0, max: 0, runs: 0 });
});

async function testingModule(zooKeeper?: InMemoryZooKeeper): Promise<TestingModule> {
  const moduleRef = await Test.createTestingModule({
    imports: [ZkLockTestingModule.forRoot({ zooKeeper })],
    providers: [ReportService],
  }).compile();
  modules.push(moduleRef);
  await moduleRef.init();
  return moduleRef;
}

/** Command lines of this process's child processes (Linux). */
function childCommands(): string[] {
  const children = fs.readFileSync(`/proc/${process.pid}/task/${process.pid}/children`, 'utf8').trim();
  return children
    ? children.split(/\s+/).map((pid) => {
        try {
          return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
        } catch {
          return '';
        }
      })
    : [];
}

describe('ZkLockTestingModule', () => {
  it('runs a @DistributedLock service on the stand-in in well under a second, serialized, without Java', async () => {
    // The process's first Nest module pays for Nest's own first compile (JIT, metadata scans),
    // CPU-bound work that took 0.3-0.9 s on a loaded 2-core machine and 1.2 s when starved: the
    // stand-in cannot change it. Measured after one (a warm module is ~20 ms, the 20 calls ~30);
    // that one has its own stand-in, and closes after the test.
    await testingModule();
    const started = performance.now();
    const moduleRef = await testingModule();
    const service = moduleRef.get(ReportService);
    const tokens = await Promise.all(Array.from({ length: 20 }, () => service.generate()));
    const elapsed = performance.now() - started;

    expect(inside).toMatchObject({ max: 1, runs: 20 });
    expect(new Set(tokens).size).toBe(20);
    expect(moduleRef.get(ZkConnectionService)).toBeInstanceOf(InMemoryZkConnection);
    expect(moduleRef.get(InMemoryZooKeeper).sessionCount).toBe(1);
    expect(childCommands().filter((command) => /\bjava\b/.test(command))).toEqual([]);
    // The bound the README states for a unit test on the stand-in (a Nest module, 20 locked calls).
    expect(elapsed).toBeLessThan(1_000);
  });

  it('expireSession(connection) makes the running method lose its lock (session-expired)', async () => {
    const moduleRef = await testingModule();
    let running!: () => void;
    const isRunning = new Promise<void>((resolve) => (running = resolve));
    const outcome = moduleRef.get(ReportService).holdUntilLost(running);
    await isRunning;
    await expireSession(moduleRef.get(ZkConnectionService));
    expect(await outcome).toBe('session-expired');
    // A new session follows: the service locks again.
    await expect(moduleRef.get(ReportService).generate()).resolves.toBeTypeOf('bigint');
  });

  it('two applications on one InMemoryZooKeeper contend for the same locks', async () => {
    const zk = new InMemoryZooKeeper();
    const [a, b] = await Promise.all([testingModule(zk), testingModule(zk)]);
    await Promise.all(
      [a, b].flatMap((moduleRef) => Array.from({ length: 10 }, () => moduleRef.get(ReportService).generate())),
    );
    expect(inside).toMatchObject({ max: 1, runs: 20 });
    expect(zk.sessionCount).toBe(2);
  });
});

@Injectable()
class NightlyJobs {
  runs = 0;

  @OnOneInstance('/jobs/nightly')
  async send(): Promise<string> {
    this.runs += 1;
    return 'sent';
  }
}

describe('scheduled jobs on the stand-in', () => {
  it('@OnOneInstance: one of two applications runs the job; when its session expires, the other takes over', async () => {
    const zk = new InMemoryZooKeeper();
    const app = async () => {
      const moduleRef = await Test.createTestingModule({
        imports: [ZkLockTestingModule.forRoot({ zooKeeper: zk })],
        providers: [NightlyJobs],
      }).compile();
      modules.push(moduleRef);
      await moduleRef.init();
      return moduleRef;
    };
    const [a, b] = [await app(), await app()];
    const leads = (moduleRef: TestingModule) => moduleRef.get(LeadershipService).isLeader('/jobs/nightly');
    await waitFor(() => leads(a) || leads(b), { message: 'a holder' });
    const [holder, other] = leads(a) ? [a, b] : [b, a];
    expect(await holder.get(NightlyJobs).send()).toBe('sent');
    expect(await other.get(NightlyJobs).send()).toBeUndefined(); // skipped: not the holder

    await expireSession(holder.get(ZkConnectionService));
    await waitFor(() => leads(other), { message: 'the other application holds the job' });
    expect(await other.get(NightlyJobs).send()).toBe('sent');
    expect([holder.get(NightlyJobs).runs, other.get(NightlyJobs).runs]).toEqual([1, 1]);
  });
});

@Controller('health')
class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly zk: ZkHealthIndicator,
  ) {}

  @Get()
  @HealthCheck()
  check() {
    return this.health.check([() => this.zk.isHealthy()]);
  }
}

/** An application as a user writes it: its real ZooKeeper, which the test never reaches. */
@Module({
  imports: [
    ZkLockModule.forRoot({ connectionString: 'zk1.example:2181,zk2.example:2181/app', sessionTimeout: 3_000 }),
    TerminusModule.forRoot({ logger: false }),
  ],
  controllers: [HealthController],
  providers: [ReportService, ZkHealthIndicator],
})
class AppModule {}

describe('useInMemoryZooKeeper', () => {
  it("swaps a whole application's connection: its options apply, its servers and chroot are not used", async () => {
    const zk = new InMemoryZooKeeper();
    const moduleRef = await useInMemoryZooKeeper(Test.createTestingModule({ imports: [AppModule] }), zk).compile();
    modules.push(moduleRef);
    await moduleRef.init();

    const connection = moduleRef.get(ZkConnectionService);
    expect(connection).toBeInstanceOf(InMemoryZkConnection);
    expect(connection.currentSession()?.timeout).toBe(3_000);
    await moduleRef.get(ReportService).generate();
    expect(zk.nodes('/app')).toEqual([]);
    await expect(moduleRef.get(HealthController).check()).resolves.toMatchObject({
      status: 'ok',
      details: { zookeeper: { status: 'up', state: 'connected', server: 'in-memory:2181', sessionTimeout: 3_000 } },
    });
    zk.disconnect(connection as unknown as InMemoryZkConnection);
    await waitFor(() => connection.state === 'suspended');
    const down = (await moduleRef
      .get(HealthController)
      .check()
      .catch((error: { getResponse(): unknown }) => error.getResponse())) as Record<string, unknown>;
    expect(down).toMatchObject({ status: 'error', error: { zookeeper: { status: 'down', state: 'suspended' } } });
    zk.reconnect();
  });
});
