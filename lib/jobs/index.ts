// Scheduled jobs and leader elections: what lib/index.ts re-exports.
export { OnOneInstance, WithoutOverlapping, type OnOneInstanceOptions } from './job.decorators.js';
export { LeaderElection, type OnLeadershipAcquired, type OnLeadershipLost } from './leader-election.decorator.js';
export { LeadershipService, type LeadershipChange, type ElectionHooks } from './leadership.service.js';
export { JOB_CHANNELS } from './job-events.js';
export { DEFAULT_JOBS_PATH } from './jobs-path.js';
export { JOBS_PROVIDERS } from './zk-jobs.module.js';
