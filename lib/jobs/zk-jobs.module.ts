import type { Provider } from '@nestjs/common';
import { JobRunner } from './job-runner.js';
import { JobsExplorer } from './jobs-explorer.js';
import { LeadershipService } from './leadership.service.js';

/** What scheduled jobs and elections need, per application: ZkLockModule provides them. */
export const JOBS_PROVIDERS: Provider[] = [LeadershipService, JobRunner, JobsExplorer];
