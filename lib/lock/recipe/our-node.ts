/**
 * Our node in a lock directory: creating it so that a connection loss cannot leave a second one
 * (recovery by attempt id), creating the directory on demand, and deleting it again.
 */
import type { ZkPort, ZkSession } from '../../connection/zk-port.js';
import { InvalidOptionsError } from '../../errors/invalid-options.error.js';
import type { ZooKeeperError } from '../../errors/zookeeper.error.js';
import { isNodeExists, isNoNode, isTransient, type Attempt, type Late } from './attempt.js';
import { basename } from './node-names.js';

export interface OurNode {
  name: string;
  session: ZkSession;
  /** Its creation zxid, once read (only the wrapped range of sequences needs it). */
  czxid?: bigint;
}

export interface NodeRequest {
  /** The directory, validated. */
  dir: string;
  /** Owner data written into our node. */
  data: Buffer;
  /** false: no session now means give up at once. */
  wait: boolean;
}

/**
 * Creates our node. After a connection loss the create may or may not have happened: before
 * creating again, look for a node with our attempt id and adopt it if it belongs to the session
 * we are in now; one of an older session is deleted (ZooKeeper 3.8 names every child alike once
 * the directory's counter is at 2^31 - 1, so it would make our create fail with NODE_EXISTS).
 * Retries back off; a permanent error is thrown, a missing chroot as an InvalidOptionsError.
 */
export async function createOrRecover(
  port: ZkPort,
  request: NodeRequest,
  prefix: string,
  attempt: Attempt,
  /** A first create already tried (by the caller, with {@link createNode}) and how it failed. */
  first?: { error: unknown; session: ZkSession },
): Promise<OurNode> {
  const { dir } = request;
  let unsure = false;
  let needDirectory = false;
  let failed = first;
  for (;;) {
    if (failed) {
      const { error, session } = failed;
      const retry = isNoNode(error) || isTransient(error) || isNodeExists(error);
      if (!retry) {
        if (unsure) void removeAttempt(port, dir, prefix, session);
        throw error;
      }
      if (isNoNode(error)) needDirectory = true;
      else unsure = true;
      await attempt.failed().catch((giveUp: unknown) => {
        if (unsure) void removeAttempt(port, dir, prefix, session);
        throw giveUp;
      });
    }
    const session = port.currentSession() ?? (await attempt.session(port, request.wait));
    try {
      if (needDirectory) await ensureDirectory(port, dir, attempt);
      needDirectory = false;
      if (unsure) {
        const adopted = await recover(port, dir, prefix, session, attempt);
        if (adopted) return adopted;
        unsure = false;
      }
      const path = await createNode(port, request, prefix, attempt, session);
      attempt.progressed();
      return { name: basename(path), session };
    } catch (error) {
      failed = { error, session };
    }
  }
}

/**
 * One create of our node in `session` (createOrRecover's step; the recipe tries it first itself).
 * A create given up on while on its way is undone when its outcome comes: the node it made is
 * deleted, and after a connection loss any node of the attempt once the session answers again.
 */
export function createNode(
  port: ZkPort,
  request: NodeRequest,
  prefix: string,
  attempt: Attempt,
  session: ZkSession,
): Promise<string> {
  return attempt.reply(
    port.create(`${request.dir}/${prefix}`, request.data, 'ephemeral-sequential'),
    new LateCreate(port, request.dir, prefix, session),
  );
}

/** What undoes a create that answers after its attempt gave up on it (see {@link createNode}). */
class LateCreate implements Late<string> {
  constructor(
    private readonly port: ZkPort,
    private readonly dir: string,
    private readonly prefix: string,
    private readonly session: ZkSession,
  ) {}

  value(created: string): void {
    void deleteNode(this.port, created, this.session);
  }

  error(error: unknown): void {
    if (isTransient(error)) void removeAttempt(this.port, this.dir, this.prefix, this.session);
  }
}

/** After a create in doubt: our node of this session if the server made it; older ones deleted. */
async function recover(
  port: ZkPort,
  dir: string,
  prefix: string,
  session: ZkSession,
  attempt: Attempt,
): Promise<OurNode | undefined> {
  const { children } = await attempt.reply(port.getChildren(dir));
  for (const name of children) {
    if (!name.startsWith(prefix)) continue;
    const stat = await attempt.reply(port.exists(`${dir}/${name}`));
    if (stat?.ephemeralOwner === session.id) return { name, session, czxid: stat.czxid };
    if (stat) await attempt.reply(port.remove(`${dir}/${name}`)).catch(ignoreNoNode);
  }
  return undefined;
}

/**
 * Creates the lock directory. NO_NODE here means a parent went meanwhile (a reclaimed container:
 * try again) or the chroot itself is missing, which no retry mends.
 */
async function ensureDirectory(port: ZkPort, dir: string, attempt: Attempt): Promise<void> {
  try {
    await attempt.reply(port.ensureLockDirectory(dir));
  } catch (error) {
    if (isNoNode(error) && (await attempt.reply(port.exists('/'))) === null) throw chrootMissing(port);
    throw error;
  }
}

function chrootMissing(port: ZkPort): InvalidOptionsError {
  const connectionString = (port as { options?: { connectionString?: unknown } }).options?.connectionString;
  const slash = typeof connectionString === 'string' ? connectionString.indexOf('/') : -1;
  const chroot = slash >= 0 ? (connectionString as string).slice(slash) : undefined;
  return new InvalidOptionsError(
    'connectionString',
    connectionString,
    `its chroot node ${chroot ?? ''} does not exist on the server: create it first (e.g. ensurePath('${
      chroot ?? '/<chroot>'
    }') on a connection without the chroot), or fix the connection string`,
  );
}

/** After giving up with a create in doubt: delete any node of this attempt once the session answers again. */
export async function removeAttempt(port: ZkPort, dir: string, prefix: string, session: ZkSession): Promise<void> {
  try {
    if ((await port.waitForSession(session.ended)) !== session) return;
    const { children } = await port.getChildren(dir);
    for (const name of children) if (name.startsWith(prefix)) await deleteNode(port, `${dir}/${name}`, session);
  } catch {
    // the session ended (the server removes its nodes itself), or the directory went
  }
}

/**
 * Deletes our node, retrying through connection loss (backing off) while its session lives; when
 * the session is over the server removes the node itself. Resolves with the permanent error that
 * kept it from deleting the node (e.g. NO_AUTH), undefined when the node is gone. Never rejects.
 * Not an async function: the first delete is sent at once, and its reply resolves the result
 * without a promise layer in between (a release's delete is on every lock's path). With `then`,
 * resolves with what `then` makes of that outcome (one layer less again), or rejects with what it throws.
 */
export function removeNode(port: ZkPort, path: string, session: ZkSession): Promise<ZooKeeperError | undefined>;
export function removeNode<T>(
  port: ZkPort,
  path: string,
  session: ZkSession,
  then: (failure: ZooKeeperError | undefined) => T,
): Promise<T>;
export function removeNode(
  port: ZkPort,
  path: string,
  session: ZkSession,
  then: (failure: ZooKeeperError | undefined) => unknown = outcome,
): Promise<unknown> {
  let request: Promise<void> | undefined;
  try {
    request = session.ended.aborted ? undefined : port.remove(path);
  } catch (error) {
    return removeAfter(error, port, path, session).then(then);
  }
  if (!request) return Promise.resolve(undefined).then(then); // (the session is over: the node goes with it)
  // (a delete resolves with undefined: `then` takes it as "gone")
  return request.then(then as (value: void) => unknown, (error: unknown) =>
    removeAfter(error, port, path, session).then(then),
  );
}

/** The outcome as it is (removeNode without `then`). */
const outcome = (failure: ZooKeeperError | undefined): ZooKeeperError | undefined => failure;

/** {@link removeNode} after the first delete failed with `error`. Never rejects. */
async function removeAfter(
  error: unknown,
  port: ZkPort,
  path: string,
  session: ZkSession,
): Promise<ZooKeeperError | undefined> {
  let failures = 0;
  for (;;) {
    if (isNoNode(error)) return undefined;
    if (!isTransient(error)) return error as ZooKeeperError;
    failures += 1;
    await pause(failures === 1 ? 0 : Math.min(1_000, 10 * 2 ** (failures - 2)), session.ended);
    try {
      if ((await port.waitForSession(session.ended)) !== session) return undefined;
    } catch {
      return undefined;
    }
    if (session.ended.aborted) return undefined;
    try {
      await port.remove(path);
      return undefined;
    } catch (failure) {
      error = failure;
    }
  }
}

/** {@link removeNode} without the outcome. Never rejects. */
export async function deleteNode(port: ZkPort, path: string, session: ZkSession): Promise<void> {
  await removeNode(port, path, session);
}

/** Resolves after `ms`, or at once when `signal` aborts. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  if (ms <= 0 || signal.aborted) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

function ignoreNoNode(error: unknown): void {
  if (!isNoNode(error)) throw error;
}
