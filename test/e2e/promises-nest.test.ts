/**
 * README promises of the Nest layer that no other test pinned (issue 12), in real Nest apps on a
 * real ZooKeeper server: guards -> lock -> pipes -> handler; request-scoped and transient
 * providers (and the warning); `isGlobal: false`; @Cron and @OnEvent calling the locked method,
 * whatever the decorator order; the lockTimeout default; the event stream at shutdown; one
 * session per application; HTTP 503 while shutting down.
 */
import 'reflect-metadata';
import {
  BadRequestException,
  Controller,
  Get,
  Injectable,
  Module,
  Param,
  Scope,
  UseGuards,
  type CanActivate,
  type DynamicModule,
  type ExecutionContext,
  type INestApplication,
  type INestApplicationContext,
  type LoggerService,
  type PipeTransform,
} from '@nestjs/common';
import { ContextIdFactory, NestFactory } from '@nestjs/core';
import { EventEmitter2, EventEmitterModule, OnEvent } from '@nestjs/event-emitter';
import { Cron, ScheduleModule } from '@nestjs/schedule';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  DistributedLock,
  LockService,
  LockTimeoutError,
  NotConnectedError,
  ZkConnectionService,
  ZkLockModule,
  type LockEvent,
  type ZkLockOptions,
} from '../../lib/index.js';
import { childrenOf } from '../fixtures/lock-clients.js';
import { startZooKeeper, waitFor, type ZkServer } from '../support/index.js';

let server: ZkServer;
const apps: INestApplicationContext[] = [];

beforeAll(async () => {
  server = await startZooKeeper();
});
afterEach(async () => {
  await Promise.all(apps.splice(0).map((app) => app.close()));
});
afterAll(async () => {
  await server?.dispose();
});

function children(path: string): Promise<string[]> {
  return childrenOf(server.connectString, path);
}

function zk(options: Partial<ZkLockOptions> & { isGlobal?: boolean } = {}): DynamicModule {
  return ZkLockModule.forRoot({ connectionString: server.connectString, sessionTimeout: 4_000, ...options });
}

/** An HTTP app of `module` on a free port. */
async function httpApp(module: new () => object, logger: LoggerService | false = false): Promise<string> {
  const app = await NestFactory.create(module, { logger, abortOnError: false });
  apps.push(app);
  await app.listen(0, '127.0.0.1');
  return app.getUrl();
}

// ---- guards -> lock -> pipes -> handler ----

/** What each stage saw: did this call chain hold the lock, and how many lock nodes did the server have. */
const trail: string[] = [];
async function stage(locks: LockService, name: string): Promise<void> {
  trail.push(
    `${name}: held=${locks.current('/locks/order') !== undefined} nodes=${(await children('/locks/order')).length}`,
  );
}

@Injectable()
class OrderGuard implements CanActivate {
  constructor(private readonly locks: LockService) {}
  async canActivate(context: ExecutionContext): Promise<boolean> {
    await stage(this.locks, 'guard');
    return context.switchToHttp().getRequest<{ params: { value: string } }>().params.value !== 'denied';
  }
}

@Injectable()
class OrderPipe implements PipeTransform<string, Promise<string>> {
  constructor(private readonly locks: LockService) {}
  async transform(value: string): Promise<string> {
    await stage(this.locks, 'pipe');
    if (value === 'bad') throw new BadRequestException('refused by the pipe');
    return value;
  }
}

@Controller('order')
class OrderController {
  constructor(private readonly locks: LockService) {}

  @Get(':value')
  @UseGuards(OrderGuard)
  @DistributedLock('/locks/order')
  async get(@Param('value', OrderPipe) value: string): Promise<{ value: string }> {
    await stage(this.locks, 'handler');
    return { value };
  }
}

describe('on a handler: guards run first, then the lock, then pipes and the handler', () => {
  it('the guard runs without the lock; the pipe and the handler with it; a refusal by either costs or keeps nothing', async () => {
    @Module({ imports: [zk()], controllers: [OrderController], providers: [OrderGuard, OrderPipe] })
    class OrderModule {}
    const url = await httpApp(OrderModule);
    const events: string[] = [];
    apps[0].get(LockService).events.subscribe((event: LockEvent) => events.push(event.type));

    const ok = await fetch(`${url}/order/fine`);
    expect(ok.status).toBe(200);
    expect(trail.splice(0)).toEqual([
      'guard: held=false nodes=0',
      'pipe: held=true nodes=1',
      'handler: held=true nodes=1',
    ]);
    expect(events.splice(0)).toEqual(['acquired', 'released']);

    // A guard that refuses: no lock was ever asked for.
    expect((await fetch(`${url}/order/denied`)).status).toBe(403);
    expect(trail.splice(0)).toEqual(['guard: held=false nodes=0']);
    expect(events.splice(0)).toEqual([]);

    // A pipe that refuses: it ran under the lock, which is released.
    const bad = await fetch(`${url}/order/bad`);
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { message: string }).message).toBe('refused by the pipe');
    expect(trail.splice(0)).toEqual(['guard: held=false nodes=0', 'pipe: held=true nodes=1']);
    expect(events.splice(0)).toEqual(['acquired', 'released']);
    expect(await children('/locks/order')).toEqual([]);
  });
});

// ---- request-scoped and transient providers ----

@Injectable({ scope: Scope.REQUEST })
class PerRequest {
  constructor(private readonly locks: LockService) {}

  @DistributedLock('/locks/per-request')
  async work(): Promise<string> {
    return this.locks.current()!.path;
  }
}

@Injectable({ scope: Scope.TRANSIENT })
class PerConsumer {
  constructor(private readonly locks: LockService) {}

  @DistributedLock('/locks/per-consumer')
  async work(): Promise<string> {
    return this.locks.current()!.path;
  }
}

@Injectable()
class Consumer {
  constructor(readonly transient: PerConsumer) {}
}

@Controller('scoped')
class ScopedController {
  constructor(private readonly perRequest: PerRequest) {}

  @Get()
  async get(): Promise<{ path: string }> {
    return { path: await this.perRequest.work() };
  }
}

/** Not a provider of any application. */
class Plain {
  @DistributedLock('/locks/plain')
  async work(): Promise<string> {
    return 'ran';
  }
}

describe('request-scoped and transient providers', () => {
  it('work while one application runs, with a warning at bootstrap; with two, a call fails with NotConnectedError naming the method', async () => {
    const warnings: string[] = [];
    const logger: LoggerService = {
      log: () => undefined,
      error: () => undefined,
      debug: () => undefined,
      verbose: () => undefined,
      warn: (message: unknown) => warnings.push(String(message)),
    };
    @Module({ imports: [zk()], controllers: [ScopedController], providers: [PerRequest, PerConsumer, Consumer] })
    class ScopedModule {}
    const url = await httpApp(ScopedModule, logger);
    expect(warnings.filter((text) => text.includes('request-scoped or transient'))).toEqual([
      expect.stringContaining('PerRequest'),
      expect.stringContaining('PerConsumer'),
    ]);

    // One application: a request-scoped instance (per HTTP request) and a transient one lock.
    const response = await fetch(`${url}/scoped`);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ path: '/locks/per-request' });
    const first = apps[0];
    await expect(first.get(Consumer).transient.work()).resolves.toBe('/locks/per-consumer');

    // Two applications in the process: which one's locks? Refused, naming the method.
    @Module({ imports: [zk()] })
    class OtherModule {}
    apps.push(await NestFactory.createApplicationContext(OtherModule, { logger: false }));
    const perRequest = await first.resolve(PerRequest, ContextIdFactory.create());
    const error = await perRequest.work().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NotConnectedError);
    expect((error as Error).message).toContain('PerRequest#work');
    await expect(first.get(Consumer).transient.work()).rejects.toThrow('PerConsumer#work');
    await expect(new Plain().work()).rejects.toThrow('Plain#work');
  });

  it('with no application running, a decorated method of an object no application created fails naming the method', async () => {
    const error = await new Plain().work().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NotConnectedError);
    expect((error as Error).message).toContain('Plain#work');
  });
});

// ---- isGlobal: false ----

@Injectable()
class FeatureService {
  constructor(readonly locks: LockService) {}
}

@Controller('feature')
class FeatureController {
  @Get()
  @DistributedLock('/locks/feature')
  async get(): Promise<string> {
    return 'locked';
  }
}

describe('isGlobal: false', () => {
  it('a module whose controllers or providers use the lock must import ZkLockModule.forRoot(...) itself; one session is shared', async () => {
    const local = zk({ isGlobal: false });

    @Module({ controllers: [FeatureController], providers: [FeatureService] })
    class Unimported {}
    @Module({ imports: [local, Unimported] })
    class Broken {}
    const error = await NestFactory.create(Broken, { logger: false, abortOnError: false }).catch((e: unknown) => e);
    expect(String(error)).toMatch(/can't resolve dependencies/);

    @Module({ imports: [local], controllers: [FeatureController], providers: [FeatureService] })
    class Feature {}
    @Module({ imports: [local, Feature] })
    class Root {}
    const url = await httpApp(Root);
    const response = await fetch(`${url}/feature`);
    expect(response.status).toBe(200);
    expect(await response.text()).toBe('locked');
    const app = apps[0];
    // The same dynamic module imported twice is one module: one connection, one session.
    expect(app.select(Feature).get(FeatureService).locks).toBe(app.get(LockService, { strict: false }));
    expect(app.select(Feature).get(ZkConnectionService)).toBe(app.select(Root).get(ZkConnectionService));
  });
});

// ---- @Cron and @OnEvent ----

/** What the scheduled and event-driven methods saw, per path: the node they held, still there. */
const ran: Record<string, string[]> = {};

@Injectable()
class Jobs {
  constructor(private readonly locks: LockService) {}

  private async record(path: string): Promise<string> {
    const lock = this.locks.current(path);
    const nodes = await children(path);
    const seen = lock && !lock.released && nodes.includes(lock.node.split('/').pop()!) ? 'locked' : 'NOT LOCKED';
    (ran[path] ??= []).push(seen);
    return seen;
  }

  @Cron('* * * * * *')
  @DistributedLock('/locks/cron/below', { timeout: 0 })
  async cronBelow(): Promise<void> {
    await this.record('/locks/cron/below');
  }

  @DistributedLock('/locks/cron/above', { timeout: 0 })
  @Cron('* * * * * *')
  async cronAbove(): Promise<void> {
    await this.record('/locks/cron/above');
  }

  @OnEvent('order.created')
  @DistributedLock('/locks/event/below')
  async eventBelow(): Promise<string> {
    return this.record('/locks/event/below');
  }

  @DistributedLock('/locks/event/above')
  @OnEvent('order.created')
  async eventAbove(): Promise<string> {
    return this.record('/locks/event/above');
  }
}

describe('@Cron and @OnEvent', () => {
  it('call the locked method, whichever decorator is written first', async () => {
    @Module({ imports: [zk(), ScheduleModule.forRoot(), EventEmitterModule.forRoot()], providers: [Jobs] })
    class JobsModule {}
    const app = await NestFactory.createApplicationContext(JobsModule, { logger: false });
    apps.push(app);
    await app.init();

    const results = await app.get(EventEmitter2).emitAsync('order.created', { id: 1 });
    expect(results).toEqual(['locked', 'locked']);
    expect(ran['/locks/event/below']).toEqual(['locked']);
    expect(ran['/locks/event/above']).toEqual(['locked']);

    // Every second: wait for a run of each job.
    await waitFor(() => ran['/locks/cron/below']?.length && ran['/locks/cron/above']?.length, {
      timeout: 5_000,
      message: 'both cron jobs ran',
    });
    expect([...ran['/locks/cron/below'], ...ran['/locks/cron/above']].every((seen) => seen === 'locked')).toBe(true);
    await app.close();
    apps.splice(apps.indexOf(app), 1);
    for (const path of ['/locks/cron/below', '/locks/cron/above', '/locks/event/below']) {
      expect(await children(path)).toEqual([]);
    }
  });
});

// ---- module options and life cycle ----

@Injectable()
class Waiter {
  constructor(
    private readonly locks: LockService,
    private readonly connection: ZkConnectionService,
  ) {}

  @DistributedLock('/locks/module-timeout')
  async waits(): Promise<string> {
    return 'ran';
  }

  /** The session that owns the node of this call's lock. */
  @DistributedLock('/locks/own-session')
  async owner(): Promise<bigint | undefined> {
    return (await this.connection.exists(this.locks.current()!.node))?.ephemeralOwner;
  }
}

describe('module options and life cycle', () => {
  it("a decorated method without timeout waits the module's lockTimeout", async () => {
    @Module({ imports: [zk({ lockTimeout: 250 })], providers: [Waiter] })
    class TimeoutModule {}
    const app = await NestFactory.createApplicationContext(TimeoutModule, { logger: false });
    apps.push(app);
    const held = await app.get(LockService).acquire('/locks/module-timeout');
    const started = performance.now();
    const error = await app
      .get(Waiter)
      .waits()
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LockTimeoutError);
    expect((error as LockTimeoutError).timeout).toBe(250);
    expect(performance.now() - started).toBeGreaterThanOrEqual(250 - 1);
    await held.release();
    await expect(app.get(Waiter).waits()).resolves.toBe('ran');
  });

  it('several applications in one process: each decorated object locks through its own application, on its own session', async () => {
    @Module({ imports: [zk()], providers: [Waiter] })
    class OwnModule {}
    const [a, b] = [
      await NestFactory.createApplicationContext(OwnModule, { logger: false }),
      await NestFactory.createApplicationContext(OwnModule, { logger: false }),
    ];
    apps.push(a, b);
    const sessions = [a, b].map((app) => app.get(ZkConnectionService).currentSession()!.id);
    expect(sessions[0]).not.toBe(sessions[1]);
    expect([await a.get(Waiter).owner(), await b.get(Waiter).owner()]).toEqual(sessions);
  });

  it('the event stream completes at application shutdown', async () => {
    @Module({ imports: [zk()] })
    class EventsModule {}
    const app = await NestFactory.createApplicationContext(EventsModule, { logger: false });
    let completed = false;
    app.get(LockService).events.subscribe({ complete: () => (completed = true) });
    await app.get(LockService).withLock('/locks/events-app', () => undefined);
    expect(completed).toBe(false);
    await app.close();
    expect(completed).toBe(true);
  });
});

// ---- HTTP 503 ----

@Controller('slow')
class SlowController {
  @Get(':ms')
  @DistributedLock('/locks/slow', { timeout: 300 })
  async slow(@Param('ms') ms: string): Promise<string> {
    await new Promise((resolve) => setTimeout(resolve, Number(ms)));
    return 'done';
  }

  @Get('other/now')
  @DistributedLock('/locks/slow-other', { timeout: 300 })
  async other(): Promise<string> {
    return 'done';
  }
}

describe('HTTP 503 (while ZooKeeper is unreachable: test/e2e/safety-declarative-outage.test.ts)', () => {
  it('while the application shuts down, a new locked request is answered 503; the running one finishes', async () => {
    @Module({ imports: [zk({ shutdownTimeout: 5_000 })], controllers: [SlowController] })
    class SlowModule {}
    const url = await httpApp(SlowModule);
    const app = apps[0] as INestApplication;
    const running = fetch(`${url}/slow/600`);
    await waitFor(async () => (await children('/locks/slow')).length === 1, { message: 'the call holds the lock' });
    const closing = app.close();
    apps.splice(0, 1);
    const late = await waitFor(async () => {
      const response = await fetch(`${url}/slow/other/now`);
      return response.status === 200 ? undefined : response;
    });
    expect(late.status).toBe(503);
    expect(((await late.json()) as { message: string }).message).toContain('shutting down');
    expect((await running).status).toBe(200);
    await closing;
  });
});

// ---- a failed release after a failed body ----

@Injectable()
class Failing {
  @DistributedLock('/noauth-nest/a')
  async fails(): Promise<never> {
    await Promise.resolve();
    throw new Error('the method failed');
  }
}

describe('a locked method whose body and release both fail', () => {
  it("rejects with the body's error; the failed release is logged, naming the method", async () => {
    const warnings: string[] = [];
    const logger: LoggerService = {
      log: () => undefined,
      error: () => undefined,
      debug: () => undefined,
      verbose: () => undefined,
      warn: (message: unknown) => warnings.push(String(message)),
    };
    // The directory grants create and read, not delete: the release fails with NO_AUTH.
    @Module({ imports: [zk({ acl: [{ scheme: 'world', id: 'anyone', perms: 'cr' }] })], providers: [Failing] })
    class FailingModule {}
    const app = await NestFactory.createApplicationContext(FailingModule, { logger });
    apps.push(app);
    await app.get(ZkConnectionService).ensurePath('/noauth-nest/a');
    await expect(app.get(Failing).fails()).rejects.toThrow('the method failed');
    expect(warnings.some((line) => line.includes('Failing#fails') && line.includes('NO_AUTH'))).toBe(true);
  });
});
