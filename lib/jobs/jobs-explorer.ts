import { Injectable, Logger, type OnApplicationBootstrap, type OnModuleInit } from '@nestjs/common';
import { DiscoveryService, MetadataScanner } from '@nestjs/core';
import type { InstanceWrapper } from '@nestjs/core/injector/instance-wrapper.js';
import { ZkConnectionService } from '../connection/zk-connection.service.js';
import { InvalidOptionsError } from '../errors/invalid-options.error.js';
import type { LockHandle } from '../lock/lock-handle.js';
import type { LeadershipEndReason } from '../lock/lock-events.js';
import { JOB_METADATA, type JobSpec } from './job.decorators.js';
import { JobRunner, registerJobInstance } from './job-runner.js';
import { defaultJobPath, jobsPathOf } from './jobs-path.js';
import { LEADER_ELECTION_METADATA, type LeaderElectionSpec } from './leader-election.decorator.js';
import { LeadershipService } from './leadership.service.js';

/**
 * The explorer of `@OnOneInstance`, `@WithoutOverlapping` and `@LeaderElection`: at module init,
 * tells every object with job methods which application's JobRunner to use and registers the
 * elections (two on one path fail the start-up, naming both); at application bootstrap, joins
 * them. (The job methods are already wrapped at decoration time: nothing is replaced here.)
 */
@Injectable()
export class JobsExplorer implements OnModuleInit, OnApplicationBootstrap {
  private readonly logger = new Logger('ZkJobs');
  /** Explicit `@WithoutOverlapping` paths, with a job that uses each (they must not be election paths). */
  private readonly lockPaths = new Map<string, string>();

  constructor(
    private readonly discovery: DiscoveryService,
    private readonly scanner: MetadataScanner,
    private readonly runner: JobRunner,
    private readonly leadership: LeadershipService,
    private readonly connection: ZkConnectionService,
  ) {}

  onModuleInit(): void {
    const wrappers: InstanceWrapper[] = [...this.discovery.getProviders(), ...this.discovery.getControllers()];
    for (const wrapper of wrappers) {
      const instance: unknown = wrapper.instance;
      if (!instance || typeof instance !== 'object') continue;
      const prototype = Object.getPrototypeOf(instance) as object | null;
      if (!prototype) continue;
      const election = Reflect.getMetadata(LEADER_ELECTION_METADATA, instance.constructor) as
        LeaderElectionSpec | undefined;
      const jobs = this.scanner
        .getAllMethodNames(prototype)
        .map(
          (name) =>
            Reflect.getMetadata(JOB_METADATA, (prototype as Record<string, object>)[name]) as JobSpec | undefined,
        )
        .filter((spec): spec is JobSpec => spec !== undefined);
      if (!election && jobs.length === 0) continue;
      if (!wrapper.isDependencyTreeStatic()) {
        this.logger.warn(
          `${String(wrapper.name)} is request-scoped or transient: its elections are not joined (make it a singleton); ` +
            `its job methods use the only running application's jobs`,
        );
        continue;
      }
      if (election) this.registerElection(instance, election);
      if (jobs.length > 0) {
        registerJobInstance(instance, this.runner);
        for (const spec of jobs) this.registerJob(spec);
      }
    }
    this.checkLockPaths();
  }

  /** Joins every election (jobs and @LeaderElection providers) once the application is up. */
  onApplicationBootstrap(): void {
    this.leadership.start();
  }

  private registerElection(instance: object, spec: LeaderElectionSpec): void {
    const className = instance.constructor.name;
    const path = spec.path ?? defaultJobPath(jobsPathOf(this.connection.options), className);
    const provider = instance as {
      onLeadershipAcquired?: (lock: LockHandle) => unknown;
      onLeadershipLost?: (lock: LockHandle, reason: LeadershipEndReason) => unknown;
    };
    if (typeof provider.onLeadershipAcquired !== 'function' && typeof provider.onLeadershipLost !== 'function') {
      throw new InvalidOptionsError(
        `@LeaderElection on ${className}`,
        path,
        'needs onLeadershipAcquired(lock) and/or onLeadershipLost(lock) (implement OnLeadershipAcquired, OnLeadershipLost)',
      );
    }
    this.leadership.register(path, className, {
      acquired: provider.onLeadershipAcquired ? (lock) => provider.onLeadershipAcquired!(lock) : undefined,
      lost: provider.onLeadershipLost ? (lock, reason) => provider.onLeadershipLost!(lock, reason) : undefined,
    });
  }

  private registerJob(spec: JobSpec): void {
    const paths = this.runner.pathsOf(spec);
    if (paths.election !== undefined) this.leadership.register(paths.election, spec.method, {}, spec.method);
    if (paths.overlap !== undefined && !this.lockPaths.has(paths.overlap))
      this.lockPaths.set(paths.overlap, spec.method);
  }

  /** A job's lock on an election's path would queue behind the election's nodes forever. */
  private checkLockPaths(): void {
    for (const [path, method] of this.lockPaths) {
      const owner = this.leadership.ownerOf(path);
      if (owner === undefined) continue;
      throw new InvalidOptionsError(
        `@WithoutOverlapping path of ${method}`,
        path,
        `is the election path of ${owner}: a lock there would wait behind the election's nodes; give it its own path`,
      );
    }
  }
}
