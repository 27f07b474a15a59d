/**
 * ZooKeeper's "Locks" recipe, as the mature clients do it (no Nest in here).
 *
 *  1. the lock is a persistent directory; missing parents are created on demand;
 *  2. a contender creates an EPHEMERAL_SEQUENTIAL child named `_c_<attempt id>-lock-<seq>`
 *     (Curator's InterProcessMutex naming, so both exclude each other); the attempt id makes the
 *     create recoverable after a connection loss;
 *  3. it lists the children WITHOUT a watch and sorts them by the 10-digit sequence only;
 *  4. lowest sequence holds the lock;
 *  5. otherwise it watches its immediate predecessor only (one release wakes one waiter);
 *  6-7. release, time-out and abort delete our node.
 */
import { randomUUID } from 'node:crypto';
import { ZooKeeperError } from '../errors/zookeeper.error.js';
import type { ZkPort, ZkSession } from '../connection/zk-port.js';

const LOCK_MARKER = 'lock-';
const SEQUENCE = /^-?\d{10}$/; // negative after the server's counter overflows

/** The sequence digits of a lock node name, or undefined when the name is not a lock node. */
function sequenceDigits(name: string): string | undefined {
  const at = name.lastIndexOf(LOCK_MARKER);
  if (at === -1) return undefined;
  const digits = name.slice(at + LOCK_MARKER.length);
  return SEQUENCE.test(digits) ? digits : undefined;
}

/**
 * Sequence number of a lock node name, or -1 when the name is not a lock node. (A server whose
 * counter wrapped at 2^31 writes negative sequences; those are lock nodes too, see sortLockNodes.)
 */
export function sequenceOf(name: string): number {
  const digits = sequenceDigits(name);
  return digits === undefined ? -1 : Number(digits);
}

/** Lock nodes of a directory listing, in queue order (by sequence, never by whole name). */
export function sortLockNodes(children: string[]): string[] {
  const nodes: { name: string; sequence: number }[] = [];
  for (const name of children) {
    const digits = sequenceDigits(name);
    if (digits !== undefined) nodes.push({ name, sequence: Number(digits) });
  }
  return nodes.toSorted((a, b) => a.sequence - b.sequence).map((node) => node.name);
}

/**
 * Fencing token: (directory czxid, our sequence), strictly increasing across holders and
 * re-creations, shifted left 16 bits: the low bits number the local holders of one node when
 * the `coalesce` option passes it around in one process (0 for the node's first holder).
 */
export function fencingToken(directoryCzxid: bigint, sequence: number): bigint {
  return ((directoryCzxid << 32n) + BigInt(sequence)) << 16n;
}

/** Why the recipe gave up before holding the lock. */
export class GiveUp extends Error {
  constructor(readonly why: 'timeout' | 'aborted') {
    super(why);
  }
}

export interface AcquireRequest {
  /** The lock directory, validated. */
  dir: string;
  /** Owner data written into our node. */
  data: Buffer;
  /** Absolute deadline in ms (Date.now() scale), or Infinity. */
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
  const prefix = `_c_${randomUUID()}-${LOCK_MARKER}`;
  let ours: OurNode | undefined;
  try {
    for (;;) {
      throwIfGivenUp(deadline, signal);
      const session = await waitForSession(port, deadline, signal);
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
      const queue = sortLockNodes(listing.children);
      const index = queue.indexOf(ours.name);
      removeOrphans(port, dir, queue, prefix, ours.name);
      if (index === -1) {
        // Our node is gone: the session ended, or someone deleted it. Queue again.
        ours = undefined;
        continue;
      }
      if (index === 0) {
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
      await waitForChange(port, `${dir}/${queue[index - 1]}`, deadline, signal, session);
    }
  } finally {
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
async function createOrRecover(port: ZkPort, request: AcquireRequest, prefix: string): Promise<OurNode> {
  const { dir, data } = request;
  let unsure = false;
  let needDirectory = false;
  let session: ZkSession | undefined;
  for (;;) {
    try {
      session = await waitForSession(port, request.deadline, request.signal);
      if (needDirectory) await port.ensurePath(dir);
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
function removeOrphans(port: ZkPort, dir: string, queue: string[], prefix: string, current: string): void {
  for (const name of queue) {
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

async function waitForSession(port: ZkPort, deadline: number, signal: AbortSignal | undefined): Promise<ZkSession> {
  const current = port.currentSession();
  if (current) return current;
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
        Math.max(0, deadline - Date.now()),
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
  if (Date.now() >= deadline) throw new GiveUp('timeout');
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
