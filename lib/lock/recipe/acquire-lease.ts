/**
 * The counting semaphore (Curator's InterProcessSemaphoreV2 and kazoo's Semaphore): an inner lock
 * at `<dir>/locks` lets one contender at a time create a lease under `<dir>/leases` and wait,
 * with watches on the other leases, until at most N leases exist; then it lets go of the inner lock.
 */
import type { WatchRegistration, ZkPort, ZkSession } from '../../connection/zk-port.js';
import { InvalidOptionsError } from '../../errors/invalid-options.error.js';
import { granted, lockWithin, type AcquireRequest, type Acquired } from './acquire-lock.js';
import { Attempt, isNoNode, isTransient } from './attempt.js';
import { attemptId, MARKER, type QueueNode } from './node-names.js';
import { createOrRecover, deleteNode, type OurNode } from './our-node.js';
import { lockQueue } from './queue-order.js';

export interface LeaseRequest extends Omit<AcquireRequest, 'kind'> {
  /** How many holders the semaphore admits at once; our lease node's data says `"leases":N`. */
  leases: number;
}

/** Our lease did not come through in the session we held the inner lock in: start over. */
const START_OVER = Symbol('start over');

/**
 * Takes one of `leases` leases of the semaphore `dir` (see the file comment). Resolves with the
 * lease, or `null` when `wait` is false and no lease is free (or another contender is taking
 * one); rejects with GiveUp, or with InvalidOptionsError when the semaphore's holders were given
 * another number of leases. Whenever it does not resolve with a lease, nothing of ours is left.
 * The inner lock is never kept: a lease is returned once the inner lock's node is gone (within
 * the deadline), and never when its session ended meanwhile: the attempt starts over then.
 */
export async function acquireLease(port: ZkPort, request: LeaseRequest): Promise<Acquired | null> {
  const attempt = new Attempt(request.deadline, request.signal);
  const prefix = `_c_${attemptId()}-${MARKER.lease}`;
  try {
    for (;;) {
      const inner = await lockWithin(port, { ...request, dir: `${request.dir}/locks`, kind: 'write' }, attempt);
      if (!inner) return null;
      const releaseInner = () => deleteNode(port, inner.node, inner.session);
      let lease: Awaited<ReturnType<typeof takeLease>>;
      try {
        lease = await takeLease(port, request, prefix, inner.session, attempt);
      } catch (error) {
        attempt.cleanup(releaseInner());
        throw error;
      }
      if (lease === null || lease === START_OVER) {
        attempt.cleanup(releaseInner());
        if (lease === null) return null;
        await attempt.drain();
        continue;
      }
      // Granted: let go of the inner lock before returning, within the deadline.
      try {
        await attempt.reply(releaseInner());
      } catch (error) {
        attempt.cleanup(deleteNode(port, lease.node, lease.session));
        throw error;
      }
      if (!lease.session.ended.aborted) return lease; // (else lost before returned: start over)
    }
  } finally {
    await attempt.drain();
    attempt.end();
  }
}

/** While holding the inner lock of `session`: create our lease and wait until at most N leases exist. */
async function takeLease(
  port: ZkPort,
  request: LeaseRequest,
  prefix: string,
  session: ZkSession,
  attempt: Attempt,
): Promise<Acquired | null | typeof START_OVER> {
  const dir = `${request.dir}/leases`;
  const watches = new Map<string, WatchRegistration>();
  let ours: OurNode | undefined;
  let wake!: () => void;
  let woken!: Promise<void>;
  try {
    ours = await createOrRecover(port, { ...request, dir }, prefix, attempt);
    if (ours.session !== session) return START_OVER; // the inner lock went with the old session
    for (;;) {
      attempt.check(port.currentSession() === undefined);
      if (port.currentSession() !== session) return START_OVER;
      woken = new Promise<void>((resolve) => (wake = resolve));
      let listing: Awaited<ReturnType<ZkPort['getChildren']>>;
      let others: QueueNode[];
      try {
        listing = await attempt.reply(port.getChildren(dir));
        const leases = lockQueue(listing.children, ['lease']);
        const name = ours.name;
        removeOrphans(port, dir, leases, prefix, name);
        if (!leases.some((node) => node.name === name)) return START_OVER; // session over, or deleted by someone
        others = leases.filter((node) => node.name !== name && !node.name.startsWith(prefix));
        // The holders' N: read from one of them, unless the watches below bring it.
        const watching = request.wait && others.length >= request.leases;
        if (others.length > 0 && !watching) await checkLeases(port, dir, others[0], request, attempt);
      } catch (error) {
        if (isNoNode(error)) return START_OVER; // the directory went (reclaimed), so did our lease
        if (!isTransient(error)) throw error;
        await attempt.failed(); // session gone: start over (above); else try again
        continue;
      }
      if (others.length < request.leases) {
        if (session.ended.aborted) return START_OVER; // lost already: never return it
        const acquired = granted(dir, ours, listing.stat.pzxid);
        ours = undefined; // handed over
        return acquired;
      }
      if (!request.wait) return null;
      if (await watchLeases(port, dir, others, watches, request, attempt, () => wake())) {
        await attempt.wait(woken, session.ended);
      }
    }
  } finally {
    for (const registration of watches.values()) registration.cancel();
    if (ours) attempt.cleanup(deleteNode(port, `${dir}/${ours.name}`, ours.session));
  }
}

/**
 * Any lease that goes may make room: watch them all (only this contender, the inner lock's
 * holder, watches leases, so a release wakes one process). Each watch brings the lease's data:
 * its N is checked. False when a lease went meanwhile (list again).
 */
async function watchLeases(
  port: ZkPort,
  dir: string,
  others: readonly QueueNode[],
  watches: Map<string, WatchRegistration>,
  request: LeaseRequest,
  attempt: Attempt,
  wake: () => void,
): Promise<boolean> {
  for (const node of others) {
    const path = `${dir}/${node.name}`;
    if (watches.has(path)) continue;
    let registration: WatchRegistration | null;
    try {
      registration = await attempt.reply(
        port.watch(path, () => {
          watches.delete(path);
          wake();
        }),
        { value: (late) => late?.cancel() },
      );
    } catch (error) {
      if (!isTransient(error)) throw error;
      await attempt.failed();
      return false; // list again (or start over when the session went)
    }
    if (!registration) return false;
    watches.set(path, registration);
    refuseOtherN(request, leasesIn(registration.data));
  }
  return true;
}

/** Reads one holder's N (its node's data) and refuses ours if it differs. */
async function checkLeases(
  port: ZkPort,
  dir: string,
  holder: QueueNode,
  request: LeaseRequest,
  attempt: Attempt,
): Promise<void> {
  try {
    const { data } = await attempt.reply(port.getData(`${dir}/${holder.name}`));
    refuseOtherN(request, leasesIn(data));
  } catch (error) {
    if (!isNoNode(error)) throw error; // (released meanwhile: nothing to compare)
  }
}

function refuseOtherN(request: LeaseRequest, theirs: number | undefined): void {
  if (theirs === undefined || theirs === request.leases) return;
  throw new InvalidOptionsError(
    'leases',
    request.leases,
    `the semaphore ${request.dir} is held with leases: ${theirs}; every caller of one semaphore must give the same number`,
  );
}

/** The `"leases":N` our lease nodes carry; undefined for other data (Curator's, kazoo's, a revocation marker). */
function leasesIn(data: Buffer): number | undefined {
  const match = /"leases":(\d+)/.exec(data.toString('utf8'));
  return match ? Number(match[1]) : undefined;
}

/**
 * Nodes with our attempt id that are not our current node were made by an earlier session of
 * ours (presumed lost, not yet expired by the server). Delete them instead of counting them.
 */
function removeOrphans(port: ZkPort, dir: string, queue: QueueNode[], prefix: string, current: string): void {
  for (const { name } of queue) {
    if (name !== current && name.startsWith(prefix)) void port.remove(`${dir}/${name}`).catch(() => undefined);
  }
}
