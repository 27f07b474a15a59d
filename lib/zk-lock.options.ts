import { InvalidOptionsError } from './errors/invalid-options.error.js';
import { InvalidLockPathError } from './errors/invalid-lock-path.error.js';
import { validateLockPath } from './lock/lock-path.js';

/** Credentials added to the session: `digest` with `user:password`, as ZooKeeper's addAuth takes them. */
export interface ZkAuth {
  scheme: 'digest';
  /** `user:password`. Never written into lock nodes or logs. */
  credentials: string;
}

/** One ACL entry for the nodes the library creates. `perms` is a subset of `crwda`. */
export interface ZkAclEntry {
  scheme: 'world' | 'auth' | 'digest' | 'ip';
  /** `anyone` for world, `''` for auth (the session's own credentials), `user:base64(sha1)` for digest, an address for ip. */
  id: string;
  perms: string;
}

/** What the module and the services take. Only `connectionString` is required. */
export interface ZkLockOptions {
  /** `host:port[,host:port...][/chroot]`, as ZooKeeper writes it. Port defaults to 2181. */
  connectionString: string;
  /** Requested session timeout in ms; the server clamps it to [2, 20] x its tickTime. Default 15000. */
  sessionTimeout?: number;
  /** How long start-up (and `connect()`) waits for the first session, in ms. Default 10000. */
  connectTimeout?: number;
  /** Deadline of one ZooKeeper request, in ms; after it the outcome is unknown, as after a connection loss. Default 10000. */
  operationTimeout?: number;
  /** Longest random pause between two rounds of reconnect attempts over all servers, in ms. Default 1000. */
  reconnectDelay?: number;
  /** How long an `acquire` waits for the lock by default, in ms (`Infinity`: no limit). Default `Infinity`. */
  lockTimeout?: number;
  /**
   * After a lock has been held this long (ms), watch its node so that a deletion by someone else
   * aborts the handle's signal. Shorter holds cost no extra request. `Infinity`: never. Default 1000.
   */
  heldLockWatchDelay?: number;
  /**
   * In-process coalescing: callers of this process that want the same lock queue in memory
   * behind ONE ZooKeeper node and the lock passes between them without a round trip, up to
   * `maxHandoffs` holders (default 32) or `maxHoldMs` (default 100) per node, after which the
   * node is released so that other processes get their turn. `true` uses the defaults. Default
   * false: every acquisition has its own node (the node is deleted when each holder releases).
   */
  coalesce?: boolean | { maxHandoffs?: number; maxHoldMs?: number };
  /** At shutdown, how long (ms) running locked calls may go on before their locks are released anyway. Default 10000. */
  shutdownTimeout?: number;
  /** Digest credentials added to every session. */
  auth?: ZkAuth[];
  /**
   * ACL of the nodes the library creates. Default: `world:anyone:crwda`, or with `auth`
   * `auth::crwda` + `world:anyone:r` (only this app's credentials may delete or change them).
   */
  acl?: ZkAclEntry[];
  /** A name written into lock nodes (with host and pid) so `inspect` shows who holds a lock. */
  appName?: string;
  /** Connect on first use instead of during start-up. Default false. */
  lazyConnect?: boolean;
  /**
   * Log every lock event (acquired, released, lost, timed out, aborted; see `LockService.events`)
   * at debug level through Nest's Logger, context `LockService`. Default false.
   */
  logEvents?: boolean;
}

/** A class for `forRootAsync({ useClass })` / `useExisting`. */
export interface ZkLockOptionsFactory {
  createZkLockOptions(): ZkLockOptions | Promise<ZkLockOptions>;
}

/** Options after defaults and validation: what the services read. */
export interface ResolvedZkLockOptions extends Required<Omit<ZkLockOptions, 'auth' | 'acl' | 'appName' | 'coalesce'>> {
  /** Coalescing limits, or false when off. */
  coalesce: { maxHandoffs: number; maxHoldMs: number } | false;
  auth: ZkAuth[];
  acl: ZkAclEntry[];
  appName: string | undefined;
  /** The parsed connection string. */
  servers: { host: string; port: number }[];
  chroot: string | undefined;
}

export const DEFAULT_OPTIONS = {
  sessionTimeout: 15_000,
  connectTimeout: 10_000,
  operationTimeout: 10_000,
  reconnectDelay: 1_000,
  lockTimeout: Infinity,
  heldLockWatchDelay: 1_000,
  shutdownTimeout: 10_000,
  lazyConnect: false,
  logEvents: false,
} as const;

const HOST = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** Parses `host:port,host:port/chroot`. Throws {@link InvalidOptionsError} naming the bad part. */
export function parseConnectionString(value: unknown): Pick<ResolvedZkLockOptions, 'servers' | 'chroot'> {
  const fail = (rule: string): never => {
    throw new InvalidOptionsError('connectionString', value, rule);
  };
  if (typeof value !== 'string' || value.trim() === '') {
    return fail('must be a non-empty string such as "127.0.0.1:2181" or "zk1:2181,zk2:2181,zk3:2181/app"');
  }
  const slash = value.indexOf('/');
  const hostList = slash === -1 ? value : value.slice(0, slash);
  let chroot = slash === -1 ? undefined : value.slice(slash);
  if (chroot === '/') chroot = undefined;
  if (chroot !== undefined) {
    try {
      validateLockPath(chroot, 'chroot');
    } catch (error) {
      fail(`its chroot part ${JSON.stringify(chroot)} is not valid: ${(error as InvalidLockPathError).rule}`);
    }
  }
  const servers = hostList.split(',').map((entry) => {
    const trimmed = entry.trim();
    const colon = trimmed.lastIndexOf(':');
    const host = colon === -1 ? trimmed : trimmed.slice(0, colon);
    const portText = colon === -1 ? '2181' : trimmed.slice(colon + 1);
    if (!HOST.test(host)) fail(`"${trimmed}" is not host:port (host must be a name or an IPv4 address)`);
    const port = Number(portText);
    if (!/^\d+$/.test(portText) || port < 1 || port > 65535) {
      fail(`"${trimmed}" has port "${portText}", which must be a whole number from 1 to 65535`);
    }
    return { host, port };
  });
  return { servers, chroot };
}

/** A duration option: a number of ms, positive (or zero when `allowZero`), finite unless `allowInfinity`. */
export function validateDuration(
  option: string,
  value: unknown,
  rules: { allowZero?: boolean; allowInfinity?: boolean } = {},
): number {
  const range = `${rules.allowZero ? 'a number >= 0' : 'a number > 0'} of milliseconds${rules.allowInfinity ? ' (or Infinity)' : ''}`;
  if (typeof value !== 'number' || Number.isNaN(value))
    throw new InvalidOptionsError(option, value, `must be ${range}`);
  if (value === Infinity && rules.allowInfinity) return value;
  if (!Number.isFinite(value) || value < 0 || (value === 0 && !rules.allowZero)) {
    throw new InvalidOptionsError(option, value, `must be ${range}`);
  }
  if (value > MAX_DURATION) {
    const instead = rules.allowInfinity ? ': for no limit, pass Infinity' : '';
    throw new InvalidOptionsError(
      option,
      value,
      `must be at most ${MAX_DURATION} ms (about 24.8 days, the longest a Node.js timer can wait)${instead}`,
    );
  }
  return value;
}

/** The longest finite duration accepted: 2^31-1 ms, the most a Node.js timer can wait (longer ones fire at once). */
export const MAX_DURATION = 2 ** 31 - 1;

const PERMS = /^[crwda]+$/;

/** Applies defaults and checks every option once; the services only ever see the result. */
export function resolveOptions(options: ZkLockOptions): ResolvedZkLockOptions {
  if (options === null || typeof options !== 'object') {
    throw new InvalidOptionsError('options', options, 'must be an object with at least connectionString');
  }
  const known = new Set([
    'connectionString',
    'sessionTimeout',
    'connectTimeout',
    'operationTimeout',
    'reconnectDelay',
    'lockTimeout',
    'heldLockWatchDelay',
    'shutdownTimeout',
    'coalesce',
    'auth',
    'acl',
    'appName',
    'lazyConnect',
    'logEvents',
  ]);
  for (const key of Object.keys(options)) {
    if (!known.has(key))
      throw new InvalidOptionsError(key, (options as unknown as Record<string, unknown>)[key], 'is not a known option');
  }
  const { servers, chroot } = parseConnectionString(options.connectionString);
  const pick = <K extends keyof typeof DEFAULT_OPTIONS>(key: K) => options[key] ?? DEFAULT_OPTIONS[key];

  const auth = options.auth ?? [];
  if (!Array.isArray(auth)) {
    // Never echo what may be credentials.
    throw new InvalidOptionsError(
      'auth',
      '<hidden>',
      'must be an array of { scheme: "digest", credentials: "user:password" }',
    );
  }
  auth.forEach((entry, i) => {
    if (entry?.scheme !== 'digest') {
      throw new InvalidOptionsError(`auth[${i}].scheme`, entry?.scheme, 'must be "digest" (the only scheme supported)');
    }
    if (typeof entry.credentials !== 'string' || !/^[^:]+:.+$/.test(entry.credentials)) {
      throw new InvalidOptionsError(`auth[${i}].credentials`, '<hidden>', 'must be a string "user:password"');
    }
  });

  const acl =
    options.acl ??
    (auth.length > 0
      ? [
          { scheme: 'auth', id: '', perms: 'crwda' },
          { scheme: 'world', id: 'anyone', perms: 'r' },
        ]
      : [{ scheme: 'world', id: 'anyone', perms: 'crwda' }]);
  if (!Array.isArray(acl) || acl.length === 0)
    throw new InvalidOptionsError('acl', acl, 'must be a non-empty array of ACL entries');
  acl.forEach((entry, i) => {
    if (!['world', 'auth', 'digest', 'ip'].includes(entry?.scheme)) {
      throw new InvalidOptionsError(
        `acl[${i}].scheme`,
        entry?.scheme,
        'must be one of "world", "auth", "digest", "ip"',
      );
    }
    if (typeof entry.id !== 'string') throw new InvalidOptionsError(`acl[${i}].id`, entry.id, 'must be a string');
    if (typeof entry.perms !== 'string' || !PERMS.test(entry.perms)) {
      throw new InvalidOptionsError(
        `acl[${i}].perms`,
        entry.perms,
        'must be letters from "crwda" (create, read, write, delete, admin)',
      );
    }
  });
  if (acl.some((entry) => entry.scheme === 'auth') && auth.length === 0) {
    throw new InvalidOptionsError('acl', acl, 'uses the "auth" scheme, which needs credentials in the auth option');
  }

  if (options.appName !== undefined && (typeof options.appName !== 'string' || options.appName.length > 100)) {
    throw new InvalidOptionsError('appName', options.appName, 'must be a string of at most 100 characters');
  }
  const lazyConnect = pick('lazyConnect');
  if (typeof lazyConnect !== 'boolean')
    throw new InvalidOptionsError('lazyConnect', lazyConnect, 'must be true or false');
  const logEvents = pick('logEvents');
  if (typeof logEvents !== 'boolean') throw new InvalidOptionsError('logEvents', logEvents, 'must be true or false');

  return {
    connectionString: options.connectionString,
    servers,
    chroot,
    sessionTimeout: validateDuration('sessionTimeout', pick('sessionTimeout')),
    connectTimeout: validateDuration('connectTimeout', pick('connectTimeout')),
    operationTimeout: validateDuration('operationTimeout', pick('operationTimeout')),
    reconnectDelay: validateDuration('reconnectDelay', pick('reconnectDelay'), { allowZero: true }),
    lockTimeout: validateDuration('lockTimeout', pick('lockTimeout'), { allowZero: true, allowInfinity: true }),
    heldLockWatchDelay: validateDuration('heldLockWatchDelay', pick('heldLockWatchDelay'), {
      allowZero: true,
      allowInfinity: true,
    }),
    shutdownTimeout: validateDuration('shutdownTimeout', pick('shutdownTimeout'), { allowZero: true }),
    coalesce: resolveCoalesce(options.coalesce),
    auth,
    acl,
    appName: options.appName,
    lazyConnect,
    logEvents,
  };
}

/** Default limits of in-process coalescing. */
export const DEFAULT_COALESCE = { maxHandoffs: 32, maxHoldMs: 100 } as const;

function resolveCoalesce(value: ZkLockOptions['coalesce']): ResolvedZkLockOptions['coalesce'] {
  if (value === undefined || value === false) return false;
  if (value === true) return { ...DEFAULT_COALESCE };
  if (value === null || typeof value !== 'object') {
    throw new InvalidOptionsError('coalesce', value, 'must be true, false or { maxHandoffs?, maxHoldMs? }');
  }
  for (const key of Object.keys(value)) {
    if (key !== 'maxHandoffs' && key !== 'maxHoldMs') {
      throw new InvalidOptionsError(
        `coalesce.${key}`,
        (value as Record<string, unknown>)[key],
        'is not a known option',
      );
    }
  }
  const maxHandoffs = value.maxHandoffs ?? DEFAULT_COALESCE.maxHandoffs;
  if (typeof maxHandoffs !== 'number' || !Number.isInteger(maxHandoffs) || maxHandoffs < 1 || maxHandoffs > 65_536) {
    throw new InvalidOptionsError(
      'coalesce.maxHandoffs',
      maxHandoffs,
      'must be a whole number from 1 to 65536 (local holders per ZooKeeper node)',
    );
  }
  return {
    maxHandoffs,
    maxHoldMs: validateDuration('coalesce.maxHoldMs', value.maxHoldMs ?? DEFAULT_COALESCE.maxHoldMs),
  };
}
