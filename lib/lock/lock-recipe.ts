/**
 * ZooKeeper's "Locks" and "Shared Locks" recipes, as the mature clients do them (no Nest in here).
 *
 *  1. the lock is a persistent directory; missing parents are created on demand;
 *  2. a contender creates an EPHEMERAL_SEQUENTIAL child named `_c_<attempt id>-lock-<seq>` for an
 *     exclusive (write) lock (Curator's InterProcessMutex naming, so both exclude each other) or
 *     `_c_<attempt id>-__READ__<seq>` for a shared (read) lock (Curator's read-lock naming); the
 *     attempt id makes the create recoverable after a connection loss;
 *  3. it lists the children WITHOUT a watch and sorts them by the 10-digit sequence only;
 *  4. a write holds the lock when it is first; a read holds it when no write is ahead of it;
 *  5. otherwise a write watches its immediate predecessor (of either kind) and a read watches the
 *     last write ahead of it: a release wakes only the waiters it may unblock;
 *  6-7. release, time-out and abort delete our node.
 *
 * The counting semaphore ({@link acquireLease}) is Curator's and kazoo's: an inner lock at
 * `<dir>/locks` lets one contender at a time create a lease under `<dir>/leases` and wait, with
 * watches on the other leases, until at most N leases exist; then it lets go of the inner lock.
 */
import { randomBytes } from 'node:crypto';
import { ZooKeeperError } from '../errors/zookeeper.error.js';
import type { WatchRegistration, ZkPort, ZkSession } from '../connection/zk-port.js';

/**
 * What a node in a lock directory is: `write` (exclusive: ours and Curator's mutex `lock-`, Curator's
 * write lock `__WRIT__`), `read` (shared: `__READ__`) or `lease` (a semaphore lease, `lease-`).
 */
export type NodeKind = 'write' | 'read' | 'lease';

/** Marker + 10-digit sequence at the end of the name (negative after the server's counter overflows). */
const NODE_NAME = /(lock-|__WRIT__|__READ__|lease-)(-?\d{10})$/;
const KIND_OF_MARKER: Record<string, NodeKind> = {
  'lock-': 'write',
  __WRIT__: 'write',
  __READ__: 'read',
  'lease-': 'lease',
};
/** The marker our nodes of each kind carry. */
export const MARKER: Record<NodeKind, string> = { write: 'lock-', read: '__READ__', lease: 'lease-' };

/** One node of a lock directory, parsed. */
export interface QueueNode {
  name: string;
  kind: NodeKind;
  sequence: number;
}

/** Kind and sequence of a node name, or undefined when the name is not a lock, read or lease node. */
export function parseNode(name: string): QueueNode | undefined {
  const match = NODE_NAME.exec(name);
  return match ? { name, kind: KIND_OF_MARKER[match[1]], sequence: Number(match[2]) } : undefined;
}

/**
 * Sequence number of a lock node name, or -1 when the name is not a lock node. (A server whose
 * counter wrapped at 2^31 writes negative sequences; those are lock nodes too, see sortLockNodes.)
 */
export function sequenceOf(name: string): number {
  return parseNode(name)?.sequence ?? -1;
}

/**
 * The nodes of a directory listing of `kinds`, in queue order (by sequence, never by whole name).
 * Default: the read/write queue of a lock directory.
 */
export function lockQueue(children: string[], kinds: readonly NodeKind[] = QUEUE_KINDS): QueueNode[] {
  const nodes: QueueNode[] = [];
  for (const name of children) {
    const node = parseNode(name);
    if (node && kinds.includes(node.kind)) nodes.push(node);
  }
  return nodes.toSorted((a, b) => a.sequence - b.sequence);
}
const QUEUE_KINDS: readonly NodeKind[] = ['write', 'read'];

/**
 * Kind and sequence of a node name without a regex or an allocation, for the scan a waiter makes
 * of the whole queue on every wake-up. Sets {@link scannedKind} and returns the sequence, or NaN
 * when the name is not a lock node. Unusual names (negative sequences after the server's counter
 * wrapped) take the regex.
 */
function scan(name: string): number {
  const n = name.length;
  if (n >= 15) {
    let sequence = 0;
    let i = n - 10;
    for (; i < n; i += 1) {
      const digit = name.charCodeAt(i) - 48;
      if (digit < 0 || digit > 9) break;
      sequence = sequence * 10 + digit;
    }
    if (i === n) {
      const before = name.charCodeAt(n - 11);
      if (before === 45 /* - */ && name.charCodeAt(n - 12) !== 45) {
        if (name.endsWith('lock', n - 11)) return ((scannedKind = 'write'), sequence);
        if (name.endsWith('lease', n - 11)) return ((scannedKind = 'lease'), sequence);
      } else if (before === 95 /* _ */) {
        if (name.endsWith('__READ_', n - 11)) return ((scannedKind = 'read'), sequence);
        if (name.endsWith('__WRIT_', n - 11)) return ((scannedKind = 'write'), sequence);
      }
    }
  }
  const node = parseNode(name);
  if (!node) return Number.NaN;
  scannedKind = node.kind;
  return node.sequence;
}
let scannedKind: NodeKind = 'write';

/**
 * Where our node `ours` stands in a listing of its read/write lock directory, in one pass (no
 * sort: the listing is as long as the queue, and a waiter reads it on every wake-up): whether
 * it is there, the node that blocks it (as {@link blockerOf} on the sorted queue), and nodes of
 * an earlier attempt of ours (`prefix`) to delete.
 */
export function positionOf(
  children: readonly string[],
  ours: string,
  prefix: string,
): { present: boolean; blocker: string | undefined; orphans: string[] } {
  const mine = scan(ours);
  const readOnlyWrites = scannedKind === 'read';
  let present = false;
  let blocker: string | undefined;
  let blockerSequence = -Infinity;
  const orphans: string[] = [];
  for (const name of children) {
    if (name === ours) {
      present = true;
      continue;
    }
    const sequence = scan(name);
    if (Number.isNaN(sequence) || scannedKind === 'lease') continue;
    if (name.startsWith(prefix)) {
      orphans.push(name);
      continue;
    }
    if (sequence >= mine || (readOnlyWrites && scannedKind !== 'write')) continue;
    if (sequence > blockerSequence) {
      blocker = name;
      blockerSequence = sequence;
    }
  }
  return { present, blocker, orphans };
}

/** Names of the read/write lock nodes of a listing, in queue order. */
export function sortLockNodes(children: string[]): string[] {
  return lockQueue(children).map((node) => node.name);
}

/**
 * The node that keeps `queue[index]` from holding the lock, or undefined when it holds it:
 * for a write, its immediate predecessor; for a read, the last write ahead of it.
 */
export function blockerOf<T extends { kind: NodeKind }>(queue: readonly T[], index: number): T | undefined {
  if (queue[index].kind !== 'read') return index > 0 ? queue[index - 1] : undefined;
  for (let i = index - 1; i >= 0; i -= 1) if (queue[i].kind === 'write') return queue[i];
  return undefined;
}

/**
 * Fencing token: (directory czxid, our sequence), strictly increasing across holders and
 * re-creations, shifted left 16 bits: the low bits number the local holders of one node when
 * the `coalesce` option passes it around in one process (0 for the node's first holder).
 */
export function fencingToken(directoryCzxid: bigint, sequence: number): bigint {
  return ((directoryCzxid << 32n) + BigInt(sequence)) << 16n;
}

/**
 * A new attempt id in Curator's UUID layout (8-4-4-4-12 hex digits): 80 random bits drawn once
 * per process, then a 48-bit counter. Unique per attempt like a random UUID, without the cost of
 * one (its entropy refills showed in the profile of an acquisition).
 */
export function attemptId(): string {
  attempts += 1;
  return `${PROCESS_ID}${attempts.toString(16).padStart(12, '0')}`;
}
const PROCESS_ID = (() => {
  const hex = randomBytes(10).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-`;
})();
let attempts = 0;

/** Why the recipe gave up before holding the lock. */
export class GiveUp extends Error {
  constructor(
    readonly why: 'timeout' | 'aborted',
    /**
     * True when the deadline passed while the attempt waited for a session or for a reply to one
     * of its requests (an outage), false when it waited for another holder (a busy lock).
     */
    readonly unavailable = false,
  ) {
    super(why);
  }
}

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
  /** false: give up at once when someone else holds the lock. */
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

interface OurNode {
  name: string;
  session: ZkSession;
}

/**
 * Runs the recipe. Resolves with the acquisition, or `null` when `wait` is false and the lock is
 * held elsewhere; rejects with {@link GiveUp} on deadline or abort. Whenever it does not resolve
 * with an acquisition, nothing of ours is left: no node, watch, timer or listener.
 */
export async function acquireLock(port: ZkPort, request: AcquireRequest): Promise<Acquired | null> {
  const { dir, deadline, signal } = request;
  const prefix = `_c_${attemptId()}-${request.curatorWrite ? '__WRIT__' : MARKER[request.kind]}`;
  let ours: OurNode | undefined;
  try {
    for (;;) {
      throwIfGivenUp(deadline, signal);
      const session = port.currentSession() ?? (await waitForSession(port, deadline, signal));
      if (ours?.session !== session) {
        ours = await createOrRecover(port, request, prefix);
        continue;
      }

      let listing: Awaited<ReturnType<ZkPort['getChildren']>>;
      try {
        listing = await port.getChildren(dir);
      } catch (error) {
        if (isTransient(error)) continue;
        if (isNoNode(error)) {
          ours = undefined; // the directory went, and our node with it
          continue;
        }
        throw error;
      }
      const { present, blocker, orphans } = positionOf(listing.children, ours.name, prefix);
      for (const orphan of orphans) void port.remove(`${dir}/${orphan}`).catch(() => undefined);
      if (!present) {
        // Our node is gone: the session ended, or someone deleted it. Queue again.
        ours = undefined;
        continue;
      }
      if (!blocker) {
        if (ours.session.ended.aborted) continue;
        const sequence = sequenceOf(ours.name);
        const acquired = {
          node: `${dir}/${ours.name}`,
          sequence,
          fencingToken: fencingToken(listing.stat.czxid, sequence),
          session: ours.session,
        };
        ours = undefined; // handed over: the caller owns it now
        return acquired;
      }
      if (!request.wait) return null;
      await waitForChange(port, `${dir}/${blocker}`, deadline, signal, session);
    }
  } finally {
    if (ours) await deleteNode(port, `${dir}/${ours.name}`, ours.session);
  }
}

export interface LeaseRequest extends Omit<AcquireRequest, 'kind'> {
  /** How many holders the semaphore admits at once. */
  leases: number;
}

/** Our lease did not come through in the session we held the inner lock in: start over. */
const START_OVER = Symbol('start over');

/**
 * Takes one of `leases` leases of the semaphore `dir` (see the file comment). Resolves with the
 * lease, or `null` when `wait` is false and no lease is free (or another contender is taking
 * one); rejects with {@link GiveUp}. Whenever it does not resolve with a lease, nothing of ours
 * is left. The inner lock is never kept: it is released before this resolves or rejects.
 */
export async function acquireLease(port: ZkPort, request: LeaseRequest): Promise<Acquired | null> {
  const prefix = `_c_${attemptId()}-${MARKER.lease}`;
  for (;;) {
    const inner = await acquireLock(port, { ...request, dir: `${request.dir}/locks`, kind: 'write' });
    if (!inner) return null;
    try {
      const lease = await takeLease(port, request, prefix, inner.session);
      if (lease !== START_OVER) return lease;
    } finally {
      await deleteNode(port, inner.node, inner.session);
    }
  }
}

/** While holding the inner lock of `session`: create our lease and wait until at most N leases exist. */
async function takeLease(
  port: ZkPort,
  request: LeaseRequest,
  prefix: string,
  session: ZkSession,
): Promise<Acquired | null | typeof START_OVER> {
  const { deadline, signal } = request;
  const dir = `${request.dir}/leases`;
  const watches = new Map<string, WatchRegistration>();
  let ours: OurNode | undefined;
  let wake!: () => void;
  let woken!: Promise<void>;
  const rearm = () => {
    woken = new Promise<void>((resolve) => (wake = resolve));
  };
  try {
    ours = await createOrRecover(port, { ...request, dir }, prefix);
    if (ours.session !== session) return START_OVER; // the inner lock went with the old session
    for (;;) {
      throwIfGivenUp(deadline, signal);
      if ((port.currentSession() ?? (await waitForSession(port, deadline, signal))) !== session) return START_OVER;
      rearm();
      let listing: Awaited<ReturnType<ZkPort['getChildren']>>;
      try {
        listing = await port.getChildren(dir);
      } catch (error) {
        if (isNoNode(error)) return START_OVER; // the directory went (reclaimed), so did our lease
        if (isTransient(error)) continue; // session gone: start over (above); else try again
        throw error;
      }
      const leases = lockQueue(listing.children, ['lease']);
      const name = ours.name;
      const mine = leases.find((node) => node.name === name);
      removeOrphans(port, dir, leases, prefix, name);
      if (!mine) return START_OVER; // our lease went: session over, or deleted by someone
      const others = leases.filter((node) => node !== mine && !node.name.startsWith(prefix));
      if (others.length < request.leases) {
        const acquired: Acquired = {
          node: `${dir}/${name}`,
          sequence: mine.sequence,
          fencingToken: fencingToken(listing.stat.czxid, mine.sequence),
          session,
        };
        ours = undefined; // handed over
        return acquired;
      }
      if (!request.wait) return null;
      // Any lease that goes may make room: watch them all (only this contender, the inner lock's
      // holder, watches leases, so a release wakes one process).
      let gone = false;
      for (const node of others) {
        const path = `${dir}/${node.name}`;
        if (watches.has(path)) continue;
        let registration: WatchRegistration | null;
        try {
          registration = await port.watch(path, () => {
            watches.delete(path);
            wake();
          });
        } catch (error) {
          if (!isTransient(error)) throw error;
          registration = null; // list again (or start over when the session went)
        }
        if (registration) watches.set(path, registration);
        else gone = true;
        if (gone) break;
      }
      if (!gone) await raceGiveUp(woken, deadline, signal, session.ended);
    }
  } finally {
    for (const registration of watches.values()) registration.cancel();
    if (ours) await deleteNode(port, `${dir}/${ours.name}`, ours.session);
  }
}

/**
 * Deletes our node, retrying through connection loss while its session lives; when the session
 * is over the server removes the node itself. Never throws.
 */
export async function deleteNode(port: ZkPort, path: string, session: ZkSession): Promise<void> {
  while (!session.ended.aborted) {
    try {
      await port.remove(path);
      return;
    } catch (error) {
      if (isNoNode(error) || !isTransient(error)) return;
      try {
        const current = await port.waitForSession(session.ended);
        if (current !== session) return;
      } catch {
        return;
      }
    }
  }
}

/**
 * Creates our node. After a connection loss the create may or may not have happened: before
 * creating again, look for a node with our attempt id and adopt it if it belongs to the session
 * we are in now (an older session's node is removed by {@link removeOrphans}).
 */
async function createOrRecover(
  port: ZkPort,
  request: Pick<AcquireRequest, 'dir' | 'data' | 'deadline' | 'signal'>,
  prefix: string,
): Promise<OurNode> {
  const { dir, data } = request;
  let unsure = false;
  let needDirectory = false;
  let session: ZkSession | undefined;
  for (;;) {
    try {
      session = port.currentSession() ?? (await waitForSession(port, request.deadline, request.signal));
      if (needDirectory) await port.ensureLockDirectory(dir);
      needDirectory = false;
      if (unsure) {
        const { children } = await port.getChildren(dir);
        for (const name of children.filter((child) => child.startsWith(prefix))) {
          const stat = await port.exists(`${dir}/${name}`);
          if (stat?.ephemeralOwner === session.id) return { name, session };
        }
        unsure = false;
      }
      return { name: basename(await port.create(`${dir}/${prefix}`, data, 'ephemeral-sequential')), session };
    } catch (error) {
      if (isNoNode(error)) needDirectory = true;
      else if (isTransient(error)) unsure = true;
      else {
        if (unsure && session) void removeAttempt(port, dir, prefix, session);
        throw error;
      }
    }
  }
}

/** After giving up with a create in doubt: delete any node of this attempt once the session answers again. */
async function removeAttempt(port: ZkPort, dir: string, prefix: string, session: ZkSession): Promise<void> {
  try {
    if ((await port.waitForSession(session.ended)) !== session) return;
    const { children } = await port.getChildren(dir);
    for (const name of children) if (name.startsWith(prefix)) await deleteNode(port, `${dir}/${name}`, session);
  } catch {
    // the session ended: the server removes its nodes itself
  }
}

/**
 * Nodes with our attempt id that are not our current node were made by an earlier session of
 * ours (presumed lost, not yet expired by the server). Delete them instead of queueing behind them.
 */
function removeOrphans(port: ZkPort, dir: string, queue: QueueNode[], prefix: string, current: string): void {
  for (const { name } of queue) {
    if (name !== current && name.startsWith(prefix)) void port.remove(`${dir}/${name}`).catch(() => undefined);
  }
}

/** Waits until the watched node changes or goes, the session ends, the deadline passes or the signal aborts. */
async function waitForChange(
  port: ZkPort,
  path: string,
  deadline: number,
  signal: AbortSignal | undefined,
  session: ZkSession,
): Promise<void> {
  let wake!: () => void;
  const woken = new Promise<void>((resolve) => (wake = resolve));
  let registration;
  try {
    registration = await port.watch(path, wake);
  } catch (error) {
    if (isTransient(error)) return;
    throw error;
  }
  if (!registration) return; // already gone: list again
  try {
    await raceGiveUp(woken, deadline, signal, session.ended);
  } finally {
    registration.cancel();
  }
}

/** The next session (callers try `port.currentSession()` first: no promise on the hot path). */
async function waitForSession(port: ZkPort, deadline: number, signal: AbortSignal | undefined): Promise<ZkSession> {
  const stop = new AbortController();
  try {
    return await raceGiveUp(port.waitForSession(stop.signal), deadline, signal);
  } finally {
    stop.abort();
  }
}

/**
 * Resolves with `promise`, or when `also` aborts (resolves undefined), or rejects with GiveUp on
 * the deadline or the caller's abort. Leaves no timer or listener behind.
 */
function raceGiveUp<T>(promise: Promise<T>, deadline: number, signal?: AbortSignal, also?: AbortSignal): Promise<T> {
  throwIfGivenUp(deadline, signal);
  return new Promise<T>((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    const cleanup = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      also?.removeEventListener('abort', onAlso);
    };
    const onAbort = () => {
      cleanup();
      reject(new GiveUp('aborted'));
    };
    const onAlso = () => {
      cleanup();
      resolve(undefined as T);
    };
    if (deadline !== Infinity) {
      timer = setTimeout(
        () => {
          cleanup();
          reject(new GiveUp('timeout'));
        },
        Math.max(0, deadline - performance.now()),
      );
    }
    signal?.addEventListener('abort', onAbort, { once: true });
    if (also?.aborted) onAlso();
    else also?.addEventListener('abort', onAlso, { once: true });
    promise.then(
      (value) => {
        cleanup();
        resolve(value);
      },
      (error: unknown) => {
        cleanup();
        reject(error);
      },
    );
  });
}

function throwIfGivenUp(deadline: number, signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new GiveUp('aborted');
  if (performance.now() >= deadline) throw new GiveUp('timeout');
}

function basename(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

function isNoNode(error: unknown): boolean {
  return error instanceof ZooKeeperError && error.zkCode === 'NO_NODE';
}

/**
 * Errors after which the request's outcome is unknown or the session changed: try again (on the
 * next session if need be). CLOSED here means a client thrown away with its session; when the
 * whole connection is closed, waiting for the next session fails instead.
 */
const TRANSIENT = new Set(['CONNECTION_LOSS', 'OPERATION_TIMEOUT', 'SESSION_EXPIRED', 'CLOSED']);
function isTransient(error: unknown): boolean {
  return error instanceof ZooKeeperError && TRANSIENT.has(error.zkCode);
}
