import { Injectable, Logger, type OnModuleDestroy } from '@nestjs/common';
import { filter, Subject, type Observable } from 'rxjs';
import { ZkConnectionService } from '../connection/zk-connection.service.js';
import { InvalidOptionsError } from '../errors/invalid-options.error.js';
import type { LockHandle } from '../lock/lock-handle.js';
import { validateLockPath } from '../lock/lock-path.js';
import { LockService } from '../lock/lock.service.js';
import { Election, type ElectionContext, type ElectionHooks, type LeadershipChange } from './election.js';
import { JobEventPublisher } from './job-events.js';

export type { ElectionHooks, LeadershipChange } from './election.js';

/**
 * The elections of this application: the ones of `@OnOneInstance` jobs and `@LeaderElection`
 * providers (joined at application bootstrap, left at shutdown before the lock service releases
 * what is left), and any joined by hand with {@link join}. Whether this instance leads is known
 * locally, without a request.
 *
 * @example
 * if (leadership.isLeader('/zk-lock/jobs/Billing')) { ... }
 * leadership.changes.subscribe(({ path, leader }) => metrics.gauge('leader', leader ? 1 : 0, { path }));
 */
@Injectable()
export class LeadershipService implements OnModuleDestroy {
  private readonly logger = new Logger('ZkJobs');
  private readonly elections = new Map<string, Election>();
  /** Elections being left by hand ({@link leave}), until their node is gone. */
  private readonly leaving = new Map<string, Promise<void>>();
  private readonly subject = new Subject<LeadershipChange>();
  private readonly context: ElectionContext;
  private started = false;
  private stopped = false;

  /**
   * This instance's leadership changes, of every election: `{ path, leader, fencingToken, reason, at }`.
   * Hot (subscribe early); completes at application shutdown.
   */
  readonly changes: Observable<LeadershipChange> = this.subject.asObservable();

  constructor(locks: LockService, connection: ZkConnectionService) {
    this.context = {
      locks,
      events: new JobEventPublisher(locks),
      changes: this.subject,
      logger: this.logger,
      shutdownTimeout: connection.options.shutdownTimeout,
    };
  }

  /** Whether this instance leads the election at `path` right now (known locally: no request). */
  isLeader(path: string): boolean {
    return this.elections.get(validateLockPath(path))?.isLeader ?? false;
  }

  /** The leader's handle of the election at `path` while this instance leads it (its `signal`, `fencingToken`). */
  leaderLock(path: string): LockHandle | undefined {
    return this.elections.get(validateLockPath(path))?.leaderTerm()?.lock;
  }

  /** The changes of one election. */
  changesOf(path: string): Observable<LeadershipChange> {
    validateLockPath(path);
    return this.changes.pipe(filter((change) => change.path === path));
  }

  /**
   * Joins the election at `path` by hand (once per path and application): its node is created at
   * once (after bootstrap) or at bootstrap; `hooks.acquired` is called when this instance leads,
   * `hooks.lost` when that ends. Left at shutdown, or with {@link leave}.
   */
  join(path: string, hooks: ElectionHooks = {}): void {
    this.register(validateLockPath(path), `LeadershipService.join(${path})`, hooks);
  }

  /**
   * Leaves the election at `path` (its signal aborts, running work is waited for, then the node
   * goes). Resolves once the node is gone, also when called again while the first call goes on.
   */
  async leave(path: string): Promise<void> {
    const election = this.elections.get(validateLockPath(path));
    if (!election) return this.leaving.get(path);
    this.elections.delete(path);
    const left: Promise<void> = election.leave().finally(() => {
      if (this.leaving.get(path) === left) this.leaving.delete(path);
    });
    this.leaving.set(path, left);
    return left;
  }

  /**
   * Internal: the election at `path` for `owner`; a second owner of one path fails (start-up
   * error naming both). Joins at once when the application has bootstrapped.
   */
  register(path: string, owner: string, hooks: ElectionHooks = {}, job?: string): Election {
    const existing = this.elections.get(path);
    if (existing) {
      throw new InvalidOptionsError(
        `election path of ${owner}`,
        path,
        `is already the election of ${existing.owner}: two jobs or elections on one path would share one leader; give one of them its own path`,
      );
    }
    const election = new Election(path, owner, this.context, hooks, job);
    this.elections.set(path, election);
    if (this.started && !this.stopped) election.join();
    return election;
  }

  /** Internal: who registered the election at `path`, if any. */
  ownerOf(path: string): string | undefined {
    return this.elections.get(path)?.owner;
  }

  /** Internal: the election of a job (registered at bootstrap; joined now if a job shows up later). */
  electionOf(path: string, owner: string, job: string): Election {
    return this.elections.get(path) ?? this.register(path, owner, {}, job);
  }

  /** Internal (the explorer, at application bootstrap): joins every election registered so far. */
  start(): void {
    if (this.started || this.stopped) return;
    this.started = true;
    for (const election of this.elections.values()) election.join();
  }

  /**
   * Before the lock service's shutdown: leaves every election (each leader's signal aborts, its
   * running work and onLeadershipLost get up to `shutdownTimeout`, then its node goes and the next
   * instance takes over at once).
   */
  async onModuleDestroy(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    const all = [...this.elections.values()];
    this.elections.clear();
    await Promise.all([...all.map((election) => election.leave()), ...this.leaving.values()]);
    this.subject.complete();
  }
}
