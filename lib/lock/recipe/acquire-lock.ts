/** The exclusive and shared lock: create our node, list, hold or wait for the node ahead. */
import type { NodeStat, ZkPort, ZkSession } from '../../connection/zk-port.js';
import { Attempt, isNoNode, isTransient } from './attempt.js';
import { attemptId, basename, MARKER, sequenceOf } from './node-names.js';
import { createNode, createOrRecover, deleteNode, type OurNode } from './our-node.js';
import { fencingToken, mayBlockOurs, positionOf, type Position } from './queue-order.js';

export interface AcquireRequest {
  /** The lock directory, validated. */
  dir: string;
  /** `write` (exclusive) or `read` (shared with other reads). */
  kind: 'write' | 'read';
  /**
   * For a write: name the node `__WRIT__<seq>` as Curator's read/write lock does (an explicit
   * `mode: 'write'`), instead of `lock-<seq>` as its InterProcessMutex does (a plain lock). Both
   * are writes here; Curator's read locks see only the first.
   */
  curatorWrite?: boolean;
  /** Owner data written into our node. */
  data: Buffer;
  /** Absolute deadline in ms on the monotonic clock (performance.now() scale), or Infinity. */
  deadline: number;
  signal?: AbortSignal;
  /** false: give up at once when someone else holds the lock (or there is no session). */
  wait: boolean;
}

export interface Acquired {
  /** Full path of our node. */
  node: string;
  sequence: number;
  fencingToken: bigint;
  /** The session our node lives in: the lock is lost when it ends. */
  session: ZkSession;
}

/**
 * Runs the recipe. Resolves with the acquisition, or `null` when `wait` is false and the lock is
 * held elsewhere; rejects with {@link GiveUp} on deadline or abort, by the deadline (plus at most
 * CLEANUP_WAIT_MS for deleting our node) in every connection state. Whenever it does not resolve
 * with an acquisition, nothing of ours is left: no node (a deletion the server cannot take now
 * goes on until it can, or the node goes with its session), watch, timer or listener.
 */
export function acquireLock(port: ZkPort, request: AcquireRequest): Promise<Acquired | null> {
  return lockWithin(port, request, new Attempt(request.deadline, request.signal), true);
}

/**
 * {@link acquireLock} within an attempt (the semaphore's inner lock shares the semaphore's).
 * `ownAttempt`: the attempt is this lock's alone; wait for its deletions and end it when done.
 */
export async function lockWithin(
  port: ZkPort,
  request: AcquireRequest,
  attempt: Attempt,
  ownAttempt = false,
): Promise<Acquired | null> {
  const { dir } = request;
  const prefix = `_c_${attemptId()}-${request.curatorWrite ? '__WRIT__' : MARKER[request.kind]}`;
  let ours: OurNode | undefined;
  try {
    for (;;) {
      const current = port.currentSession();
      attempt.check(current === undefined); // (out of time without a session: an outage)
      const session = current ?? (await attempt.session(port, request.wait));
      if (ours?.session !== session) {
        try {
          ours = { name: basename(await createNode(port, request, prefix, attempt, session)), session };
          attempt.progressed();
        } catch (error) {
          ours = await createOrRecover(port, request, prefix, attempt, { error, session });
        }
        continue;
      }
      let listing: { children: string[]; stat: NodeStat }, position: Position | undefined;
      try {
        listing = await attempt.reply(port.getChildren(dir));
        attempt.progressed();
        position = positionOf(listing.children, ours.name, prefix);
        if (position.unordered && position.present)
          position = await ordered(port, dir, ours, prefix, listing.children, position, attempt);
      } catch (error) {
        if (isNoNode(error)) ours = undefined;
        else if (!isTransient(error)) throw error; // (NO_NODE: the directory went, and our node with it)
        await attempt.failed();
        continue;
      }
      if (!position) continue; // a node that may block ours went meanwhile: list again
      const { present, blocker, orphans } = position;
      for (const orphan of orphans) void port.remove(`${dir}/${orphan}`).catch(() => undefined);
      if (!present) {
        ours = undefined; // our node is gone (its session ended, or someone deleted it): queue again
        continue;
      }
      if (!blocker) {
        if (port.currentSession() !== ours.session) continue; // (its session is over, or its loss is due)
        const acquired = granted(dir, ours, listing.stat.pzxid);
        ours = undefined; // handed over: the caller owns it now
        return acquired;
      }
      if (!request.wait) return null;
      await waitForChange(port, `${dir}/${blocker}`, attempt, session);
    }
  } finally {
    if (ours) attempt.cleanup(deleteNode(port, `${dir}/${ours.name}`, ours.session));
    if (ownAttempt && attempt.draining) await attempt.drain();
    if (ownAttempt) attempt.end();
  }
}

/** The acquisition of our node `ours` in `dir`, granted by a listing with this pzxid. */
export function granted(dir: string, ours: OurNode, pzxid: bigint): Acquired {
  const { name, session } = ours;
  return { node: `${dir}/${name}`, sequence: sequenceOf(name), fencingToken: fencingToken(pzxid), session };
}

/**
 * Our position in a listing whose order needs creation zxids (the wrapped range of sequences):
 * reads them with `exists`; undefined when a node that may block ours went meanwhile (list again:
 * the listing that grants the lock must not show it).
 */
async function ordered(
  port: ZkPort,
  dir: string,
  ours: OurNode,
  prefix: string,
  children: string[],
  position: Position,
  attempt: Attempt,
): Promise<Position | undefined> {
  const names = mayBlockOurs(children, ours.name, prefix);
  const lookups = names.map((name) => port.exists(`${dir}/${name}`));
  const own = ours.czxid === undefined ? port.exists(`${dir}/${ours.name}`) : undefined;
  const [stats, ownStat] = await attempt.reply(Promise.all([Promise.all(lookups), own]));
  if (own) {
    if (!ownStat) return { ...position, present: false };
    ours.czxid = ownStat.czxid;
  }
  if (stats.some((found) => found === null)) return undefined;
  const czxids = new Map(names.map((name, i) => [name, stats[i]!.czxid]));
  czxids.set(ours.name, ours.czxid!);
  return positionOf(children, ours.name, prefix, czxids);
}

/** Waits until the watched node changes or goes, the session ends, the deadline passes or the signal aborts. */
async function waitForChange(port: ZkPort, path: string, attempt: Attempt, session: ZkSession): Promise<void> {
  let wake!: () => void;
  const woken = new Promise<void>((resolve) => (wake = resolve));
  let registration;
  try {
    registration = await attempt.reply(
      port.watch(path, () => wake()),
      { value: (late) => late?.cancel() }, // set after we gave up: take it back
    );
  } catch (error) {
    if (!isTransient(error)) throw error;
    await attempt.failed();
    return;
  }
  if (!registration) return; // already gone: list again
  try {
    await attempt.wait(woken, session.ended);
  } finally {
    registration.cancel();
  }
}
