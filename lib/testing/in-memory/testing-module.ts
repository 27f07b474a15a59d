/**
 * Nest wiring of the in-process stand-in: `ZkLockTestingModule.forRoot()` for a testing module
 * built around the services under test, and `useInMemoryZooKeeper(builder)` for a whole
 * application module that imports `ZkLockModule.forRoot(...)` / `forRootAsync(...)`.
 */
import { Module, type DynamicModule, type Provider } from '@nestjs/common';
import { ZkConnectionService } from '../../connection/zk-connection.service.js';
import { ZK_LOCK_RESOLVED_OPTIONS } from '../../zk-lock.constants.js';
import { ZkLockModule } from '../../zk-lock.module.js';
import type { ResolvedZkLockOptions, ZkLockOptions } from '../../zk-lock.options.js';
import { IN_MEMORY_CONNECTION_STRING, InMemoryZooKeeper } from './server.js';

export interface ZkLockTestingOptions extends Partial<ZkLockOptions> {
  /**
   * The stand-in to connect to. Default: a new one for this module. Give two applications the
   * same one to make them contend for the same locks.
   */
  zooKeeper?: InMemoryZooKeeper;
  /** As ZkLockModule's: false makes the module non-global. @default true */
  isGlobal?: boolean;
}

/**
 * `ZkLockModule` over an {@link InMemoryZooKeeper}: `LockService`, `@DistributedLock`, the health
 * indicator and the job decorators work as with a real server, without Java or a network.
 * `InMemoryZooKeeper` is provided too (to expire a session, cut the connection, list nodes).
 *
 * @example
 * const moduleRef = await Test.createTestingModule({
 *   imports: [ZkLockTestingModule.forRoot()],
 *   providers: [ReportService],
 * }).compile();
 * await moduleRef.init();
 * const zk = moduleRef.get(InMemoryZooKeeper);
 */
@Module({})
export class ZkLockTestingModule {
  static forRoot(options: ZkLockTestingOptions = {}): DynamicModule {
    const { zooKeeper = new InMemoryZooKeeper(), ...lockOptions } = options;
    const base = ZkLockModule.forRoot({ connectionString: IN_MEMORY_CONNECTION_STRING, ...lockOptions });
    // A provider of the dynamic part replaces the static one of the same token: ZkLockModule's
    // own providers (LockService, the runner, the explorers) stay and get this connection.
    return {
      ...base,
      providers: [
        ...(base.providers ?? []),
        { provide: InMemoryZooKeeper, useValue: zooKeeper },
        inMemoryConnectionProvider(zooKeeper),
      ],
      exports: [...(base.exports ?? []), InMemoryZooKeeper],
    };
  }
}

/** The provider of `ZkConnectionService` that connects to `zooKeeper` with the module's options. */
export function inMemoryConnectionProvider(zooKeeper: InMemoryZooKeeper): Provider {
  return {
    provide: ZkConnectionService,
    inject: [ZK_LOCK_RESOLVED_OPTIONS],
    useFactory: (options: ResolvedZkLockOptions) => zooKeeper.connection(options),
  };
}

/** The part of Nest's `TestingModuleBuilder` this needs (so that the library does not import @nestjs/testing). */
export interface ProviderOverridable<B> {
  overrideProvider(token: unknown): {
    useFactory(options: { factory: (...args: never[]) => unknown; inject?: unknown[] }): B;
  };
}

/**
 * Swaps the ZooKeeper connection of an application that imports `ZkLockModule.forRoot(...)` (or
 * `forRootAsync`) for one to `zooKeeper`, in a `Test.createTestingModule(...)` builder. The
 * module's options still apply (timeouts, `lazyConnect`...); its `connectionString` is not used.
 *
 * @example
 * const zk = new InMemoryZooKeeper();
 * const moduleRef = await useInMemoryZooKeeper(Test.createTestingModule({ imports: [AppModule] }), zk).compile();
 */
export function useInMemoryZooKeeper<B extends ProviderOverridable<B>>(
  builder: B,
  zooKeeper: InMemoryZooKeeper = new InMemoryZooKeeper(),
): B {
  return builder.overrideProvider(ZkConnectionService).useFactory({
    inject: [ZK_LOCK_RESOLVED_OPTIONS],
    factory: (options: ResolvedZkLockOptions) => {
      // The application's servers (and chroot) are not used: the stand-in is the server.
      const { servers: _servers, chroot: _chroot, connectionString: _connectionString, ...rest } = options;
      return zooKeeper.connection({ ...rest, connectionString: IN_MEMORY_CONNECTION_STRING });
    },
  });
}
