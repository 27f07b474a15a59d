import { ConfigurableModuleBuilder } from '@nestjs/common';
import type { ZkLockOptions } from './zk-lock.options.js';

/** The only ConfigurableModuleBuilder call: forRoot / forRootAsync, global by default. */
export const { ConfigurableModuleClass, MODULE_OPTIONS_TOKEN, OPTIONS_TYPE, ASYNC_OPTIONS_TYPE } =
  new ConfigurableModuleBuilder<ZkLockOptions>({ moduleName: 'ZkLock' })
    .setClassMethodName('forRoot')
    .setFactoryMethodName('createZkLockOptions')
    .setExtras({ isGlobal: true }, (definition, extras) => ({ ...definition, global: extras.isGlobal }))
    .build();
