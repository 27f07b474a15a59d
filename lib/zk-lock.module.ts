import { Module } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import { ZkConnectionService } from './connection/zk-connection.service.js';
import { LockRegistrar } from './declarative/lock-registrar.js';
import { LockRunner } from './declarative/lock-runner.js';
import { LockService } from './lock/lock.service.js';
import { ConfigurableModuleClass } from './zk-lock.module-definition.js';

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
  providers: [ZkConnectionService, LockService, LockRunner, LockRegistrar],
  exports: [ZkConnectionService, LockService, LockRunner],
})
export class ZkLockModule extends ConfigurableModuleClass {}
