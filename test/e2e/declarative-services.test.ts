/**
 * @DistributedLock on service methods and non-HTTP handlers, in real Nest apps on real ZooKeeper:
 * serialized across apps and callers, reentrant within a call chain, typed errors, shutdown.
 */
import { ConfigModule, ConfigService } from '@nestjs/config';
import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ClientProxyFactory, Transport, type ClientProxy } from '@nestjs/microservices';
import { Test } from '@nestjs/testing';
import { firstValueFrom, lastValueFrom, toArray } from 'rxjs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  InvalidLockPathError,
  LockTimeoutError,
  NotConnectedError,
  ZkConnectionService,
  ZkLockModule,
} from '../../lib/index.js';
import {
  LedgerService,
  LockedController,
  lockedAppModule,
  Recorder,
  type INestApplication,
} from '../fixtures/locked-app.js';
import { childrenOf, noOverlap } from '../fixtures/lock-clients.js';
import { startZooKeeper, waitFor, watchCount, type ZkServer } from '../support/index.js';
import type { INestApplicationContext } from '@nestjs/common';
import { createServer } from 'node:net';

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

async function context(): Promise<INestApplicationContext> {
  const app = await NestFactory.createApplicationContext(lockedAppModule({ connectionString: server.connectString }), {
    logger: false,
  });
  apps.push(app);
  return app;
}

async function httpApp(): Promise<{ app: INestApplication; url: string }> {
  const moduleRef = await Test.createTestingModule({
    imports: [lockedAppModule({ connectionString: server.connectString })],
  }).compile();
  const app = moduleRef.createNestApplication({ logger: false });
  apps.push(app);
  await app.listen(0, '127.0.0.1');
  return { app, url: await app.getUrl() };
}

function children(path: string): Promise<string[]> {
  return childrenOf(server.connectString, path);
}

describe('a decorated service method', () => {
  it('is serialized across apps and callers: a controller, a cron-like loop and a script', async () => {
    const web = await httpApp();
    const worker = await context();
    const script = await context();
    const loop = (async () => {
      for (let i = 0; i < 10; i += 1) await worker.get(LedgerService).append('loop');
    })();
    const requests = Promise.all(
      Array.from({ length: 10 }, () => fetch(`${web.url}/ledger/http`, { method: 'POST' }).then((r) => r.status)),
    );
    const scripted = Promise.all(Array.from({ length: 10 }, () => script.get(LedgerService).append('script')));
    const [, statuses] = await Promise.all([loop, requests, scripted]);
    expect(statuses).toEqual(Array(10).fill(201));
    const intervals = [web.app, worker, script].flatMap((app) => app.get(Recorder).intervals);
    expect(intervals).toHaveLength(30);
    expect(new Set(intervals.map((i) => i.name))).toEqual(new Set(['http', 'loop', 'script']));
    expect(noOverlap(intervals)).toBe(true);
    expect(await children('/locks/ledger')).toEqual([]);
  });

  it('nested decorated calls on the same path in one call chain do not deadlock', async () => {
    const app = await context();
    await expect(app.get(LedgerService).outer()).resolves.toBe('same lock');
    expect(await children('/locks/nested')).toEqual([]);
  });

  it('separate call chains in one app serialize; different keys run side by side', async () => {
    const app = await context();
    const ledger = app.get(LedgerService);
    const paths = await Promise.all([
      ledger.perAccount('x', 30),
      ledger.perAccount('x', 30),
      ledger.perAccount('y', 30),
      ledger.perAccount('../y', 30),
    ]);
    expect(paths).toEqual([
      '/locks/accounts/x',
      '/locks/accounts/x',
      '/locks/accounts/y',
      '/locks/accounts/%2E%2E%2Fy',
    ]);
    const recorder = app.get(Recorder);
    const of = (name: string) => recorder.intervals.filter((i) => i.name === name);
    expect(noOverlap(of('account:x'))).toBe(true);
    const [x] = of('account:x');
    const [y] = of('account:y');
    expect(x.enter < y.exit && y.enter < x.exit).toBe(true);
  });

  it('times out with LockTimeoutError and leaves nothing on the server', async () => {
    const [a, b] = await Promise.all([context(), context()]);
    const slow = a.get(LedgerService).busy(1_000);
    await waitFor(async () => (await children('/locks/ledger-busy')).length === 1);
    const error = await b
      .get(LedgerService)
      .busy(0)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LockTimeoutError);
    expect((error as LockTimeoutError).path).toBe('/locks/ledger-busy');
    expect(await children('/locks/ledger-busy')).toHaveLength(1);
    expect(await watchCount(server)).toBe(0);
    await slow;
  });

  it('a path computed from the arguments is used when valid and refused with InvalidLockPathError when not', async () => {
    const app = await context();
    await expect(app.get(LedgerService).computed('monthly')).resolves.toBe('/locks/computed/monthly');
    await expect(app.get(LedgerService).computed('../x')).rejects.toBeInstanceOf(InvalidLockPathError);
    expect(await children('/locks')).not.toContain('x');
  });

  it('returning an Observable: locked while subscribed, released after completion', async () => {
    const app = await context();
    const values = await lastValueFrom(app.get(LedgerService).ticks(3).pipe(toArray()));
    expect(values).toEqual([0, 1, 2]);
    expect(await children('/locks/ledger-observable')).toEqual([]);
  });
});

describe('route handlers', () => {
  it('are not locked twice by the interceptor and the method wrapper', async () => {
    const { url } = await httpApp();
    // reentrant: false would deadlock against itself if the handler were locked twice.
    const response = await fetch(`${url}/strict`);
    expect(response.status).toBe(200);
    expect(await children('/locks/strict')).toEqual([]);
  });
});

describe('a microservice handler (non-HTTP context)', () => {
  it('is serialized by the interceptor', async () => {
    const port = await new Promise<number>((resolve) => {
      const probe = createServer().listen(0, '127.0.0.1', () => {
        const { port: free } = probe.address() as { port: number };
        probe.close(() => resolve(free));
      });
    });
    const moduleRef = await Test.createTestingModule({
      imports: [lockedAppModule({ connectionString: server.connectString })],
    }).compile();
    const app = moduleRef.createNestApplication({ logger: false });
    app.connectMicroservice({ transport: Transport.TCP, options: { host: '127.0.0.1', port } });
    apps.push(app);
    await app.startAllMicroservices();
    await app.init();
    const client: ClientProxy = ClientProxyFactory.create({
      transport: Transport.TCP,
      options: { host: '127.0.0.1', port },
    });
    try {
      const replies = await Promise.all(
        Array.from({ length: 5 }, () => firstValueFrom(client.send<string>('work', 20))),
      );
      expect(replies).toEqual(Array(5).fill('ok'));
    } finally {
      await client.close();
    }
    const intervals = app.get(Recorder).intervals.filter((i) => i.name === 'rpc');
    expect(intervals).toHaveLength(5);
    expect(noOverlap(intervals)).toBe(true);
    expect(app.get(LockedController)).toBeDefined();
  });
});

describe('forRootAsync with @nestjs/config', () => {
  it('reads the connection string from ConfigService', async () => {
    @Module({
      imports: [
        ZkLockModule.forRootAsync({
          imports: [
            ConfigModule.forRoot({ ignoreEnvFile: true, load: [() => ({ ZK_CONNECT: server.connectString })] }),
          ],
          inject: [ConfigService],
          useFactory: (config: ConfigService) => ({ connectionString: config.getOrThrow<string>('ZK_CONNECT') }),
        }),
      ],
    })
    class ConfiguredModule {}
    const app = await NestFactory.createApplicationContext(ConfiguredModule, { logger: false });
    apps.push(app);
    expect(app.get(ZkConnectionService).state).toBe('connected');
  });
});

describe('shutdown', () => {
  it('lets a running locked call finish, refuses new ones, and closes the session', async () => {
    const { app, url } = await httpApp();
    app.enableShutdownHooks();
    const running = fetch(`${url}/section/300`);
    await waitFor(async () => (await children('/locks/http')).length === 1, { message: 'the call holds the lock' });
    const closing = app.close();
    // New locks are refused at once while the running call finishes.
    const late = await waitFor(() =>
      app
        .get(LedgerService)
        .append('late')
        .then(
          () => undefined,
          (error: unknown) => error,
        ),
    );
    expect(late).toBeInstanceOf(NotConnectedError);
    expect((late as Error).message).toContain('shutting down');
    // The running call still holds its lock while it finishes: its node is there, its signal quiet.
    expect(await children('/locks/http')).toHaveLength(1);
    const response = await running;
    expect(response.status).toBe(200);
    expect(((await response.json()) as { lost: boolean }).lost).toBe(false);
    await closing;
    apps.splice(apps.indexOf(app), 1);
    expect(await children('/locks/http')).toEqual([]);
  });
});
