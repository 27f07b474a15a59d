import { Module, type Provider } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import { JobRunner } from './job-runner.js';
import { JobsExplorer } from './jobs-explorer.js';
import { LeadershipService } from './leadership.service.js';

/**
 * What scheduled jobs and elections need, per application (ZkLockModule provides them; until
 * then, import {@link ZkJobsModule} next to `ZkLockModule.forRoot(...)`). Needs LockService and
 * ZkConnectionService (ZkLockModule is global by default).
 */
export const JOBS_PROVIDERS: Provider[] = [LeadershipService, JobRunner, JobsExplorer];

/** Scheduled jobs and elections as a module of their own (until ZkLockModule provides them). */
@Module({
  imports: [DiscoveryModule],
  providers: JOBS_PROVIDERS,
  exports: [LeadershipService],
})
export class ZkJobsModule {}
