/**
 * The leader workload's Nest applications: one with a `@LeaderElection` provider (the
 * handovers), one with an `@OnOneInstance` cron job (the skipped ticks). Each instance gets its
 * own record of what happened, on this process's monotonic clock (performance.now()).
 */
import 'reflect-metadata';
import { performance } from 'node:perf_hooks';
import { Injectable, Module } from '@nestjs/common';
import { Cron, ScheduleModule } from '@nestjs/schedule';
import {
  LeaderElection,
  OnOneInstance,
  ZkLockModule,
  type LockHandle,
  type OnLeadershipAcquired,
} from '../lib/index.js';

export const LEADER_PATH = '/bench/leader/election';
export const JOB_PATH = '/bench/leader/job';
/** The cron job's name in SchedulerRegistry; it never fires by itself (disabled): the workload fires its ticks. */
export const JOB_NAME = 'benchTick';
/** January 1st, 00:00:00, and disabled anyway. */
const NEVER = '0 0 0 1 1 *';

/** What one instance saw (performance.now()). */
export class LeaderRecord {
  /** When onLeadershipAcquired was called, per term. */
  readonly acquired: number[] = [];
  /** When the leader's signal aborted (its belief ended), per term. */
  readonly ended: number[] = [];
  /** Runs of the job on this instance. */
  runs = 0;

  get leads(): boolean {
    return this.acquired.length > this.ended.length;
  }
}

@Injectable()
@LeaderElection(LEADER_PATH)
export class BenchLeader implements OnLeadershipAcquired {
  constructor(private readonly record: LeaderRecord) {}

  onLeadershipAcquired(lock: LockHandle): void {
    this.record.acquired.push(performance.now());
    lock.signal.addEventListener('abort', () => this.record.ended.push(performance.now()), { once: true });
  }
}

@Injectable()
export class BenchJob {
  constructor(private readonly record: LeaderRecord) {}

  @Cron(NEVER, { name: JOB_NAME, disabled: true, waitForCompletion: true })
  @OnOneInstance(JOB_PATH)
  run(): void {
    this.record.runs += 1;
  }
}

/** An instance of the app with the @LeaderElection provider (`kind: 'leader'`) or the @OnOneInstance job. */
export function leaderBenchModule(
  kind: 'leader' | 'job',
  connectionString: string,
  sessionTimeout: number,
  record: LeaderRecord,
): new () => object {
  @Module({
    imports: [ZkLockModule.forRoot({ connectionString, sessionTimeout }), ScheduleModule.forRoot()],
    providers: [{ provide: LeaderRecord, useValue: record }, kind === 'leader' ? BenchLeader : BenchJob],
  })
  class LeaderBenchModule {}
  return LeaderBenchModule;
}
