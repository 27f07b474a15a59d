/**
 * @DistributedLock on HTTP routes in every connection state (issue 11, item 8), in a real Nest
 * app whose ZooKeeper connection goes through a loopback proxy: a busy lock answers 409 (or what
 * `onTimeout` makes of it), an outage 503 (never `onTimeout`), within the route's timeout, or at
 * once for `timeout: 0`; a closed connection 503 at once.
 */
import 'reflect-metadata';
import { performance } from 'node:perf_hooks';
import { Controller, Get, ImATeapotException, Module, type INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DistributedLock, ZkConnectionService, ZkLockModule } from '../../lib/index.js';
import { closeLockClients, lockClient } from '../fixtures/lock-clients.js';
import { startZooKeeper, TcpProxy, waitFor, type ZkServer } from '../support/index.js';

const T = 300;
/** Slack over a documented bound, for a loaded machine. */
const TOLERANCE = 700;
const AT_ONCE = 300; // one HTTP round trip on loopback, no ZooKeeper request

@Controller()
class RoutesController {
  @Get('wait')
  @DistributedLock('/safety/route/wait', { timeout: T })
  async wait(): Promise<string> {
    return 'ok';
  }

  @Get('teapot')
  @DistributedLock('/safety/route/teapot', {
    timeout: T,
    onTimeout: (error) => new ImATeapotException(`busy: ${error.path}`),
  })
  async teapot(): Promise<string> {
    return 'ok';
  }

  @Get('now')
  @DistributedLock('/safety/route/now', { timeout: 0 })
  async now(): Promise<string> {
    return 'ok';
  }
}

const ROUTES = [
  { route: 'wait', waits: true },
  { route: 'teapot', waits: true },
  { route: 'now', waits: false },
];

let server: ZkServer;
const apps: INestApplication[] = [];
const proxies: TcpProxy[] = [];

beforeAll(async () => {
  server = await startZooKeeper();
});
afterEach(async () => {
  await Promise.all(apps.splice(0).map((app) => app.close()));
  await Promise.all(proxies.splice(0).map((proxy) => proxy.close()));
  await closeLockClients();
});
afterAll(async () => {
  await server?.dispose();
});

async function startApp(
  sessionTimeout: number,
): Promise<{ url: string; proxy: TcpProxy; connection: ZkConnectionService }> {
  const proxy = await TcpProxy.start({ host: server.host, port: server.port });
  proxies.push(proxy);
  @Module({
    imports: [
      ZkLockModule.forRoot({ connectionString: proxy.connectString, sessionTimeout, operationTimeout: 10_000 }),
    ],
    controllers: [RoutesController],
  })
  class RoutesModule {}
  const moduleRef = await Test.createTestingModule({ imports: [RoutesModule] }).compile();
  const app = moduleRef.createNestApplication({ logger: false });
  apps.push(app);
  await app.listen(0, '127.0.0.1');
  return { url: await app.getUrl(), proxy, connection: app.get(ZkConnectionService) };
}

/** Calls every route at once: `route -> { status, inTime }`. */
async function statuses(
  url: string,
  bound: (waits: boolean) => number,
): Promise<Record<string, { status: number; inTime: boolean }>> {
  const rows = await Promise.all(
    ROUTES.map(async ({ route, waits }) => {
      const started = performance.now();
      const response = await fetch(`${url}/${route}`);
      await response.text();
      return [route, { status: response.status, inTime: performance.now() - started <= bound(waits) }] as const;
    }),
  );
  return Object.fromEntries(rows);
}

function all(status: (route: string) => number): Record<string, { status: number; inTime: boolean }> {
  return Object.fromEntries(ROUTES.map(({ route }) => [route, { status: status(route), inTime: true }]));
}

describe('a locked route x connection state -> HTTP status and time bound', () => {
  it('connected, lock free: 200', async () => {
    const { url } = await startApp(4_000);
    expect(await statuses(url, () => T + TOLERANCE)).toEqual(all(() => 200));
  });

  it('connected, lock held elsewhere: 409 (onTimeout applied: 418) after the timeout, at once for timeout 0', async () => {
    const { url } = await startApp(4_000);
    const holder = await lockClient(server.connectString);
    const held = await Promise.all(ROUTES.map(({ route }) => holder.locks.acquire(`/safety/route/${route}`)));
    expect(await statuses(url, (waits) => (waits ? T + TOLERANCE : AT_ONCE))).toEqual(
      all((route) => (route === 'teapot' ? 418 : 409)),
    );
    await Promise.all(held.map((lock) => lock.release()));
  });

  it('suspended: 503 (never onTimeout) within the timeout, at once for timeout 0', async () => {
    const { url, proxy, connection } = await startApp(4_000);
    proxy.refuse();
    proxy.reset();
    await waitFor(() => connection.state === 'suspended', { message: 'suspended' });
    expect(await statuses(url, (waits) => (waits ? T + TOLERANCE : AT_ONCE))).toEqual(all(() => 503));
    expect(connection.state).toBe('suspended');
  });

  it('no session: 503 (never onTimeout) within the timeout, at once for timeout 0', async () => {
    const { url, proxy, connection } = await startApp(1_000);
    proxy.refuse();
    proxy.reset();
    await waitFor(() => connection.currentSession() === undefined, { message: 'the session is presumed expired' });
    expect(await statuses(url, (waits) => (waits ? T + TOLERANCE : AT_ONCE))).toEqual(all(() => 503));
  });

  it('blackholed, not noticed yet: 503 within the timeout', async () => {
    const { url, proxy } = await startApp(4_000);
    proxy.blackhole();
    const rows = await statuses(url, () => T + TOLERANCE);
    // timeout 0 does not wait, but without a session to tell it has only its request deadline
    // (operationTimeout): only the waiting routes are bound by their timeout here.
    expect({ wait: rows.wait, teapot: rows.teapot }).toEqual({
      wait: { status: 503, inTime: true },
      teapot: { status: 503, inTime: true },
    });
    expect(rows.now.status).toBe(503);
  });

  it('closed connection: 503 at once', async () => {
    const { url, connection } = await startApp(4_000);
    await connection.close();
    expect(await statuses(url, () => AT_ONCE)).toEqual(all(() => 503));
  });
});
