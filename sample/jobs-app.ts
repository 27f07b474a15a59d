/**
 * The sample's scheduled-jobs app (`npm run sample -- --jobs`), as a user would write it: a
 * `@Cron` job every second that runs on ONE instance and never overlaps, and a
 * `@LeaderElection` provider. Each instance (sample/jobs-instance.ts) tells sample/main.js what
 * happened through the {@link JobsReporter}.
 */
import 'reflect-metadata';
import { Injectable, Module, type DynamicModule, type OnModuleInit } from '@nestjs/common';
import { Cron, CronExpression, ScheduleModule, SchedulerRegistry } from '@nestjs/schedule';
import {
  LeaderElection,
  LeadershipService,
  LockService,
  OnOneInstance,
  WithoutOverlapping,
  ZkLockModule,
  type LeadershipEndReason,
  type LockHandle,
  type OnLeadershipAcquired,
  type OnLeadershipLost,
} from '../lib/index.js';
import { sendToParent, type JobsInstanceMessage } from './messages.js';

/** The job's election: every instance has one node under it; the first one runs the ticks. */
export const REPORT_JOB_PATH = '/sample/jobs/report';
/** The @LeaderElection provider's election. */
export const LEADER_PATH = '/sample/leader';
/** The cron job's name in SchedulerRegistry. */
export const REPORT_JOB = 'report';
/**
 * Short, so that the handover after a crash (at the session's expiry) shows within seconds. A
 * server gives at least 2 ticks (4 s with ZooKeeper's default tickTime of 2 s).
 */
export const SESSION_TIMEOUT_MS = 4_000;

/** Now, on the machine's monotonic clock (the same in every process), as a decimal string. */
export const hrtimeNow = (): string => process.hrtime.bigint().toString();

/** Sends what happened to sample/main.js; `flush()` waits for everything sent so far. */
@Injectable()
export class JobsReporter {
  private readonly pending = new Set<Promise<void>>();

  send(message: JobsInstanceMessage): void {
    const sent: Promise<void> = sendToParent(message)
      .catch(() => undefined) // the parent is gone: nobody to tell
      .finally(() => this.pending.delete(sent));
    this.pending.add(sent);
  }

  async flush(): Promise<void> {
    await Promise.all(this.pending);
  }
}

@Injectable()
export class ReportJob {
  constructor(
    private readonly locks: LockService,
    private readonly schedule: SchedulerRegistry,
    private readonly reporter: JobsReporter,
  ) {}

  /**
   * Every second, on the one instance that holds the job (the others skip: no error, no
   * ZooKeeper request), and never while a run of it is still going.
   */
  @Cron(CronExpression.EVERY_SECOND, { name: REPORT_JOB })
  @OnOneInstance(REPORT_JOB_PATH)
  @WithoutOverlapping()
  report(): void {
    const at = hrtimeNow();
    // This run's handle: its fencing token grows with every run and every new holder; its
    // signal would abort if the job were lost during the run.
    const lock = this.locks.current(REPORT_JOB_PATH);
    // The second this tick fired, from cron's own record (taken as it fired): the tick's identity.
    const fired = this.schedule.getCronJob(REPORT_JOB).lastDate();
    if (!lock || !fired) throw new Error('a run without its lock or its firing time');
    this.reporter.send({
      type: 'ran',
      second: Math.floor(fired.getTime() / 1000),
      token: lock.fencingToken.toString(),
      at,
    });
  }
}

@Injectable()
@LeaderElection(LEADER_PATH)
export class SampleLeader implements OnLeadershipAcquired, OnLeadershipLost {
  constructor(private readonly reporter: JobsReporter) {}

  onLeadershipAcquired(lock: LockHandle): void {
    const token = lock.fencingToken.toString();
    this.reporter.send({ type: 'leader-acquired', token, at: hrtimeNow() });
    // The end of this instance's belief that it leads: whatever it does as the leader stops here.
    lock.signal.addEventListener('abort', () => this.reporter.send({ type: 'leader-signal', token, at: hrtimeNow() }), {
      once: true,
    });
  }

  onLeadershipLost(lock: LockHandle, reason: LeadershipEndReason): void {
    this.reporter.send({ type: 'leader-lost', token: lock.fencingToken.toString(), at: hrtimeNow(), reason });
  }
}

/**
 * Tells the parent when this instance takes the job or lets it go (LeadershipService's changes of
 * its election; the stream completes at shutdown, after the last change).
 */
@Injectable()
export class JobHolderWatch implements OnModuleInit {
  constructor(
    private readonly leadership: LeadershipService,
    private readonly reporter: JobsReporter,
  ) {}

  onModuleInit(): void {
    this.leadership.changesOf(REPORT_JOB_PATH).subscribe((change) =>
      this.reporter.send({
        type: 'job-holder',
        holds: change.leader,
        token: change.fencingToken.toString(),
        at: hrtimeNow(),
        reason: change.reason,
      }),
    );
  }
}

@Module({})
export class JobsSampleModule {
  static forRoot(connectionString: string, instance: number): DynamicModule {
    return {
      module: JobsSampleModule,
      imports: [
        ZkLockModule.forRoot({ connectionString, sessionTimeout: SESSION_TIMEOUT_MS, appName: `instance-${instance}` }),
        ScheduleModule.forRoot(),
      ],
      providers: [JobsReporter, ReportJob, SampleLeader, JobHolderWatch],
    };
  }
}
