import { Injectable, Logger, type OnModuleInit } from '@nestjs/common';
import { DiscoveryService, MetadataScanner } from '@nestjs/core';
import { DISTRIBUTED_LOCK_METADATA } from '../zk-lock.constants.js';
import { LockRunner, registerInstance } from './lock-runner.js';

/**
 * The explorer of @DistributedLock (as @nestjs/schedule and bull name theirs): at bootstrap,
 * tells every object with decorated methods (providers and controllers) which application's
 * LockRunner to use. The methods are already wrapped at decoration time; nothing is replaced
 * here, so the order of other explorers does not matter.
 */
@Injectable()
export class DistributedLockExplorer implements OnModuleInit {
  private readonly logger = new Logger(DistributedLockExplorer.name);

  constructor(
    private readonly discovery: DiscoveryService,
    private readonly scanner: MetadataScanner,
    private readonly runner: LockRunner,
  ) {}

  onModuleInit(): void {
    const wrappers = [...this.discovery.getProviders(), ...this.discovery.getControllers()];
    for (const wrapper of wrappers) {
      const instance: unknown = wrapper.instance;
      if (!instance || typeof instance !== 'object') continue;
      const prototype = Object.getPrototypeOf(instance) as object | null;
      if (!prototype) continue;
      const locked = this.scanner
        .getAllMethodNames(prototype)
        .filter((name) => Reflect.hasMetadata(DISTRIBUTED_LOCK_METADATA, (prototype as Record<string, object>)[name]));
      if (locked.length === 0) continue;
      // A transient provider's tree may be static, but each consumer gets its own instance, not this one.
      if (!wrapper.isDependencyTreeStatic() || wrapper.isTransient) {
        this.logger.warn(
          `${wrapper.name as string} is request-scoped or transient: its @DistributedLock methods use ` +
            `the only running application's locks (not available with several applications in one process)`,
        );
        continue;
      }
      registerInstance(instance, this.runner);
    }
  }
}
