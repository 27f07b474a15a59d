/** ZkLockModule in real Nest application contexts against a real ZooKeeper server. */
import 'reflect-metadata';
import { Injectable, Module } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  LockService,
  ZK_LOCK_OPTIONS,
  ZkConnectError,
  ZkConnectionService,
  ZkLockModule,
  type ZkLockOptions,
  type ZkLockOptionsFactory,
} from '../../lib/index.js';
import { childrenOf } from '../fixtures/lock-clients.js';
import { startZooKeeper, TcpProxy, type ZkServer } from '../support/index.js';

let server: ZkServer;

beforeAll(async () => {
  server = await startZooKeeper();
});
afterAll(async () => {
  await server?.dispose();
});

/**
 * The lock below is held across app.close(), which waits shutdownTimeout (default 10 s) for it
 * first: kept short, so that a loaded machine has no 10 s in which to lose the session (the
 * holder would then be told `connection-lost`, not `closed`).
 */
const SHUTDOWN_MS = 200;

@Injectable()
class ReportService {
  constructor(readonly locks: LockService) {}
}

@Injectable()
class ZkConfig {
  readonly connectionString = server.connectString;
}

@Module({ providers: [ZkConfig], exports: [ZkConfig] })
class ConfigModule {}

@Injectable()
class OptionsFactory implements ZkLockOptionsFactory {
  createZkLockOptions(): ZkLockOptions {
    return { connectionString: server.connectString, appName: 'from-class', shutdownTimeout: SHUTDOWN_MS };
  }
}

@Module({ providers: [OptionsFactory], exports: [OptionsFactory] })
class FactoryModule {}

describe('ZkLockModule', () => {
  it.each([
    ['forRoot', () => ZkLockModule.forRoot({ connectionString: server.connectString, shutdownTimeout: SHUTDOWN_MS })],
    [
      'forRootAsync with useFactory and inject',
      () =>
        ZkLockModule.forRootAsync({
          imports: [ConfigModule],
          inject: [ZkConfig],
          useFactory: (config: ZkConfig) => ({
            connectionString: config.connectionString,
            shutdownTimeout: SHUTDOWN_MS,
          }),
        }),
    ],
    ['forRootAsync with useClass', () => ZkLockModule.forRootAsync({ useClass: OptionsFactory })],
    [
      'forRootAsync with useExisting',
      () => ZkLockModule.forRootAsync({ imports: [FactoryModule], useExisting: OptionsFactory }),
    ],
  ])('%s: connects at init, injects LockService by type, closes the session at shutdown', async (_, register) => {
    const moduleRef = await Test.createTestingModule({ imports: [register()], providers: [ReportService] }).compile();
    const app = moduleRef.createNestApplication({ logger: false });
    await app.init();
    const connection = app.get(ZkConnectionService);
    expect(connection.state).toBe('connected');
    const { locks } = app.get(ReportService);
    expect(locks).toBeInstanceOf(LockService);
    expect(app.get<ZkLockOptions>(ZK_LOCK_OPTIONS).connectionString).toBe(server.connectString);

    const held = await locks.acquire('/locks/module');
    await app.close(); // closes the session: the server deletes our node at once
    expect(connection.state).toBe('closed');
    expect((held.signal.reason as { reason?: string } | undefined)?.reason).toBe('closed');

    // (seen from another session; [] also once the server has reclaimed the emptied directory)
    expect(await childrenOf(server.connectString, '/locks/module')).toEqual([]);
  });

  it('is global: a feature module injects LockService without importing ZkLockModule', async () => {
    @Module({ providers: [ReportService], exports: [ReportService] })
    class FeatureModule {}
    const moduleRef = await Test.createTestingModule({
      imports: [ZkLockModule.forRoot({ connectionString: server.connectString, lazyConnect: true }), FeatureModule],
    }).compile();
    expect(moduleRef.get(ReportService).locks).toBeInstanceOf(LockService);
    await moduleRef.close();
  });

  it('fails to start within the connect timeout, naming the servers, when nothing listens', async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [ZkLockModule.forRoot({ connectionString: '127.0.0.1:1', connectTimeout: 500 })],
    }).compile();
    const app = moduleRef.createNestApplication({ logger: false });
    const started = Date.now();
    const error = await app.init().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ZkConnectError);
    expect((error as Error).message).toContain('127.0.0.1:1');
    expect(Date.now() - started).toBeLessThan(3_000);
    await app.close();
  });

  it('rejects bad options at start-up with a message naming the option', async () => {
    const moduleRef = Test.createTestingModule({
      imports: [ZkLockModule.forRoot({ connectionString: 'zk1:2181', sessionTimeout: -5 })],
    });
    await expect(moduleRef.compile()).rejects.toThrow('Invalid option sessionTimeout = -5');
  });
});

describe('lazyConnect', () => {
  it('connects on first use; a failed first use says why and the next use tries again', async () => {
    const proxy = await TcpProxy.start({ host: server.host, port: server.port });
    proxy.refuse();
    const connection = new ZkConnectionService({
      connectionString: proxy.connectString,
      lazyConnect: true,
      connectTimeout: 500,
    });
    await connection.onModuleInit();
    expect(connection.state).toBe('idle');
    const locks = new LockService(connection);
    await expect(locks.acquire('/locks/lazy', { timeout: 5_000 })).rejects.toBeInstanceOf(ZkConnectError);
    expect(connection.state).toBe('idle');
    proxy.restore();
    const handle = await locks.acquire('/locks/lazy', { timeout: 5_000 });
    expect(connection.state).toBe('connected');
    await handle.release();
    await connection.close();
    await proxy.close();
  });
});
