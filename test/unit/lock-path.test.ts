/** Unit tests of lock path validation and of the dynamic key encoding (with a seeded property test). */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { InvalidLockPathError } from '../../lib/errors/index.js';
import {
  encodeLockKey,
  lockPathFor,
  MAX_KEY_LENGTH,
  MAX_PATH_LENGTH,
  parentOf,
  validateLockPath,
} from '../../lib/lock/lock-path.js';

/** Runs fn, which must throw an InvalidLockPathError; returns it. */
function pathErrorOf(fn: () => unknown): InvalidLockPathError {
  let thrown: unknown;
  try {
    fn();
  } catch (error) {
    thrown = error;
  }
  expect(thrown).toBeInstanceOf(InvalidLockPathError);
  return thrown as InvalidLockPathError;
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

describe('validateLockPath', () => {
  it('limits', () => {
    expect(MAX_PATH_LENGTH).toBe(1024);
    expect(MAX_KEY_LENGTH).toBe(200);
  });

  it.each([
    '/a',
    '/locks',
    '/locks/orders/42',
    '/a-b_c.d/e:f@g,h=i+j',
    '/...',
    '/a/.b/..c/d.',
    '/a b',
    '/locks/中文/キー',
    '/x\u00a0y',
    '/x\uf900y',
    '/x\uffefy',
    '/zookeeperx',
    '/zoo/zookeeper',
    '/%2F/%2E%2E',
    `/${'a'.repeat(MAX_PATH_LENGTH - 1)}`,
  ])('accepts %j and returns it unchanged', (path) => {
    expect(validateLockPath(path)).toBe(path);
  });

  it.each([
    ['the number 42', 42],
    ['null', null],
    ['undefined', undefined],
    ['an object', { path: '/a' }],
  ])('rejects %s: not a string', (_what, path) => {
    const error = pathErrorOf(() => validateLockPath(path));
    expect(error.rule).toBe('a lock path must be a string');
    expect(error.path).toBe(path);
    expect(error.message).toMatch(/^Invalid lock path .+: a lock path must be a string$/);
  });

  const RULES: [string, string, string][] = [
    ['no leading "/"', 'locks/a', 'a lock path must start with "/"'],
    ['empty string', '', 'a lock path must start with "/"'],
    ['root itself', '/', 'a lock path must name a node below the root, not "/" itself'],
    ['trailing "/"', '/locks/a/', 'a lock path must not end with "/"'],
    ['only slashes', '//', 'a lock path must not end with "/"'],
    ['leading "//"', '//locks', 'a lock path must not contain an empty segment ("//")'],
    ['inner "//"', '/locks//a', 'a lock path must not contain an empty segment ("//")'],
    ['"." segment', '/locks/./a', 'a lock path must not contain a "." segment'],
    ['"." last segment', '/locks/.', 'a lock path must not contain a "." segment'],
    ['".." segment', '/locks/../etc', 'a lock path must not contain a ".." segment'],
    ['".." first segment', '/..', 'a lock path must not contain a ".." segment'],
    ['"/zookeeper"', '/zookeeper', '"/zookeeper" is reserved by the ZooKeeper server'],
    ['below "/zookeeper"', '/zookeeper/quota', '"/zookeeper" is reserved by the ZooKeeper server'],
    ['1025 characters', `/${'a'.repeat(MAX_PATH_LENGTH)}`, 'a lock path must be at most 1024 characters'],
  ];

  it.each(RULES)('rejects %s (%j)', (_what, path, rule) => {
    const error = pathErrorOf(() => validateLockPath(path));
    expect(error.rule).toBe(rule);
    expect(error.path).toBe(path);
    expect(error.code).toBe('ZK_LOCK_INVALID_PATH');
    const shown = path.length > 80 ? `${path.slice(0, 80)}...(${path.length} chars)` : path;
    expect(error.message).toBe(`Invalid lock path ${JSON.stringify(shown)}: ${rule}`);
  });

  it('gives each rule its own message', () => {
    const rules = [
      pathErrorOf(() => validateLockPath(1)).rule,
      ...RULES.map(([, path]) => pathErrorOf(() => validateLockPath(path)).rule),
      pathErrorOf(() => validateLockPath('/a\u0000')).rule,
    ];
    // the 14 rows above break 8 rules; with "not a string" and "forbidden character": 10 distinct rules.
    expect(new Set(rules).size).toBe(10);
  });

  it.each([
    ['U+0000', '\u0000', '0000'],
    ['U+0001', '\u0001', '0001'],
    ['U+001F', '\u001f', '001f'],
    ['U+007F', '\u007f', '007f'],
    ['U+0080', '\u0080', '0080'],
    ['U+009F', '\u009f', '009f'],
    ['U+D800 (lone high surrogate)', '\ud800', 'd800'],
    ['U+DBFF', '\udbff', 'dbff'],
    ['U+DC00 (lone low surrogate)', '\udc00', 'dc00'],
    ['U+DFFF', '\udfff', 'dfff'],
    ['U+E000 (private use)', '\ue000', 'e000'],
    ['U+F8FF', '\uf8ff', 'f8ff'],
    ['U+FFF0', '\ufff0', 'fff0'],
    ['U+FFFD', '\ufffd', 'fffd'],
    ['U+FFFF', '\uffff', 'ffff'],
    ['an astral character (surrogate pair)', '\u{1F600}', 'd83d'],
  ])('rejects the forbidden character %s', (_what, char, hex) => {
    for (const path of [`/a${char}b`, `/locks/${char}`, `/${char}/x`]) {
      const error = pathErrorOf(() => validateLockPath(path));
      expect(error.rule).toBe(`a lock path must not contain the character U+${hex}, which ZooKeeper rejects`);
      expect(error.message).toContain(`U+${hex}`);
    }
  });

  it('names what it checks in the rule', () => {
    expect(pathErrorOf(() => validateLockPath('x', 'chroot')).rule).toBe('a chroot must start with "/"');
    expect(pathErrorOf(() => validateLockPath('/a//b', 'base path')).rule).toBe(
      'a base path must not contain an empty segment ("//")',
    );
  });

  it('shortens a long path in the message', () => {
    const path = `/${'b'.repeat(2000)}`;
    const error = pathErrorOf(() => validateLockPath(path));
    expect(error.message).toContain(`...(${path.length} chars)`);
    expect(error.message.length).toBeLessThan(300);
    expect(error.path).toBe(path);
  });
});

describe('encodeLockKey', () => {
  it.each([
    ['../x', '%2E%2E%2Fx'],
    ['../etc', '%2E%2E%2Fetc'],
    ['a/b', 'a%2Fb'],
    ['/', '%2F'],
    ['%2F', '%252F'],
    ['.', '%2E'],
    ['..', '%2E%2E'],
    ['...', '%2E%2E%2E'],
    ['~', '%7E'],
    ['!', '%21'],
    ['!D800', '%21D800'],
    ['a b', 'a%20b'],
    ['order-42_A', 'order-42_A'],
    ['\u0000', '%00'],
    ['a\u0000b', 'a%00b'],
    ['\u001f\u007f', '%1F%7F'],
    ['é', '%C3%A9'],
    ['中文', '%E4%B8%AD%E6%96%87'],
    ['\u{1F600}', '%F0%9F%98%80'],
    ['\u{10FFFF}', '%F4%8F%BF%BF'],
    ['\ud800', '!D800'],
    ['\udfff', '!DFFF'],
    ['a\udc00b', 'a!DC00b'],
    ['\udc00\ud800', '!DC00!D800'],
    ['\ud83d\ude00', '%F0%9F%98%80'],
    ['\uffff', '%EF%BF%BF'],
  ])('encodes %j as %j', (key, expected) => {
    expect(encodeLockKey(key)).toBe(expected);
    expect(validateLockPath(`/locks/${expected}`)).toBe(`/locks/${expected}`);
  });

  it.each([
    [42, '42'],
    [0, '0'],
    [-7, '-7'],
    [1.5, '1%2E5'],
    [1e21, '1e%2B21'],
  ])('encodes the number %j as %j', (key, expected) => {
    expect(encodeLockKey(key)).toBe(expected);
  });

  it.each([
    ['NaN', Number.NaN],
    ['Infinity', Infinity],
    ['-Infinity', -Infinity],
    ['a bigint', 42n],
    ['null', null],
    ['undefined', undefined],
    ['an object', { id: 1 }],
    ['an array', ['a']],
    ['a boolean', true],
  ])('rejects %s', (_what, key) => {
    const error = pathErrorOf(() => encodeLockKey(key));
    expect(error.rule).toBe('a lock key must be a string or a finite number');
    expect(error.path).toBe(key);
  });

  it('rejects the empty string', () => {
    const error = pathErrorOf(() => encodeLockKey(''));
    expect(error.rule).toBe('a lock key must not be empty');
    expect(error.message).toBe('Invalid lock path "": a lock key must not be empty');
  });

  it('keeps an encoding of exactly 200 characters whole', () => {
    const key = 'k'.repeat(MAX_KEY_LENGTH);
    expect(encodeLockKey(key)).toBe(key);
  });

  it('shortens a 201-character encoding to a prefix + "~" + SHA-256 of the key', () => {
    const key = 'k'.repeat(MAX_KEY_LENGTH + 1);
    expect(encodeLockKey(key)).toBe(`${'k'.repeat(135)}~${sha256(key)}`);
  });

  it.each([
    ['plain', 'a'.repeat(300)],
    ['slashes', '/'.repeat(100)],
    ['slashes after one char (cut inside an escape)', `x${'/'.repeat(100)}`],
    ['slashes after two chars (cut inside an escape)', `xy${'/'.repeat(100)}`],
    ['CJK', '中'.repeat(400)],
    ['emoji', '\u{1F600}'.repeat(300)],
    ['lone surrogates', `ab${'\ud800'.repeat(80)}`],
    ['huge', 'z'.repeat(100_000)],
  ])('shortens a long %s key to <= 200 chars ending in "~" + 64 hex', (_what, key) => {
    const encoded = encodeLockKey(key);
    expect(encoded.length).toBeLessThanOrEqual(MAX_KEY_LENGTH);
    expect(encoded).toMatch(/~[0-9a-f]{64}$/);
    expect(encoded.endsWith(`~${sha256(key)}`)).toBe(true);
    expect(encoded.indexOf('~')).toBe(encoded.length - 65);
    // no dangling half of a percent escape before the hash
    expect(encoded.slice(0, -65)).not.toMatch(/%[0-9A-F]?$/);
    expect(validateLockPath(`/locks/${encoded}`)).toBe(`/locks/${encoded}`);
  });

  it('gives distinct long keys with the same prefix distinct encodings', () => {
    const a = `${'p'.repeat(300)}a`;
    const b = `${'p'.repeat(300)}b`;
    expect(encodeLockKey(a).slice(0, -64)).toBe(encodeLockKey(b).slice(0, -64));
    expect(encodeLockKey(a)).not.toBe(encodeLockKey(b));
  });

  it('never confuses a long key with a short key that looks like its encoding', () => {
    const long = `${'q'.repeat(133)}${'/'.repeat(50)}`;
    const lookalike = encodeLockKey(long); // 198 characters, and a valid key in its own right
    expect(lookalike).toHaveLength(198);
    expect(encodeLockKey(lookalike)).not.toBe(encodeLockKey(long));
    expect(encodeLockKey(lookalike)).toBe(lookalike.replace('~', '%7E'));
  });
});

/** mulberry32: a tiny seeded PRNG, so the property test is the same on every run. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomKey(random: () => number): string {
  const int = (min: number, max: number) => min + Math.floor(random() * (max - min + 1));
  const pick = <T>(items: readonly T[]) => items[int(0, items.length - 1)];
  // half short (most stay below the 200-char limit, so the plain encoding is tested), half up to 400
  const length = random() < 0.5 ? int(1, 24) : int(1, 400);
  let key = '';
  while (key.length < length) {
    const kind = int(0, 9);
    if (kind <= 2) key += String.fromCharCode(int(0x20, 0x7e));
    else if (kind === 3) key += pick(['/', '.', '%', '~', '!', '..', '../', '%2F', '!D800', '-', '_']);
    else if (kind === 4) key += String.fromCharCode(pick([int(0x00, 0x1f), int(0x7f, 0x9f)]));
    else if (kind === 5) {
      let unit = int(0xa0, 0xffff);
      if (unit >= 0xd800 && unit <= 0xdfff) unit -= 0x800;
      key += String.fromCharCode(unit);
    } else if (kind === 6) key += String.fromCodePoint(int(0x10000, 0x10ffff));
    else if (kind === 7) key += String.fromCharCode(int(0xd800, 0xdfff));
    else key += pick(['a', 'Z', '0', '9', 'x', 'lock', 'ab']);
  }
  return key.slice(0, length);
}

/** Inverse of the short encoding: proves it loses nothing. */
function decode(encoded: string): string {
  let out = '';
  let bytes: number[] = [];
  const flush = () => {
    out += Buffer.from(bytes).toString('utf8');
    bytes = [];
  };
  for (let i = 0; i < encoded.length;) {
    const char = encoded[i];
    if (char === '%') {
      bytes.push(Number.parseInt(encoded.slice(i + 1, i + 3), 16));
      i += 3;
    } else if (char === '!') {
      flush();
      out += String.fromCharCode(Number.parseInt(encoded.slice(i + 1, i + 5), 16));
      i += 5;
    } else {
      bytes.push(char.charCodeAt(0));
      i += 1;
    }
  }
  flush();
  return out;
}

describe('encodeLockKey property test (seeded)', () => {
  const COUNT = 20_000;

  it(`encodes ${COUNT} random keys as distinct, valid, single segments`, () => {
    const random = mulberry32(0x5eed_2024);
    const keys: string[] = [];
    for (let i = 0; i < COUNT; i++) keys.push(randomKey(random));
    // hand-picked keys that resemble encodings of other keys
    keys.push('%2E', '%252E', '!D800', '%21D800', '\ud800', '~', '%7E', 'a~b', 'a%7Eb', '.', '..', '/', '%', '!');

    const byEncoding = new Map<string, string>();
    const collisions: [string, string, string][] = [];
    const failures: string[] = [];
    let shortened = 0;
    let plain = 0;
    for (const key of keys) {
      const encoded = encodeLockKey(key);
      if (encodeLockKey(key) !== encoded) failures.push(`not deterministic: ${JSON.stringify(key)}`);
      if (encoded.length === 0 || encoded.length > MAX_KEY_LENGTH)
        failures.push(`length ${encoded.length}: ${encoded}`);
      if (encoded.includes('/')) failures.push(`contains "/": ${encoded}`);
      if (encoded === '.' || encoded === '..') failures.push(`relative segment: ${encoded}`);
      if (!/^[A-Za-z0-9_%!~-]+$/.test(encoded)) failures.push(`bad character: ${encoded}`);
      try {
        validateLockPath(`/locks/${encoded}`);
        const path = lockPathFor('/locks/orders', key);
        if (parentOf(path) !== '/locks/orders') failures.push(`escapes its base: ${path}`);
      } catch (error) {
        failures.push(`invalid path for ${encoded}: ${String(error)}`);
      }
      if (encoded.includes('~')) {
        shortened++;
        if (!/^[^~]*~[0-9a-f]{64}$/.test(encoded)) failures.push(`bad shortened form: ${encoded}`);
      } else {
        plain++;
        if (decode(encoded) !== key) failures.push(`does not decode back: ${encoded}`);
      }
      const previous = byEncoding.get(encoded);
      if (previous !== undefined && previous !== key) collisions.push([encoded, previous, key]);
      byEncoding.set(encoded, key);
    }

    expect(failures.slice(0, 10)).toEqual([]);
    expect(collisions.slice(0, 10)).toEqual([]);
    // the generator must exercise both forms, or the test proves little
    expect(plain).toBeGreaterThan(5_000);
    expect(shortened).toBeGreaterThan(5_000);
    expect(new Set(keys).size).toBeGreaterThan(COUNT * 0.95);
  });

  it('the generator produces every kind of character it promises', () => {
    const random = mulberry32(7);
    const all = Array.from({ length: 2_000 }, () => randomKey(random)).join('');
    expect(all).toMatch(/[/]/);
    expect(all).toMatch(/[.]/);
    expect(all).toMatch(/[%]/);
    expect(all).toMatch(/[~]/);
    expect(all).toMatch(/[!]/);
    expect(Array.from(all).some((char) => char.charCodeAt(0) < 0x20)).toBe(true);
    expect(all).toMatch(/[\u00a0-\ud7ff\ue000-\uffff]/);
    expect(all).toMatch(/[\ud800-\udbff][\udc00-\udfff]/);
    // a lone surrogate: a high one not followed by a low one, or a low one not preceded by a high one
    expect(all).toMatch(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/);
  });
});

describe('lockPathFor and parentOf', () => {
  it('keeps a traversal key under its base', () => {
    const path = lockPathFor('/locks/orders', '../../etc');
    expect(path).toBe('/locks/orders/%2E%2E%2F%2E%2E%2Fetc');
    expect(path.startsWith('/locks/orders/')).toBe(true);
    expect(parentOf(path)).toBe('/locks/orders');
  });

  it.each([
    ['a/b', '/locks/orders/a%2Fb'],
    ['.', '/locks/orders/%2E'],
    [42, '/locks/orders/42'],
  ])('joins %j', (key, expected) => {
    expect(lockPathFor('/locks/orders', key)).toBe(expected);
  });

  it.each([
    ['locks', 'a lock path must start with "/"'],
    ['/locks/', 'a lock path must not end with "/"'],
    ['/locks/../x', 'a lock path must not contain a ".." segment'],
    ['/zookeeper', '"/zookeeper" is reserved by the ZooKeeper server'],
  ])('rejects the base %j', (base, rule) => {
    expect(pathErrorOf(() => lockPathFor(base, 'k')).rule).toBe(rule);
  });

  it('rejects a bad key', () => {
    expect(pathErrorOf(() => lockPathFor('/locks', '')).rule).toBe('a lock key must not be empty');
  });

  it('rejects a join longer than 1024 characters', () => {
    const base = `/${'b'.repeat(900)}`;
    expect(pathErrorOf(() => lockPathFor(base, 'k'.repeat(200))).rule).toBe(
      'a lock path must be at most 1024 characters',
    );
  });

  it.each([
    ['/a/b', '/a'],
    ['/a/b/c', '/a/b'],
    ['/a', '/'],
    ['/locks/orders/%2E%2E%2Fetc', '/locks/orders'],
  ])('parentOf(%j) is %j', (path, parent) => {
    expect(parentOf(path)).toBe(parent);
  });
});
