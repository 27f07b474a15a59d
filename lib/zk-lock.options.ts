/**
 * The module's options as ONE table. An option is a field of {@link ZkLockOptions} (its meaning,
 * and its `@default`) and an entry of {@link OPTION_RULES} (that default, and its check); the
 * compiler refuses a field without a rule and a rule without a field. The known keys, the
 * defaults, the checks and the resolved type ({@link ResolvedZkLockOptions}) all come from the
 * rules: adding an option is one field and one rule.
 */
import { InvalidOptionsError } from './errors/invalid-options.error.js';
import { InvalidLockPathError } from './errors/invalid-lock-path.error.js';
import { DEFAULT_JOBS_PATH } from './jobs/jobs-path.js';
import { validateLockPath } from './lock/lock-path.js';
import { resolveTls, type ZkTlsOption } from './connection/tls-options.js';
import {
  defaultAcl,
  parseConnectionString,
  resolveAcl,
  resolveAuth,
  validateDuration,
} from './zk-lock.option-checks.js';

export { MAX_DURATION, parseConnectionString, validateDuration } from './zk-lock.option-checks.js';

export type { ZkTlsOption, ZkTlsOptions } from './connection/tls-options.js';

/** Credentials added to the session: `digest` with `user:password`, as ZooKeeper's addAuth takes them. */
export interface ZkAuth {
  scheme: 'digest';
  /** `user:password`. Never written into lock nodes or logs. */
  credentials: string;
}

/** One ACL entry for the nodes the library creates. `perms` is a subset of `crwda`. */
export interface ZkAclEntry {
  scheme: 'world' | 'auth' | 'digest' | 'ip' | 'x509';
  /**
   * `anyone` for world, `''` for auth (the session's own identities: digest credentials, a client
   * certificate), `user:base64(sha1)` for digest, an address for ip, a client certificate's
   * subject for x509 (RFC 2253, e.g. `CN=billing,O=example`, as health and inspect show it;
   * the servers need ZooKeeper's x509 auth provider and `ssl.clientAuth=need`).
   */
  id: string;
  perms: string;
}

/** The limits of in-process coalescing (option `coalesce`). */
export interface ZkCoalesceOptions {
  /**
   * Local holders served by one ZooKeeper node before it is released (1..65536).
   * @default 32
   */
  maxHandoffs?: number;
  /**
   * Longest time (ms) one node is kept for local holders before it is released.
   * @default 100
   */
  maxHoldMs?: number;
}

/**
 * What the module and the services take. Only `connectionString` is required; a missing,
 * `undefined` or `null` option takes its `@default`.
 */
export interface ZkLockOptions {
  /** `host:port[,host:port...][/chroot]`, as ZooKeeper writes it. Port defaults to 2181. Required. */
  connectionString: string;
  /**
   * Requested session timeout in ms; the server clamps it to [2, 20] x its tickTime.
   * @default 15000
   */
  sessionTimeout?: number;
  /**
   * How long start-up (and `connect()`) waits for the first session, in ms.
   * @default 10000
   */
  connectTimeout?: number;
  /**
   * Deadline of one ZooKeeper request, in ms; after it the outcome is unknown, as after a connection loss.
   * @default 10000
   */
  operationTimeout?: number;
  /**
   * Longest random pause between two rounds of reconnect attempts over all servers, in ms.
   * @default 1000
   */
  reconnectDelay?: number;
  /**
   * How long an `acquire` waits for the lock by default, in ms (`Infinity`: no limit).
   * @default Infinity
   */
  lockTimeout?: number;
  /**
   * After a lock has been held this long (ms), watch its node so that a deletion by someone else
   * aborts the handle's signal. Shorter holds cost no extra request. `Infinity`: never.
   * @default 1000
   */
  heldLockWatchDelay?: number;
  /**
   * In-process coalescing: callers of this process that want the same lock queue in memory
   * behind ONE ZooKeeper node and the lock passes between them without a round trip, up to
   * `maxHandoffs` holders or `maxHoldMs` per node, after which the node is released so that
   * other processes get their turn. `true` uses the default limits ({@link ZkCoalesceOptions}).
   * Off: every acquisition has its own node (the node is deleted when each holder releases).
   * @default false
   */
  coalesce?: boolean | ZkCoalesceOptions;
  /**
   * At shutdown, how long (ms) running locked calls may go on before their locks are released anyway.
   * @default 10000
   */
  shutdownTimeout?: number;
  /**
   * Digest credentials added to every session.
   * @default []
   */
  auth?: ZkAuth[];
  /**
   * TLS to the servers (their `secureClientPort`), for every connection, reconnection and
   * failover of the session: `true` (Node's default CAs), Node's TLS options (`ca`, `cert` and
   * `key` for mutual TLS, `passphrase`, `servername`, `minVersion`, `rejectUnauthorized`, which
   * stays true unless set false), or a function returning them (or a Promise of them), called for
   * every new connection: read the certificate files there to pick up rotated ones without a
   * restart. Off when not given (plaintext, the servers' `clientPort`).
   */
  tls?: ZkTlsOption;
  /**
   * ACL of the nodes the library creates (only this app's credentials may delete or change them
   * when `auth` is given).
   * @default `world:anyone:crwda`; with `auth`: `auth::crwda` + `world:anyone:r`
   */
  acl?: ZkAclEntry[];
  /** A name written into lock nodes (with host and pid) so `inspect` shows who holds a lock. None by default. */
  appName?: string;
  /**
   * Connect on first use instead of during start-up.
   * @default false
   */
  lazyConnect?: boolean;
  /**
   * Log every lock event (acquired, released, lost, timed out, aborted; see `LockService.events`)
   * at debug level through Nest's Logger, context `LockService`.
   * @default false
   */
  logEvents?: boolean;
  /**
   * Parent of the default paths of scheduled jobs and elections: `@OnOneInstance()` and
   * `@WithoutOverlapping()` without a path use `<jobsPath>/<Class>.<method>`, `@LeaderElection()`
   * `<jobsPath>/<Class>`.
   * @default "/zk-lock/jobs"
   */
  jobsPath?: string;
}

/** A class for `forRootAsync({ useClass })` / `useExisting`. */
export interface ZkLockOptionsFactory {
  createZkLockOptions(): ZkLockOptions | Promise<ZkLockOptions>;
}

// ---- the rules ----

/**
 * One option's rule. `default`: the value of a missing (`undefined` or `null`) option, as its
 * `@default` documents it; a function of all the given options when it depends on others; none
 * when the option may stay unset or is required. `resolve`: checks the given (or default) value
 * and returns what the services read, or throws an {@link InvalidOptionsError} naming `option`.
 */
export interface Rule<T, Given> {
  readonly default?: T | ((given: Given) => T);
  readonly resolve: (value: unknown, option: string, given: Given) => unknown;
}

/** One rule per field of `O`, none missing and none extra. */
export type RulesOf<O> = { readonly [K in keyof O]-?: Rule<Exclude<O[K], undefined | null>, O> };

/** What a table of rules resolves to: each field is what its rule returns. */
type ResolvedBy<R> = { readonly [K in keyof R]: R[K] extends { resolve: (...args: never[]) => infer V } ? V : never };

/** A duration rule (see {@link validateDuration}). */
const duration =
  (limits: { allowZero?: boolean; allowInfinity?: boolean } = {}) =>
  (value: unknown, option: string): number =>
    validateDuration(option, value, limits);

function flag(value: unknown, option: string): boolean {
  if (typeof value !== 'boolean') throw new InvalidOptionsError(option, value, 'must be true or false');
  return value;
}

/** The rules of the coalescing limits. */
export const COALESCE_RULES = {
  maxHandoffs: {
    default: 32,
    resolve: (value: unknown, option: string): number => {
      if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 65_536) {
        throw new InvalidOptionsError(
          option,
          value,
          'must be a whole number from 1 to 65536 (local holders per ZooKeeper node)',
        );
      }
      return value;
    },
  },
  maxHoldMs: { default: 100, resolve: duration() },
} satisfies RulesOf<ZkCoalesceOptions>;

/** The rule of every option, in the order they are checked (`auth` before `acl`, which reads it). */
export const OPTION_RULES = {
  connectionString: {
    resolve: (value: unknown): string => {
      parseConnectionString(value); // throws naming the bad part
      return value as string;
    },
  },
  sessionTimeout: { default: 15_000, resolve: duration() },
  connectTimeout: { default: 10_000, resolve: duration() },
  operationTimeout: { default: 10_000, resolve: duration() },
  reconnectDelay: { default: 1_000, resolve: duration({ allowZero: true }) },
  lockTimeout: { default: Infinity, resolve: duration({ allowZero: true, allowInfinity: true }) },
  heldLockWatchDelay: { default: 1_000, resolve: duration({ allowZero: true, allowInfinity: true }) },
  coalesce: { default: false, resolve: resolveCoalesce },
  shutdownTimeout: { default: 10_000, resolve: duration({ allowZero: true }) },
  auth: { default: [], resolve: resolveAuth },
  tls: { resolve: resolveTls },
  acl: { default: defaultAcl, resolve: resolveAcl },
  appName: {
    resolve: (value: unknown, option: string): string | undefined => {
      if (value !== undefined && (typeof value !== 'string' || value.length > 100)) {
        throw new InvalidOptionsError(option, value, 'must be a string of at most 100 characters');
      }
      return value;
    },
  },
  lazyConnect: { default: false, resolve: flag },
  logEvents: { default: false, resolve: flag },
  jobsPath: {
    default: DEFAULT_JOBS_PATH,
    resolve: (value: unknown, option: string): string => {
      try {
        return validateLockPath(value, option);
      } catch (error) {
        throw new InvalidOptionsError(option, value, (error as InvalidLockPathError).rule);
      }
    },
  },
} satisfies RulesOf<ZkLockOptions>;

/** Options after defaults and validation: what the services read. Frozen. */
export interface ResolvedZkLockOptions extends ResolvedBy<typeof OPTION_RULES> {
  /** The parsed connection string. */
  readonly servers: { host: string; port: number }[];
  readonly chroot: string | undefined;
}

/** The options that have a fixed default, with it (derived from the rules). */
export const DEFAULT_OPTIONS: Readonly<Partial<Record<keyof ZkLockOptions, unknown>>> = Object.freeze(
  Object.fromEntries(
    Object.entries(OPTION_RULES as Record<string, Rule<unknown, ZkLockOptions>>)
      .filter(([, rule]) => rule.default !== undefined && typeof rule.default !== 'function')
      .map(([key, rule]) => [key, rule.default]),
  ),
);

/** Default limits of in-process coalescing (derived from the rules). */
export const DEFAULT_COALESCE = resolveTable(COALESCE_RULES, {}, 'coalesce.');

const resolvedObjects = new WeakSet<object>(); // what resolveOptions returned

/**
 * Applies defaults and checks every option once; the services only ever see the result.
 * Given options it already resolved, returns them unchanged (so the module's resolved-options
 * provider and a service that resolves what it is given share one object, checked once).
 */
export function resolveOptions(options: ZkLockOptions): ResolvedZkLockOptions {
  if (options === null || typeof options !== 'object') {
    throw new InvalidOptionsError('options', options, 'must be an object with at least connectionString');
  }
  if (resolvedObjects.has(options)) return options as ResolvedZkLockOptions;
  const resolved = resolveTable(OPTION_RULES, options, '');
  const result: ResolvedZkLockOptions = Object.freeze({
    ...resolved,
    ...parseConnectionString(resolved.connectionString),
  });
  resolvedObjects.add(result);
  return result;
}

/** Refuses unknown keys, then resolves each rule's option (given, or its default) in the rules' order. */
function resolveTable<O extends object, R extends RulesOf<O>>(rules: R, given: O, prefix: string): ResolvedBy<R> {
  const values = given as Record<string, unknown>;
  for (const key of Object.keys(values)) {
    if (!Object.hasOwn(rules, key)) throw new InvalidOptionsError(prefix + key, values[key], 'is not a known option');
  }
  const resolved: Record<string, unknown> = {};
  for (const [key, rule] of Object.entries(rules as Record<string, Rule<unknown, O>>)) {
    const fallback = rule.default;
    const value =
      fallback === undefined
        ? values[key]
        : (values[key] ?? (typeof fallback === 'function' ? (fallback as (g: O) => unknown)(given) : fallback));
    resolved[key] = rule.resolve(value, prefix + key, given);
  }
  return resolved as ResolvedBy<R>;
}

function resolveCoalesce(value: unknown, option: string): ResolvedBy<typeof COALESCE_RULES> | false {
  if (value === false) return false;
  if (value === true) return resolveTable(COALESCE_RULES, {}, `${option}.`);
  if (value === null || typeof value !== 'object') {
    throw new InvalidOptionsError(option, value, 'must be true, false or { maxHandoffs?, maxHoldMs? }');
  }
  return resolveTable(COALESCE_RULES, value, `${option}.`);
}
