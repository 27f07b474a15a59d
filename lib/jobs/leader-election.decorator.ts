import { SetMetadata } from '@nestjs/common';
import type { LeadershipEndReason } from '../lock/lock-events.js';
import type { LockHandle } from '../lock/lock-handle.js';
import { InvalidOptionsError } from '../errors/invalid-options.error.js';
import { validateLockPath } from '../lock/lock-path.js';

/** Metadata key of `@LeaderElection`, on the class. */
export const LEADER_ELECTION_METADATA = 'zk_lock:leader_election';

/** What `@LeaderElection(path)` stores. */
export interface LeaderElectionSpec {
  /** The election's path; none: `<jobsPath>/<ClassName>`. */
  path: string | undefined;
}

/** A `@LeaderElection` provider is told when this instance becomes the leader. */
export interface OnLeadershipAcquired {
  /**
   * This instance leads from now on. `lock.signal` aborts when the leadership ends; its
   * `fencingToken` is greater than every earlier leader's. Long work may run here (watch the
   * signal). A throw or rejection while still leading makes the instance step down: its
   * `onLeadershipLost` is called, its node goes, and it re-joins behind the others.
   * `lock.release()` steps down too.
   */
  onLeadershipAcquired(lock: LockHandle): unknown;
}

/** A `@LeaderElection` provider is told when its leadership ends. */
export interface OnLeadershipLost {
  /**
   * The leadership ended: lost (session expired, node deleted, release requested), at shutdown
   * (after the running work got the signal, before the node goes), or after a step-down.
   * `lock.signal` has aborted already.
   */
  onLeadershipLost(lock: LockHandle, reason: LeadershipEndReason): unknown;
}

/**
 * Makes the provider take part in a leader election: every instance of the application joins at
 * bootstrap (one ZooKeeper node each under `path`), the first one leads and gets
 * `onLeadershipAcquired(lock)`, the next one takes over when it goes (at once after a clean
 * shutdown, at its session's expiry after a crash). `path` defaults to `<jobsPath>/<ClassName>`.
 *
 * @example
 * \@Injectable()
 * \@LeaderElection('/elections/billing')
 * export class BillingLeader implements OnLeadershipAcquired, OnLeadershipLost {
 *   async onLeadershipAcquired(lock: LockHandle) { await this.consume({ signal: lock.signal }); }
 *   onLeadershipLost() { this.metrics.leader.set(0); }
 * }
 */
export function LeaderElection(path?: string): ClassDecorator {
  if (path !== undefined) {
    try {
      validateLockPath(path);
    } catch (error) {
      throw new InvalidOptionsError('@LeaderElection path', path, (error as Error).message);
    }
  }
  const spec: LeaderElectionSpec = { path };
  return SetMetadata(LEADER_ELECTION_METADATA, spec);
}
