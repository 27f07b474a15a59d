import { Module } from '@nestjs/common';
import { ZkConnectionService } from './connection/zk-connection.service.js';
import { LockService } from './lock/lock.service.js';
import { ConfigurableModuleClass } from './zk-lock.module-definition.js';

/**
 * Provides one ZooKeeper session ({@link ZkConnectionService}) and {@link LockService}.
 *
 * @example
 * ZkLockModule.forRoot({ connectionString: 'zk1:2181,zk2:2181,zk3:2181' })
 * ZkLockModule.forRootAsync({ inject: [ConfigService], useFactory: (c: ConfigService) => ({ connectionString: c.getOrThrow('ZK_CONNECT') }) })
 */
@Module({
  providers: [ZkConnectionService, LockService],
  exports: [ZkConnectionService, LockService],
})
export class ZkLockModule extends ConfigurableModuleClass {}
