/** Unit tests of option resolution: defaults, the connection string parser and one error per bad option. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { InvalidOptionsError } from '../../lib/errors/index.js';
import {
  DEFAULT_COALESCE,
  DEFAULT_OPTIONS,
  COALESCE_RULES,
  OPTION_RULES,
  parseConnectionString,
  resolveOptions,
  validateDuration,
  type ZkLockOptions,
} from '../../lib/zk-lock.options.js';

const BASE = { connectionString: 'zk1:2181' };

/** resolveOptions with values the types would not allow. */
function resolveRaw(options: unknown) {
  return resolveOptions(options as ZkLockOptions);
}

/** Runs fn, which must throw; returns what it threw. */
function thrownBy(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected the call to throw, but it returned');
}

/** Runs fn, which must throw an InvalidOptionsError; returns it. */
function optionErrorOf(fn: () => unknown): InvalidOptionsError {
  const error = thrownBy(fn);
  expect(error).toBeInstanceOf(InvalidOptionsError);
  return error as InvalidOptionsError;
}

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** An InvalidOptionsError that names the option, shows the value and states the rule. */
function invalidOption(option: string, shownValue: string, rule: string) {
  return {
    name: 'InvalidOptionsError',
    code: 'ZK_LOCK_INVALID_OPTIONS',
    option,
    rule: expect.stringContaining(rule),
    message: expect.stringMatching(
      new RegExp(`^${escapeRegExp(`Invalid option ${option} = ${shownValue}: `)}.*${escapeRegExp(rule)}`, 's'),
    ),
  };
}

describe('resolveOptions: defaults', () => {
  const defaults = resolveOptions({ connectionString: '127.0.0.1:2181' });

  it.each([
    ['sessionTimeout', 15_000],
    ['connectTimeout', 10_000],
    ['operationTimeout', 10_000],
    ['reconnectDelay', 1_000],
    ['lockTimeout', Infinity],
    ['heldLockWatchDelay', 1_000],
    ['shutdownTimeout', 10_000],
    ['coalesce', false],
    ['lazyConnect', false],
    ['logEvents', false],
    ['auth', []],
    ['acl', [{ scheme: 'world', id: 'anyone', perms: 'crwda' }]],
    ['appName', undefined],
    ['chroot', undefined],
    ['servers', [{ host: '127.0.0.1', port: 2181 }]],
    ['connectionString', '127.0.0.1:2181'],
  ] as const)('%s defaults to %j', (key, expected) => {
    expect(defaults[key]).toEqual(expected);
  });

  it('has exactly the documented keys', () => {
    expect(Object.keys(defaults).toSorted()).toEqual(
      [
        'acl',
        'appName',
        'auth',
        'chroot',
        'coalesce',
        'connectTimeout',
        'connectionString',
        'heldLockWatchDelay',
        'jobsPath',
        'lazyConnect',
        'lockTimeout',
        'logEvents',
        'operationTimeout',
        'reconnectDelay',
        'servers',
        'sessionTimeout',
        'shutdownTimeout',
        'tls',
      ].toSorted(),
    );
  });

  it('DEFAULT_OPTIONS holds the documented values', () => {
    expect(DEFAULT_OPTIONS).toEqual({
      sessionTimeout: 15_000,
      connectTimeout: 10_000,
      operationTimeout: 10_000,
      reconnectDelay: 1_000,
      lockTimeout: Infinity,
      heldLockWatchDelay: 1_000,
      coalesce: false,
      shutdownTimeout: 10_000,
      auth: [],
      lazyConnect: false,
      logEvents: false,
      jobsPath: '/zk-lock/jobs',
    });
    expect(DEFAULT_COALESCE).toEqual({ maxHandoffs: 32, maxHoldMs: 100 });
  });

  it.each([
    ['sessionTimeout', 4_000],
    ['connectTimeout', 2_500],
    ['operationTimeout', 1_234],
    ['reconnectDelay', 0],
    ['reconnectDelay', 250],
    ['lockTimeout', 0],
    ['lockTimeout', 30_000],
    ['lockTimeout', Infinity],
    ['heldLockWatchDelay', 0],
    ['heldLockWatchDelay', 250],
    ['heldLockWatchDelay', Infinity],
    ['shutdownTimeout', 0],
    ['shutdownTimeout', 2_500],
    ['lazyConnect', true],
    ['logEvents', true],
    ['appName', 'billing'],
    ['appName', 'x'.repeat(100)],
  ] as const)('keeps an explicit %s of %j', (key, value) => {
    expect(resolveOptions({ ...BASE, [key]: value })[key]).toBe(value);
  });

  it('treats an explicit undefined like a missing option', () => {
    const resolved = resolveOptions({
      ...BASE,
      sessionTimeout: undefined,
      lazyConnect: undefined,
      lockTimeout: undefined,
    });
    expect(resolved.sessionTimeout).toBe(15_000);
    expect(resolved.lazyConnect).toBe(false);
    expect(resolved.lockTimeout).toBe(Infinity);
  });

  it('without auth, the default ACL is world:anyone:crwda', () => {
    expect(resolveOptions(BASE).acl).toEqual([{ scheme: 'world', id: 'anyone', perms: 'crwda' }]);
  });

  it('with auth, the default ACL is auth::crwda + world:anyone:r', () => {
    const resolved = resolveOptions({ ...BASE, auth: [{ scheme: 'digest', credentials: 'alice:pw' }] });
    expect(resolved.acl).toEqual([
      { scheme: 'auth', id: '', perms: 'crwda' },
      { scheme: 'world', id: 'anyone', perms: 'r' },
    ]);
    expect(resolved.auth).toEqual([{ scheme: 'digest', credentials: 'alice:pw' }]);
  });

  it('keeps an explicit ACL, including the auth scheme when auth is given', () => {
    const acl = [
      { scheme: 'auth', id: '', perms: 'cdrwa' },
      { scheme: 'ip', id: '10.0.0.1', perms: 'r' },
      { scheme: 'digest', id: 'bob:abc=', perms: 'rw' },
    ] as const;
    const resolved = resolveOptions({
      ...BASE,
      auth: [{ scheme: 'digest', credentials: 'alice:pw' }],
      acl: acl.map((entry) => ({ ...entry })),
    });
    expect(resolved.acl).toEqual(acl);
  });
});

describe('the options table', () => {
  const source = readFileSync(new URL('../../lib/zk-lock.options.ts', import.meta.url), 'utf8');

  /** The fields of `interface name` in the source, in order, each with its `@default` text (if any). */
  function documentedFields(name: string): Map<string, string | undefined> {
    const start = source.indexOf(`export interface ${name} {`);
    expect(start).toBeGreaterThanOrEqual(0);
    const body = source.slice(start, source.indexOf('\n}\n', start));
    const fields = new Map<string, string | undefined>();
    for (const [, doc, field] of body.matchAll(/\/\*\*((?:(?!\*\/)[\s\S])*)\*\/\s*(\w+)\??:/g)) {
      fields.set(field, /@default\s+(.+)/.exec(doc)?.[1].trim());
    }
    return fields;
  }

  /** How a fixed default is written after `@default`. */
  const shown = (value: unknown) => (typeof value === 'number' ? String(value) : JSON.stringify(value));

  it.each([
    ['ZkLockOptions', OPTION_RULES],
    ['ZkCoalesceOptions', COALESCE_RULES],
  ] as const)(
    "%s: one rule per documented field, in the same order, and each @default is the rule's",
    (name, rules) => {
      const fields = documentedFields(name);
      const inWords = expect.any(String);
      expect([...fields.keys()]).toEqual(Object.keys(rules));
      for (const [field, rule] of Object.entries(rules) as [string, { default?: unknown }][]) {
        // No default: no tag. A default computed from other options: a tag in words. Else the value.
        const expected =
          rule.default === undefined ? undefined : typeof rule.default === 'function' ? inWords : shown(rule.default);
        expect(fields.get(field), `${field}'s @default`).toEqual(expected);
      }
    },
  );

  it('resolving the resolved options returns the same, frozen object (checked once)', () => {
    const resolved = resolveOptions({ ...BASE, sessionTimeout: 4_000 });
    expect(resolveOptions(resolved)).toBe(resolved);
    expect(Object.isFrozen(resolved)).toBe(true);
    // A look-alike that resolveOptions did not make is checked like any options object.
    expect(optionErrorOf(() => resolveRaw({ ...resolved }))).toMatchObject({ option: 'servers' });
  });

  it('a null option with a default takes the default; one without is checked as given', () => {
    const resolved = resolveRaw({ ...BASE, sessionTimeout: null, lazyConnect: null, coalesce: null, acl: null });
    expect(resolved).toMatchObject({ sessionTimeout: 15_000, lazyConnect: false, coalesce: false });
    expect(resolved.acl).toEqual([{ scheme: 'world', id: 'anyone', perms: 'crwda' }]);
    expect(optionErrorOf(() => resolveRaw({ ...BASE, appName: null }))).toMatchObject({ option: 'appName' });
  });

  it('returns copies of the auth and acl arrays (the default ones are not shared between resolutions)', () => {
    const auth = [{ scheme: 'digest', credentials: 'alice:pw' }] as const;
    const resolved = resolveOptions({ ...BASE, auth: [...auth] });
    expect(resolved.auth).toEqual(auth);
    expect(resolveOptions(BASE).auth).not.toBe(resolveOptions(BASE).auth);
  });
});

describe('parseConnectionString', () => {
  it.each([
    ['127.0.0.1:2181', [{ host: '127.0.0.1', port: 2181 }], undefined],
    ['localhost', [{ host: 'localhost', port: 2181 }], undefined],
    ['zk-1.example.com:1', [{ host: 'zk-1.example.com', port: 1 }], undefined],
    ['zk1:65535', [{ host: 'zk1', port: 65535 }], undefined],
    [
      'zk1:2181,zk2:2182,zk3:2183',
      [
        { host: 'zk1', port: 2181 },
        { host: 'zk2', port: 2182 },
        { host: 'zk3', port: 2183 },
      ],
      undefined,
    ],
    [
      'zk1:2181,zk2:2182,zk3/app/locks',
      [
        { host: 'zk1', port: 2181 },
        { host: 'zk2', port: 2182 },
        { host: 'zk3', port: 2181 },
      ],
      '/app/locks',
    ],
    [
      ' zk1:2181 , zk2 /app',
      [
        { host: 'zk1', port: 2181 },
        { host: 'zk2', port: 2181 },
      ],
      '/app',
    ],
    [
      '10.0.0.1:2181,10.0.0.2:2181/a',
      [
        { host: '10.0.0.1', port: 2181 },
        { host: '10.0.0.2', port: 2181 },
      ],
      '/a',
    ],
  ])('parses %j', (input, servers, chroot) => {
    expect(parseConnectionString(input)).toEqual({ servers, chroot });
    const resolved = resolveOptions({ connectionString: input });
    expect(resolved.servers).toEqual(servers);
    expect(resolved.chroot).toBe(chroot);
    expect(resolved.connectionString).toBe(input);
  });

  it('a chroot of "/" means no chroot', () => {
    // parseConnectionString's own last step maps "/" to undefined, so "/" must not be rejected before it.
    expect(parseConnectionString('zk1:2181/')).toEqual({ servers: [{ host: 'zk1', port: 2181 }], chroot: undefined });
    expect(parseConnectionString('zk1:2181,zk2:2182/')).toEqual({
      servers: [
        { host: 'zk1', port: 2181 },
        { host: 'zk2', port: 2182 },
      ],
      chroot: undefined,
    });
    expect(resolveOptions({ connectionString: 'zk1:2181/' }).chroot).toBeUndefined();
  });

  const NON_EMPTY = 'must be a non-empty string';
  it.each([
    ['a missing value', undefined, 'undefined'],
    ['null', null, 'null'],
    ['an empty string', '', '""'],
    ['a blank string', '   ', '"   "'],
    ['a number', 2181, '2181'],
    ['an array', ['zk1:2181'], '[object Array]'],
  ])('rejects %s', (_what, value, shown) => {
    expect(optionErrorOf(() => parseConnectionString(value))).toMatchObject(
      invalidOption('connectionString', shown, NON_EMPTY),
    );
    expect(optionErrorOf(() => resolveRaw({ connectionString: value }))).toMatchObject(
      invalidOption('connectionString', shown, NON_EMPTY),
    );
  });

  it('rejects an options object without connectionString', () => {
    expect(optionErrorOf(() => resolveRaw({}))).toMatchObject(
      invalidOption('connectionString', 'undefined', NON_EMPTY),
    );
  });

  it.each([
    ['bad_host:2181', '"bad_host:2181" is not host:port'],
    ['-zk:2181', '"-zk:2181" is not host:port'],
    ['zk-:2181', '"zk-:2181" is not host:port'],
    [':2181', '":2181" is not host:port'],
    ['zk1:2181,', '"" is not host:port'],
    ['zk1:2181,,zk2:2181', '"" is not host:port'],
    ['zk 1:2181', '"zk 1:2181" is not host:port'],
    ['zk1:2181:2182', '"zk1:2181:2182" is not host:port'],
    ['/app', '"" is not host:port'],
  ])('rejects the bad host in %j', (input, rule) => {
    expect(optionErrorOf(() => resolveRaw({ connectionString: input }))).toMatchObject(
      invalidOption('connectionString', JSON.stringify(input), rule),
    );
  });

  it.each([
    ['zk1:0', '0'],
    ['zk1:70000', '70000'],
    ['zk1:65536', '65536'],
    ['zk1:abc', 'abc'],
    ['zk1:', ''],
    ['zk1:-1', '-1'],
    ['zk1:1.5', '1.5'],
    ['zk1:+2181', '+2181'],
    ['zk1:2181,zk2:0/app', '0'],
  ])('rejects the port in %j', (input, port) => {
    const entry = input.split('/')[0].split(',').at(-1);
    expect(optionErrorOf(() => resolveRaw({ connectionString: input }))).toMatchObject(
      invalidOption(
        'connectionString',
        JSON.stringify(input),
        `"${entry}" has port "${port}", which must be a whole number from 1 to 65535`,
      ),
    );
  });

  it.each([
    ['zk1:2181//', '//', 'must not end with "/"'],
    ['zk1:2181//app', '//app', 'must not contain an empty segment ("//")'],
    ['zk1:2181/app//x', '/app//x', 'must not contain an empty segment ("//")'],
    ['zk1:2181/..', '/..', 'must not contain a ".." segment'],
    ['zk1:2181/app/../x', '/app/../x', 'must not contain a ".." segment'],
    ['zk1:2181/.', '/.', 'must not contain a "." segment'],
    ['zk1:2181/app/', '/app/', 'must not end with "/"'],
    ['zk1:2181/zookeeper', '/zookeeper', '"/zookeeper" is reserved'],
    ['zk1:2181/a\u0001b', '/a\u0001b', 'must not contain the character U+0001'],
  ])('rejects the chroot of %j', (input, chroot, rule) => {
    const error = optionErrorOf(() => resolveRaw({ connectionString: input }));
    expect(error).toMatchObject(
      invalidOption(
        'connectionString',
        JSON.stringify(input),
        `its chroot part ${JSON.stringify(chroot)} is not valid: `,
      ),
    );
    expect(error.rule).toContain(rule);
    expect(error.rule).toContain('chroot');
  });
});

describe('validateDuration', () => {
  it('returns valid values unchanged', () => {
    expect(validateDuration('x', 1)).toBe(1);
    expect(validateDuration('x', 0.5)).toBe(0.5);
    expect(validateDuration('x', 0, { allowZero: true })).toBe(0);
    expect(validateDuration('x', Infinity, { allowInfinity: true })).toBe(Infinity);
  });

  it.each([
    [0, {}, '0', 'must be a number > 0 of milliseconds'],
    [Infinity, {}, 'Infinity', 'must be a number > 0 of milliseconds'],
    [Infinity, { allowZero: true }, 'Infinity', 'must be a number >= 0 of milliseconds'],
    [-Infinity, { allowInfinity: true }, '-Infinity', 'must be a number > 0 of milliseconds (or Infinity)'],
    [
      Number.NaN,
      { allowInfinity: true, allowZero: true },
      'NaN',
      'must be a number >= 0 of milliseconds (or Infinity)',
    ],
    [-0.001, { allowZero: true }, '-0.001', 'must be a number >= 0 of milliseconds'],
    ['5', {}, '"5"', 'must be a number > 0 of milliseconds'],
  ])('rejects %j with %j', (value, rules, shown, rule) => {
    expect(optionErrorOf(() => validateDuration('myTimeout', value, rules))).toMatchObject(
      invalidOption('myTimeout', shown, rule),
    );
  });
});

describe('durations longer than a Node.js timer can wait (2^31-1 ms)', () => {
  const THIRTY_DAYS = 30 * 24 * 3600 * 1000;

  it.each([
    'sessionTimeout',
    'connectTimeout',
    'operationTimeout',
    'reconnectDelay',
    'lockTimeout',
    'heldLockWatchDelay',
    'shutdownTimeout',
  ])('%s of 30 days is refused, naming the limit; 2^31-1 ms is accepted', (option) => {
    const error = optionErrorOf(() => resolveRaw({ ...BASE, [option]: THIRTY_DAYS }));
    expect(error).toMatchObject({ option, value: THIRTY_DAYS });
    expect(error.rule).toContain('at most 2147483647 ms');
    expect(resolveRaw({ ...BASE, [option]: 2 ** 31 - 1 })[option as 'sessionTimeout']).toBe(2 ** 31 - 1);
  });

  it('where Infinity is allowed, the message says to use it', () => {
    expect(optionErrorOf(() => validateDuration('timeout', THIRTY_DAYS, { allowInfinity: true })).rule).toContain(
      'pass Infinity',
    );
    expect(optionErrorOf(() => validateDuration('shutdownTimeout', THIRTY_DAYS)).rule).not.toContain('Infinity');
  });

  it('coalesce.maxHoldMs of 30 days is refused', () => {
    expect(optionErrorOf(() => resolveRaw({ ...BASE, coalesce: { maxHoldMs: THIRTY_DAYS } }))).toMatchObject({
      option: 'coalesce.maxHoldMs',
    });
  });
});

describe('resolveOptions: durations', () => {
  const rejected: [unknown, string][] = [
    [-1, '-1'],
    [-Infinity, '-Infinity'],
    [Number.NaN, 'NaN'],
    ['1000', '"1000"'],
    [true, 'true'],
    [{}, '[object Object]'],
  ];

  describe.each(['sessionTimeout', 'connectTimeout', 'operationTimeout'])('%s', (option) => {
    it.each([...rejected, [0, '0'], [Infinity, 'Infinity']])('rejects %j', (value, shown) => {
      expect(optionErrorOf(() => resolveRaw({ ...BASE, [option]: value }))).toMatchObject(
        invalidOption(option, shown, 'must be a number > 0 of milliseconds'),
      );
    });

    it('accepts a small positive number', () => {
      expect(resolveRaw({ ...BASE, [option]: 1 })[option as 'sessionTimeout']).toBe(1);
    });
  });

  describe('reconnectDelay', () => {
    it('accepts 0', () => {
      expect(resolveOptions({ ...BASE, reconnectDelay: 0 }).reconnectDelay).toBe(0);
    });

    it.each([...rejected, [Infinity, 'Infinity']])('rejects %j', (value, shown) => {
      expect(optionErrorOf(() => resolveRaw({ ...BASE, reconnectDelay: value }))).toMatchObject(
        invalidOption('reconnectDelay', shown, 'must be a number >= 0 of milliseconds'),
      );
    });
  });

  describe('lockTimeout', () => {
    it.each([0, 1, Infinity])('accepts %j', (value) => {
      expect(resolveOptions({ ...BASE, lockTimeout: value }).lockTimeout).toBe(value);
    });

    it.each(rejected)('rejects %j', (value, shown) => {
      expect(optionErrorOf(() => resolveRaw({ ...BASE, lockTimeout: value }))).toMatchObject(
        invalidOption('lockTimeout', shown, 'must be a number >= 0 of milliseconds (or Infinity)'),
      );
    });
  });

  describe('heldLockWatchDelay', () => {
    it.each([0, 1, Infinity])('accepts %j', (value) => {
      expect(resolveOptions({ ...BASE, heldLockWatchDelay: value }).heldLockWatchDelay).toBe(value);
    });

    it.each(rejected)('rejects %j', (value, shown) => {
      expect(optionErrorOf(() => resolveRaw({ ...BASE, heldLockWatchDelay: value }))).toMatchObject(
        invalidOption('heldLockWatchDelay', shown, 'must be a number >= 0 of milliseconds (or Infinity)'),
      );
    });
  });

  describe('coalesce', () => {
    it.each([
      [undefined, false],
      [false, false],
      [true, { maxHandoffs: 32, maxHoldMs: 100 }],
      [{}, { maxHandoffs: 32, maxHoldMs: 100 }],
      [
        { maxHandoffs: 1, maxHoldMs: 5 },
        { maxHandoffs: 1, maxHoldMs: 5 },
      ],
      [{ maxHandoffs: 65_536 }, { maxHandoffs: 65_536, maxHoldMs: 100 }],
    ])('%j resolves to %j', (value, expected) => {
      expect(resolveOptions({ ...BASE, coalesce: value }).coalesce).toEqual(expected);
    });

    it.each([
      ['yes', 'coalesce', 'must be true, false or { maxHandoffs?, maxHoldMs? }'],
      [{ maxHandoffs: 0 }, 'coalesce.maxHandoffs', 'must be a whole number from 1 to 65536'],
      [{ maxHandoffs: 65_537 }, 'coalesce.maxHandoffs', 'must be a whole number from 1 to 65536'],
      [{ maxHandoffs: 1.5 }, 'coalesce.maxHandoffs', 'must be a whole number from 1 to 65536'],
      [{ maxHoldMs: -1 }, 'coalesce.maxHoldMs', 'must be a number > 0 of milliseconds'],
      [{ maxHops: 3 }, 'coalesce.maxHops', 'is not a known option'],
    ])('rejects %j naming %s', (value, option, rule) => {
      const error = optionErrorOf(() => resolveRaw({ ...BASE, coalesce: value }));
      expect(error).toMatchObject({ option });
      expect((error as Error).message).toContain(rule);
    });
  });

  describe('shutdownTimeout', () => {
    it.each([0, 1, 60_000])('accepts %j', (value) => {
      expect(resolveOptions({ ...BASE, shutdownTimeout: value }).shutdownTimeout).toBe(value);
    });

    it('rejects Infinity: shutdown must end', () => {
      expect(optionErrorOf(() => resolveRaw({ ...BASE, shutdownTimeout: Infinity }))).toMatchObject(
        invalidOption('shutdownTimeout', 'Infinity', 'must be a number >= 0 of milliseconds'),
      );
    });
  });
});

describe('resolveOptions: other options', () => {
  it.each([
    [null, 'null'],
    [undefined, 'undefined'],
    ['zk1:2181', '"zk1:2181"'],
    [42, '42'],
  ])('rejects options %j that are not an object', (value, shown) => {
    expect(optionErrorOf(() => resolveRaw(value))).toMatchObject(
      invalidOption('options', shown, 'must be an object with at least connectionString'),
    );
  });

  it.each([
    ['sessionTimout', 5_000, '5000'],
    ['connectionstring', 'zk1:2181', '"zk1:2181"'],
    ['retries', 3, '3'],
  ])('rejects the unknown option %s', (key, value, shown) => {
    expect(optionErrorOf(() => resolveRaw({ ...BASE, [key]: value }))).toMatchObject(
      invalidOption(key, shown, 'is not a known option'),
    );
  });

  describe('auth', () => {
    const SECRET = 's3cret-Pa55';

    it.each(['ip', 'world', 'sasl', 'DIGEST', undefined])(
      'rejects scheme %j without showing the credentials',
      (scheme) => {
        const error = optionErrorOf(() => resolveRaw({ ...BASE, auth: [{ scheme, credentials: `alice:${SECRET}` }] }));
        expect(error).toMatchObject(
          invalidOption(
            'auth[0].scheme',
            scheme === undefined ? 'undefined' : JSON.stringify(scheme),
            'must be "digest"',
          ),
        );
        expect(error.message).not.toContain(SECRET);
        expect(error.message).not.toContain('alice');
        expect(JSON.stringify(error)).not.toContain(SECRET);
      },
    );

    it('names the index of the bad entry', () => {
      const error = optionErrorOf(() =>
        resolveRaw({
          ...BASE,
          auth: [
            { scheme: 'digest', credentials: 'bob:pw' },
            { scheme: 'ip', credentials: `alice:${SECRET}` },
          ],
        }),
      );
      expect(error).toMatchObject(invalidOption('auth[1].scheme', '"ip"', 'must be "digest"'));
      expect(error.message).not.toContain(SECRET);
    });

    it.each([`alice${SECRET}`, `:${SECRET}`, 'alice:', '', 42, undefined])(
      'rejects credentials %j without showing them',
      (credentials) => {
        const error = optionErrorOf(() => resolveRaw({ ...BASE, auth: [{ scheme: 'digest', credentials }] }));
        expect(error).toMatchObject(
          invalidOption('auth[0].credentials', '"<hidden>"', 'must be a string "user:password"'),
        );
        expect(error.value).toBe('<hidden>');
        expect(error.message).not.toContain(SECRET);
        expect(error.message).not.toContain('alice');
        expect(JSON.stringify(error)).not.toContain(SECRET);
      },
    );

    it('accepts a password containing ":"', () => {
      expect(resolveOptions({ ...BASE, auth: [{ scheme: 'digest', credentials: 'alice:a:b' }] }).auth).toHaveLength(1);
    });

    it.each([
      ['a bare "user:password" string', `alice:${SECRET}`],
      ['a single entry instead of an array', { scheme: 'digest', credentials: `alice:${SECRET}` }],
    ])('rejects auth given as %s without showing the credentials', (_what, auth) => {
      const error = thrownBy(() => resolveRaw({ ...BASE, auth }));
      expect(error).toBeInstanceOf(InvalidOptionsError);
      expect((error as InvalidOptionsError).option).toBe('auth');
      expect((error as InvalidOptionsError).rule).toContain('must be an array');
      expect((error as Error).message).not.toContain(SECRET);
      expect(JSON.stringify(error)).not.toContain(SECRET);
    });
  });

  describe('acl', () => {
    const world = (perms: unknown) => ({ scheme: 'world', id: 'anyone', perms });

    it.each([
      ['crwdx', '"crwdx"'],
      ['', '""'],
      ['CRWDA', '"CRWDA"'],
      ['r w', '"r w"'],
      [31, '31'],
      [undefined, 'undefined'],
    ])('rejects perms %j', (perms, shown) => {
      expect(optionErrorOf(() => resolveRaw({ ...BASE, acl: [world(perms)] }))).toMatchObject(
        invalidOption('acl[0].perms', shown, 'must be letters from "crwda"'),
      );
    });

    it('names the index of the bad entry', () => {
      expect(optionErrorOf(() => resolveRaw({ ...BASE, acl: [world('r'), world('q')] }))).toMatchObject(
        invalidOption('acl[1].perms', '"q"', 'must be letters from "crwda"'),
      );
    });

    it.each([
      ['sasl', '"sasl"'],
      ['World', '"World"'],
      [undefined, 'undefined'],
    ])('rejects scheme %j', (scheme, shown) => {
      expect(optionErrorOf(() => resolveRaw({ ...BASE, acl: [{ scheme, id: 'anyone', perms: 'r' }] }))).toMatchObject(
        invalidOption('acl[0].scheme', shown, 'must be one of "world", "auth", "digest", "ip"'),
      );
    });

    it('rejects an entry that is not an object', () => {
      expect(optionErrorOf(() => resolveRaw({ ...BASE, acl: [null] }))).toMatchObject(
        invalidOption('acl[0].scheme', 'undefined', 'must be one of'),
      );
    });

    it('rejects a non-string id', () => {
      expect(optionErrorOf(() => resolveRaw({ ...BASE, acl: [{ scheme: 'ip', id: 10, perms: 'r' }] }))).toMatchObject(
        invalidOption('acl[0].id', '10', 'must be a string'),
      );
    });

    it.each([
      ['an empty array', [], '[object Array]'],
      ['an object', { scheme: 'world', id: 'anyone', perms: 'r' }, '[object Object]'],
      ['a string', 'world:anyone:crwda', '"world:anyone:crwda"'],
    ])('rejects %s', (_what, acl, shown) => {
      expect(optionErrorOf(() => resolveRaw({ ...BASE, acl }))).toMatchObject(
        invalidOption('acl', shown, 'must be a non-empty array of ACL entries'),
      );
    });

    it('rejects the auth scheme without auth credentials', () => {
      expect(
        optionErrorOf(() => resolveRaw({ ...BASE, acl: [{ scheme: 'auth', id: '', perms: 'crwda' }] })),
      ).toMatchObject(
        invalidOption('acl', '[object Array]', 'uses the "auth" scheme, which needs credentials in the auth option'),
      );
      expect(
        optionErrorOf(() =>
          resolveRaw({ ...BASE, auth: [], acl: [world('r'), { scheme: 'auth', id: '', perms: 'crwda' }] }),
        ),
      ).toMatchObject(invalidOption('acl', '[object Array]', 'uses the "auth" scheme'));
    });
  });

  describe('appName', () => {
    it('rejects a name longer than 100 characters, showing a shortened value and the length', () => {
      const error = optionErrorOf(() => resolveRaw({ ...BASE, appName: 'n'.repeat(101) }));
      expect(error).toMatchObject(
        invalidOption(
          'appName',
          JSON.stringify(`${'n'.repeat(80)}...(101 chars)`),
          'must be a string of at most 100 characters',
        ),
      );
      expect(error.value).toBe('n'.repeat(101));
    });

    it.each([
      [42, '42'],
      [null, 'null'],
      [['app'], '[object Array]'],
    ])('rejects the non-string %j', (appName, shown) => {
      expect(optionErrorOf(() => resolveRaw({ ...BASE, appName }))).toMatchObject(
        invalidOption('appName', shown, 'must be a string of at most 100 characters'),
      );
    });
  });

  describe('lazyConnect', () => {
    it.each([
      ['yes', '"yes"'],
      ['true', '"true"'],
      [1, '1'],
      [0, '0'],
    ])('rejects %j', (lazyConnect, shown) => {
      expect(optionErrorOf(() => resolveRaw({ ...BASE, lazyConnect }))).toMatchObject(
        invalidOption('lazyConnect', shown, 'must be true or false'),
      );
    });
  });

  describe('logEvents', () => {
    it.each([
      ['debug', '"debug"'],
      [1, '1'],
      ['false', '"false"'],
    ])('rejects %j', (logEvents, shown) => {
      expect(optionErrorOf(() => resolveRaw({ ...BASE, logEvents }))).toMatchObject(
        invalidOption('logEvents', shown, 'must be true or false'),
      );
    });
  });
});

describe('jobsPath', () => {
  it('defaults to /zk-lock/jobs and takes a valid lock path', () => {
    expect(resolveRaw(BASE).jobsPath).toBe('/zk-lock/jobs');
    expect(resolveRaw({ ...BASE, jobsPath: '/custom/jobs' }).jobsPath).toBe('/custom/jobs');
  });

  it.each([['relative/jobs'], ['/trailing/'], [42]])('refuses %j, naming the option', (value) => {
    expect(optionErrorOf(() => resolveRaw({ ...BASE, jobsPath: value }))).toMatchObject({ option: 'jobsPath' });
  });
});
