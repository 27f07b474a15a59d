import { createHash } from 'node:crypto';
import { InvalidLockPathError } from '../errors/invalid-lock-path.error.js';

/** Longest lock path we accept, in characters (ZooKeeper itself is bounded only by its 1 MB packet limit). */
export const MAX_PATH_LENGTH = 1024;
/** Longest encoded dynamic key; longer keys are shortened with a hash suffix. */
export const MAX_KEY_LENGTH = 200;

// Characters the ZooKeeper server refuses in a path (PathUtils.validatePath).
// eslint-disable-next-line no-control-regex
const FORBIDDEN = /[\u0000-\u001f\u007f-\u009f\ud800-\uf8ff\ufff0-\uffff]/;

/**
 * Checks a lock path against ZooKeeper's rules and ours, and returns it unchanged.
 * Throws {@link InvalidLockPathError} naming the value and the first rule it breaks.
 */
export function validateLockPath(path: unknown, what = 'lock path'): string {
  if (typeof path === 'string' && valid.has(path)) return path; // the hot path locks the same few paths
  const fail = (rule: string): never => {
    throw new InvalidLockPathError(path, rule);
  };
  if (typeof path !== 'string') return fail(`a ${what} must be a string`);
  if (!path.startsWith('/')) fail(`a ${what} must start with "/"`);
  if (path === '/') fail(`a ${what} must name a node below the root, not "/" itself`);
  if (path.length > MAX_PATH_LENGTH) fail(`a ${what} must be at most ${MAX_PATH_LENGTH} characters`);
  if (path.endsWith('/')) fail(`a ${what} must not end with "/"`);
  const forbidden = FORBIDDEN.exec(path);
  if (forbidden) {
    const hex = forbidden[0].charCodeAt(0).toString(16).padStart(4, '0');
    fail(`a ${what} must not contain the character U+${hex}, which ZooKeeper rejects`);
  }
  const segments = path.slice(1).split('/');
  for (const segment of segments) {
    if (segment === '') fail(`a ${what} must not contain an empty segment ("//")`);
    if (segment === '.' || segment === '..') fail(`a ${what} must not contain a "${segment}" segment`);
  }
  if (segments[0] === 'zookeeper') fail(`"/zookeeper" is reserved by the ZooKeeper server`);
  if (valid.size >= VALID_CACHE_SIZE) valid.clear();
  valid.add(path);
  return path;
}
/** Paths that passed validateLockPath lately (bounded: cleared when full). */
const valid = new Set<string>();
const VALID_CACHE_SIZE = 4096;

/**
 * Encodes any string as ONE safe path segment, for dynamic lock keys built from user input.
 *
 * Every character outside `[A-Za-z0-9_-]` is percent-encoded (UTF-8; a lone surrogate, which has
 * no UTF-8 form, becomes `!` + its 4 hex digits), so `/`, `.`, `..`, `%` and
 * control characters can never form a separator, a relative segment or a forbidden character, and
 * distinct keys give distinct segments. An encoding longer than {@link MAX_KEY_LENGTH} is cut and
 * ends with `~` + the SHA-256 of the key (`~` never appears otherwise, so this stays distinct).
 *
 * @example encodeLockKey('../etc') === '%2E%2E%2Fetc'
 */
export function encodeLockKey(key: unknown): string {
  if (typeof key === 'number' && Number.isFinite(key)) key = String(key);
  if (typeof key !== 'string') {
    throw new InvalidLockPathError(key, 'a lock key must be a string or a finite number');
  }
  if (key === '') throw new InvalidLockPathError(key, 'a lock key must not be empty');
  const encoded = encodeSegment(key);
  if (encoded.length <= MAX_KEY_LENGTH) return encoded;
  const digest = createHash('sha256').update(key).digest('hex');
  return `${encoded.slice(0, MAX_KEY_LENGTH - 65).replace(/%[0-9A-F]?$/, '')}~${digest}`;
}

/** Joins a validated base path and an encoded key: `/locks/orders` + `a/b` -> `/locks/orders/a%2Fb`. */
export function lockPathFor(base: string, key: unknown): string {
  return validateLockPath(`${validateLockPath(base)}/${encodeLockKey(key)}`);
}

/** Parent of a path (`/a/b` -> `/a`, `/a` -> `/`). */
export function parentOf(path: string): string {
  const i = path.lastIndexOf('/');
  return i <= 0 ? '/' : path.slice(0, i);
}

const SAFE = /[A-Za-z0-9_-]/;

function encodeSegment(key: string): string {
  let out = '';
  for (const char of key) {
    if (SAFE.test(char)) {
      out += char;
      continue;
    }
    const unit = char.charCodeAt(0);
    if (char.length === 1 && unit >= 0xd800 && unit <= 0xdfff) {
      out += `!${unit.toString(16).toUpperCase()}`;
      continue;
    }
    for (const byte of Buffer.from(char, 'utf8')) out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}
