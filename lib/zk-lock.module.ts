import { Module, type FactoryProvider } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import { ZkConnectionService } from './connection/zk-connection.service.js';
import { DistributedLockExplorer } from './declarative/lock-explorer.js';
import { InvalidOptionsError } from './errors/invalid-options.error.js';
import { LockRunner } from './declarative/lock-runner.js';
import { JOBS_PROVIDERS } from './jobs/zk-jobs.module.js';
import { LeadershipService } from './jobs/leadership.service.js';
import { LockService } from './lock/lock.service.js';
import { ZK_LOCK_RESOLVED_OPTIONS } from './zk-lock.constants.js';
import { ConfigurableModuleClass, MODULE_OPTIONS_TOKEN } from './zk-lock.module-definition.js';
import { resolveOptions, type ResolvedZkLockOptions, type ZkLockOptions } from './zk-lock.options.js';

/**
 * The options after defaults and validation, resolved once (a bad option fails the start-up here).
 * The bare class imported without forRoot has none: said so, instead of Nest's unresolved token.
 */
const resolvedOptions: FactoryProvider<ResolvedZkLockOptions> = {
  provide: ZK_LOCK_RESOLVED_OPTIONS,
  inject: [{ token: MODULE_OPTIONS_TOKEN, optional: true }],
  useFactory: (options: ZkLockOptions | undefined) => {
    if (options === undefined) {
      throw new InvalidOptionsError(
        'ZkLockModule',
        undefined,
        'import ZkLockModule.forRoot({ connectionString }) (or forRootAsync()), not the bare ZkLockModule class',
      );
    }
    return resolveOptions(options);
  },
};

/**
 * Provides one ZooKeeper session ({@link ZkConnectionService}), {@link LockService}, and what
 * `@DistributedLock` needs. Global by default (`isGlobal: false` to change that).
 *
 * @example
 * ZkLockModule.forRoot({ connectionString: 'zk1:2181,zk2:2181,zk3:2181' })
 * ZkLockModule.forRootAsync({ inject: [ConfigService], useFactory: (c: ConfigService) => ({ connectionString: c.getOrThrow('ZK_CONNECT') }) })
 */
@Module({
  imports: [DiscoveryModule],
  providers: [
    resolvedOptions,
    ZkConnectionService,
    LockService,
    LockRunner,
    DistributedLockExplorer,
    ...JOBS_PROVIDERS,
  ],
  exports: [ZK_LOCK_RESOLVED_OPTIONS, ZkConnectionService, LockService, LockRunner, LeadershipService],
})
export class ZkLockModule extends ConfigurableModuleClass {}
