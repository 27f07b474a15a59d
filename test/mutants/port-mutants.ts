/**
 * Deliberately broken locks, for tests only (issue 12's mutation checks; the chaos run's
 * `--mutant`). Nothing in lib/ knows about them: each mutant patches the methods of ONE
 * ZkConnectionService instance (the ZkPort the recipe and the handles call), so that the real,
 * unchanged recipe behaves broken on that instance only. A test that still passes on its mutant
 * does not test what it claims.
 *
 * - `no-exclusion`: listings of a lock directory show only the nodes this instance created (and
 *   other names that are not lock nodes): every contender holds as soon as its node exists.
 * - `herd`: a waiter watches the head of the queue (the lowest sequence of the last listing of
 *   that directory) instead of the node the recipe picked: one release wakes every waiter.
 * - `late-release`: remove() resolves at once; the delete is sent about 50 ms later.
 * - `flat-token`: every zxid (czxid, mzxid, pzxid) in the stats this instance returns is frozen
 *   at the first value seen for that node (for a create's own stat, for that directory): a
 *   token taken from a zxid never grows; one taken from the directory's czxid and the sequence
 *   falls back when the directory is re-created.
 * - `deaf-loss`: the sessions the recipe and the handles see are stand-ins (one per real
 *   session, same id and timeout) whose `ended` never aborts: a lost lock is never reported.
 *
 * Usage: `applyMutant(connection, 'no-exclusion')` before the first acquisition through the
 * LockService on that connection (the service calls the connection's methods, so patching the
 * instance reaches every acquisition, handle and release made through it). Returns an undo.
 */
import type { NodeStat, ZkPort, ZkSession } from '../../lib/connection/zk-port.js';

export const MUTANTS = ['no-exclusion', 'herd', 'late-release', 'flat-token', 'deaf-loss'] as const;
export type MutantName = (typeof MUTANTS)[number];

/** What each mutant breaks, in one line (for reports). */
export const MUTANT_TEXT: Record<MutantName, string> = {
  'no-exclusion': 'listings show only our own lock nodes: every contender holds at once',
  herd: 'waiters watch the head of the queue instead of their predecessor',
  'late-release': 'remove() resolves at once, the delete is sent about 50 ms later',
  'flat-token': 'zxids in stats frozen at the first value seen: fencing tokens do not grow',
  'deaf-loss': 'the sessions seen never end: a lost lock is never reported',
};

/** How late `late-release` sends the delete, in ms. */
export const LATE_RELEASE_MS = 50;

export function isMutantName(value: string): value is MutantName {
  return (MUTANTS as readonly string[]).includes(value);
}

/** The port methods a mutant may patch (all on the instance, shadowing the class's). */
type PortMethods = Pick<ZkPort, 'currentSession' | 'waitForSession' | 'create' | 'getChildren' | 'remove' | 'watch'> &
  Partial<Pick<ZkPort, 'exists' | 'getData'>>;

/** A lock, read or lease node of any client (ours, Curator's, kazoo's): marker + 10-digit sequence. */
const LOCK_NODE = /(lock-|__WRIT__|__READ__|lease-)(-?\d{10})$/;

const dirOf = (path: string) => path.slice(0, path.lastIndexOf('/')) || '/';
const nameOf = (path: string) => path.slice(path.lastIndexOf('/') + 1);

/**
 * Patches `connection` (a ZkConnectionService, or any ZkPort object) to behave as mutant `name`.
 * Returns a function that removes the patch.
 */
export function applyMutant(connection: object, name: MutantName): () => void {
  const port = connection as PortMethods & Record<string, unknown>;
  const patched: Partial<Record<keyof PortMethods, unknown>> = PATCHES[name](original(port));
  const before = new Map<string, PropertyDescriptor | undefined>();
  for (const [method, fn] of Object.entries(patched)) {
    before.set(method, Object.getOwnPropertyDescriptor(port, method));
    Object.defineProperty(port, method, { value: fn, configurable: true, writable: true, enumerable: false });
  }
  return () => {
    for (const [method, descriptor] of before) {
      if (descriptor) Object.defineProperty(port, method, descriptor);
      else delete port[method];
    }
  };
}

/** The instance's current methods, bound (so that a patch calls through to the real one). */
function original(port: PortMethods): Required<PortMethods> {
  const bind = (key: keyof PortMethods) => (port[key] as (...a: unknown[]) => unknown).bind(port);
  return {
    currentSession: bind('currentSession'),
    waitForSession: bind('waitForSession'),
    create: bind('create'),
    getChildren: bind('getChildren'),
    remove: bind('remove'),
    watch: bind('watch'),
    exists: bind('exists'),
    getData: bind('getData'),
  } as Required<PortMethods>;
}

type Patch = (real: Required<PortMethods>) => Partial<PortMethods>;

const PATCHES: Record<MutantName, Patch> = {
  'no-exclusion': noExclusion,
  herd,
  'late-release': lateRelease,
  'flat-token': flatToken,
  'deaf-loss': deafLoss,
};

function noExclusion(real: Required<PortMethods>): Partial<PortMethods> {
  /** Full paths of the lock nodes this instance made (or adopted after a lost create reply). */
  const ours = new Set<string>();
  return {
    async create(path, data, mode) {
      const created = await real.create(path, data, mode);
      ours.add(created);
      return created;
    },
    async exists(path) {
      const stat = await real.exists(path);
      // The recipe adopts a node of its attempt found after a connection loss with exists().
      if (stat && stat.ephemeralOwner !== 0n && stat.ephemeralOwner === real.currentSession()?.id) ours.add(path);
      return stat;
    },
    async getChildren(path) {
      const listing = await real.getChildren(path);
      const children = listing.children.filter((child) => !LOCK_NODE.test(child) || ours.has(`${path}/${child}`));
      return { ...listing, children };
    },
    async remove(path, version) {
      await real.remove(path, version);
      ours.delete(path);
    },
  };
}

function herd(real: Required<PortMethods>): Partial<PortMethods> {
  /** The lock nodes of the last listing of each directory. */
  const lastListing = new Map<string, string[]>();
  return {
    async getChildren(path) {
      const listing = await real.getChildren(path);
      lastListing.set(
        path,
        listing.children.filter((child) => LOCK_NODE.test(child)),
      );
      return listing;
    },
    watch(path, onChange) {
      const dir = dirOf(path);
      const listed = lastListing.get(dir);
      if (!listed || !LOCK_NODE.test(nameOf(path))) return real.watch(path, onChange);
      const sequence = (name: string) => Number(LOCK_NODE.exec(name)![2]);
      const head = listed.reduce((a, b) => (sequence(b) < sequence(a) ? b : a), nameOf(path));
      return real.watch(`${dir}/${head}`, onChange);
    },
  };
}

function lateRelease(real: Required<PortMethods>): Partial<PortMethods> {
  return {
    remove(path, version) {
      setTimeout(() => void real.remove(path, version).catch(() => undefined), LATE_RELEASE_MS);
      return Promise.resolve();
    },
  };
}

function flatToken(real: Required<PortMethods>): Partial<PortMethods> {
  const frozen = new Map<string, Pick<NodeStat, 'czxid' | 'mzxid' | 'pzxid'>>();
  const freeze = <T>(key: string, value: T): T => {
    if (!isStat(value)) return value;
    let first = frozen.get(key);
    if (!first) {
      first = { czxid: value.czxid, mzxid: value.mzxid, pzxid: value.pzxid };
      frozen.set(key, first);
    }
    return { ...value, ...first };
  };
  /** A result that is a stat, or holds one under `stat`, with its zxids frozen. */
  const frozenResult = <T>(key: string, value: T): T => {
    if (isStat(value)) return freeze(key, value);
    const stat: unknown = value && typeof value === 'object' ? (value as { stat?: unknown }).stat : undefined;
    if (isStat(stat)) return { ...value, stat: freeze(key, stat) };
    return value;
  };
  // Every method that may carry a stat, including ones the recipe may call in the future (a create
  // that returns the new node's stat): a create's stat is frozen per directory.
  const wrapped: Record<string, unknown> = {};
  for (const method of ['create', 'getChildren', 'exists', 'getData'] as const) {
    const call = real[method] as (path: string, ...rest: unknown[]) => Promise<unknown>;
    wrapped[method] = async (path: string, ...rest: unknown[]) =>
      frozenResult(method === 'create' ? `create:${dirOf(path)}` : `${method}:${path}`, await call(path, ...rest));
  }
  return wrapped;
}

function isStat(value: unknown): value is NodeStat {
  return typeof value === 'object' && value !== null && typeof (value as { czxid?: unknown }).czxid === 'bigint';
}

function deafLoss(real: Required<PortMethods>): Partial<PortMethods> {
  const standIns = new WeakMap<ZkSession, ZkSession>();
  const standIn = (session: ZkSession): ZkSession => {
    let deaf = standIns.get(session);
    if (!deaf) {
      deaf = { id: session.id, timeout: session.timeout, ended: new AbortController().signal };
      standIns.set(session, deaf);
    }
    return deaf;
  };
  return {
    currentSession() {
      const session = real.currentSession();
      return session && standIn(session);
    },
    async waitForSession(signal) {
      return standIn(await real.waitForSession(signal));
    },
  };
}
