/**
 * The checks of the module options that are more than a line (see zk-lock.options.ts, the table):
 * durations, the connection string, auth and acl. Each throws InvalidOptionsError naming the
 * option, the value and the rule.
 */
import { InvalidOptionsError } from './errors/invalid-options.error.js';
import type { InvalidLockPathError } from './errors/invalid-lock-path.error.js';
import { validateLockPath } from './lock/lock-path.js';
import type { ResolvedZkLockOptions, ZkAclEntry, ZkAuth, ZkLockOptions } from './zk-lock.options.js';

/** The longest finite duration accepted: 2^31-1 ms, the most a Node.js timer can wait (longer ones fire at once). */
export const MAX_DURATION = 2 ** 31 - 1;

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

export function resolveAuth(value: unknown, option: string): ZkAuth[] {
  if (!Array.isArray(value)) {
    // Never echo what may be credentials.
    throw new InvalidOptionsError(
      option,
      '<hidden>',
      'must be an array of { scheme: "digest", credentials: "user:password" }',
    );
  }
  value.forEach((entry: Partial<ZkAuth> | null | undefined, i) => {
    if (entry?.scheme !== 'digest') {
      throw new InvalidOptionsError(
        `${option}[${i}].scheme`,
        entry?.scheme,
        'must be "digest" (the only scheme supported)',
      );
    }
    if (typeof entry.credentials !== 'string' || !/^[^:]+:.+$/.test(entry.credentials)) {
      throw new InvalidOptionsError(`${option}[${i}].credentials`, '<hidden>', 'must be a string "user:password"');
    }
  });
  return [...(value as ZkAuth[])];
}

export const hasAuth = (given: ZkLockOptions): boolean => Array.isArray(given.auth) && given.auth.length > 0;

export function defaultAcl(given: ZkLockOptions): ZkAclEntry[] {
  return hasAuth(given)
    ? [
        { scheme: 'auth', id: '', perms: 'crwda' },
        { scheme: 'world', id: 'anyone', perms: 'r' },
      ]
    : [{ scheme: 'world', id: 'anyone', perms: 'crwda' }];
}

const PERMS = /^[crwda]+$/;

export function resolveAcl(value: unknown, option: string, given: ZkLockOptions): ZkAclEntry[] {
  if (!Array.isArray(value) || value.length === 0)
    throw new InvalidOptionsError(option, value, 'must be a non-empty array of ACL entries');
  value.forEach((entry: Partial<ZkAclEntry> | null | undefined, i) => {
    if (!['world', 'auth', 'digest', 'ip', 'x509'].includes(entry?.scheme as string)) {
      throw new InvalidOptionsError(
        `${option}[${i}].scheme`,
        entry?.scheme,
        'must be one of "world", "auth", "digest", "ip", "x509"',
      );
    }
    if (typeof entry!.id !== 'string')
      throw new InvalidOptionsError(`${option}[${i}].id`, entry!.id, 'must be a string');
    if (typeof entry!.perms !== 'string' || !PERMS.test(entry!.perms)) {
      throw new InvalidOptionsError(
        `${option}[${i}].perms`,
        entry!.perms,
        'must be letters from "crwda" (create, read, write, delete, admin)',
      );
    }
  });
  const entries = value as ZkAclEntry[];
  // A client certificate is an identity of the session too (the servers' x509 provider adds it).
  if (entries.some((entry) => entry.scheme === 'auth') && !hasAuth(given) && !given.tls) {
    throw new InvalidOptionsError(
      option,
      value,
      'uses the "auth" scheme, which needs credentials in the auth option (or a client certificate in tls)',
    );
  }
  return [...entries];
}
