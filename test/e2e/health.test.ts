/**
 * ZkHealthIndicator (`nestjs-zk-lock/health`) in a real Nest HTTP app with TerminusModule, against a real
 * ZooKeeper: up with the live session, down while the server is unreachable (a partition through
 * the TCP proxy, or the server stopped), up again once it is back; never connects by itself.
 */
import 'reflect-metadata';
import { Controller, Get, Module, type INestApplication } from '@nestjs/common';
import { HealthCheck, HealthCheckService, TerminusModule } from '@nestjs/terminus';
import { Test } from '@nestjs/testing';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ZkHealthIndicator, type ZkHealthDetails } from '../../lib/health/index.js';
import { ZkConnectionService, ZkLockModule, type ZkLockOptions } from '../../lib/index.js';
import { startZooKeeper, TcpProxy, waitFor, type ZkServer } from '../support/index.js';

/**
 * Granted as asked (the test servers allow 400 ms to 4 s); the longest, so that the documented
 * 5/6 of it and the whole of it are far enough apart to tell.
 */
const SESSION_TIMEOUT = 4_000;
/** Timer and polling lag allowed on a loaded 2-core machine, above each documented bound. */
const TOLERANCE = 300;
/** "At once": well under any timeout-based detection (a third of T at the very least). */
const AT_ONCE = 500;
/** In the module options: the health details must never show it. */
const SECRET = 'health-check-s3cret';

let server: ZkServer;
const apps: INestApplication[] = [];
const proxies: TcpProxy[] = [];

beforeAll(async () => {
  server = await startZooKeeper();
});
afterEach(async () => {
  await Promise.all(apps.splice(0).map((app) => app.close()));
  await Promise.all(proxies.splice(0).map((proxy) => proxy.close()));
});
afterAll(async () => {
  await server?.dispose();
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

@Module({
  imports: [TerminusModule.forRoot({ logger: false })],
  controllers: [HealthController],
  providers: [ZkHealthIndicator],
})
class HealthModule {}

interface HealthBody {
  status: 'ok' | 'error';
  info?: Record<string, ZkHealthDetails & { status: string }>;
  error?: Record<string, ZkHealthDetails & { status: string }>;
  details: Record<string, ZkHealthDetails & { status: string }>;
}

async function startApp(options: Partial<ZkLockOptions> = {}): Promise<{
  app: INestApplication;
  connection: ZkConnectionService;
  proxy: TcpProxy;
  get: () => Promise<{ code: number; body: HealthBody; text: string }>;
}> {
  const proxy = await TcpProxy.start({ host: server.host, port: server.port });
  proxies.push(proxy);
  const moduleRef = await Test.createTestingModule({
    imports: [
      ZkLockModule.forRoot({
        connectionString: proxy.connectString,
        sessionTimeout: SESSION_TIMEOUT,
        auth: [{ scheme: 'digest', credentials: `health:${SECRET}` }],
        ...options,
      }),
      HealthModule,
    ],
  }).compile();
  const app = moduleRef.createNestApplication({ logger: false });
  apps.push(app);
  await app.listen(0, '127.0.0.1');
  const url = `${await app.getUrl()}/health`;
  const get = async () => {
    const response = await fetch(url);
    const text = await response.text();
    return { code: response.status, body: JSON.parse(text) as HealthBody, text };
  };
  return { app, connection: app.get(ZkConnectionService), proxy, get };
}

/** The connection's current session as the health details write it, read from the client's own session id bytes. */
function sessionHex(connection: ZkConnectionService): string | undefined {
  return connection.sessionCredentials()?.id.toString('hex');
}

describe('ZkHealthIndicator', () => {
  it.each([
    ['a partition (bytes dropped, sockets left open): within 5/6 of the session timeout', 'partition'],
    ['the server stopped: at once', 'stop'],
    ['a refused connection (severed, reconnects refused): at once', 'refuse'],
  ] as const)('up with the live session, down after %s, up again after', async (_, outage) => {
    const { connection, proxy, get } = await startApp();

    const up = await get();
    expect(up.code).toBe(200);
    expect(up.body.status).toBe('ok');
    const session = sessionHex(connection);
    expect(session).toMatch(/^[0-9a-f]{16}$/);
    expect(up.body.info?.['zookeeper']).toEqual({
      status: 'up',
      state: 'connected',
      sessionId: session,
      sessionTimeout: SESSION_TIMEOUT,
      server: proxy.connectString,
    });
    expect(up.text).not.toContain(SECRET);

    let cutAt = performance.now();
    if (outage === 'partition') proxy.blackhole();
    else if (outage === 'refuse') {
      proxy.refuse();
      proxy.reset();
    } else {
      await server.stop();
      cutAt = performance.now(); // (the connection closed while the server stopped)
    }
    const down = await waitFor(
      async () => {
        const result = await get();
        return result.code === 503 ? { ...result, at: performance.now() } : undefined;
      },
      { timeout: 2 * SESSION_TIMEOUT, interval: 20, message: '/health reports 503' },
    );
    // The documented bounds: a partitioned server within about 5/6 of the session timeout (the
    // client drops a connection that heard nothing for 2/3 of it, checked every 1/6), a refused or
    // closed connection at once.
    const bound = outage === 'partition' ? (SESSION_TIMEOUT * 5) / 6 + TOLERANCE : AT_ONCE;
    expect(down.at - cutAt).toBeLessThanOrEqual(bound);
    const zookeeper = down.body.error?.['zookeeper'];
    expect(down.body.status).toBe('error');
    expect(zookeeper?.status).toBe('down');
    expect(zookeeper?.state).toBe('suspended');
    expect(zookeeper?.reason).toMatch(/^suspended: /);
    // While suspended the session may survive: its id and timeout are still shown, no server.
    expect(zookeeper?.sessionId).toBe(session);
    expect(zookeeper?.sessionTimeout).toBe(SESSION_TIMEOUT);
    expect(zookeeper?.server).toBeUndefined();
    expect(down.body.details['zookeeper']).toEqual(zookeeper);
    expect(down.text).not.toContain(SECRET);

    if (outage === 'stop') await server.start();
    else proxy.restore();
    const again = await waitFor(
      async () => {
        const result = await get();
        return result.code === 200 ? result : undefined;
      },
      { timeout: 15_000, message: '/health reports 200 again' },
    );
    expect(again.body.info?.['zookeeper']).toMatchObject({
      status: 'up',
      state: 'connected',
      sessionId: sessionHex(connection),
      server: proxy.connectString,
    });
  });

  it('a check makes no ZooKeeper request: the client sends only its pings', async () => {
    // No auth: the client sends its addAuth request just after connecting, maybe after we start counting.
    const { proxy, get } = await startApp({ auth: [] });
    const sent: number[] = [];
    const stop = proxy.onData((direction, bytes) => {
      if (direction === 'up') sent.push(bytes);
    });
    for (let i = 0; i < 30; i += 1) expect((await get()).code).toBe(200);
    stop();
    // A ping is 12 bytes (length, xid -2, op 11); any request carries a path and is longer.
    expect(sent.filter((bytes) => bytes !== 12)).toEqual([]);
  });

  it('with lazyConnect: down and idle until first use, without connecting; down and closed after shutdown', async () => {
    const { app, connection, proxy, get } = await startApp({ lazyConnect: true });
    for (let i = 0; i < 3; i += 1) {
      const result = await get();
      expect(result.code).toBe(503);
      expect(result.body.error?.['zookeeper']).toEqual({
        status: 'down',
        state: 'idle',
        reason: 'lazy connect: not connected yet (connects on first use)',
      });
    }
    expect(proxy.connections).toBe(0);
    expect(connection.state).toBe('idle');

    await connection.connect();
    const up = await get();
    expect(up.code).toBe(200);
    expect(up.body.info?.['zookeeper']?.sessionId).toBe(sessionHex(connection));

    const indicator = app.get(ZkHealthIndicator);
    await app.close();
    apps.splice(apps.indexOf(app), 1);
    expect(indicator.isHealthy('zk')).toEqual({
      zk: {
        status: 'down',
        state: 'closed',
        reason: 'closed: the connection is closed for good (application shutdown, or authentication failed)',
      },
    });
  });
});
