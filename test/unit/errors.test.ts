/** Unit tests of the error classes: stable codes, names, inheritance, and what the messages name. */
import { describe, expect, it } from 'vitest';
import {
  InvalidLockPathError,
  InvalidOptionsError,
  LockAbortedError,
  LockLostError,
  LockTimeoutError,
  NotConnectedError,
  ZkUnavailableError,
  ZkConnectError,
  ZkLockError,
  ZooKeeperError,
  type LockLostReason,
} from '../../lib/errors/index.js';
import * as publicApi from '../../lib/index.js';

const CASES = [
  ['LockTimeoutError', LockTimeoutError, () => new LockTimeoutError('/locks/a', 500), 'ZK_LOCK_TIMEOUT'],
  ['LockAbortedError', LockAbortedError, () => new LockAbortedError('/locks/a'), 'ZK_LOCK_ABORTED'],
  ['LockLostError', LockLostError, () => new LockLostError('/locks/a', 'closed'), 'ZK_LOCK_LOST'],
  ['InvalidLockPathError', InvalidLockPathError, () => new InvalidLockPathError('x', 'rule'), 'ZK_LOCK_INVALID_PATH'],
  [
    'InvalidOptionsError',
    InvalidOptionsError,
    () => new InvalidOptionsError('sessionTimeout', -1, 'rule'),
    'ZK_LOCK_INVALID_OPTIONS',
  ],
  ['ZkConnectError', ZkConnectError, () => new ZkConnectError('zk1:2181', 1000), 'ZK_LOCK_CONNECT_FAILED'],
  ['NotConnectedError', NotConnectedError, () => new NotConnectedError('closed'), 'ZK_LOCK_NOT_CONNECTED'],
  [
    'ZkUnavailableError',
    ZkUnavailableError,
    () => new ZkUnavailableError('/locks/a', 'suspended', 'no session within 300 ms'),
    'ZK_LOCK_UNAVAILABLE',
  ],
  [
    'ZooKeeperError',
    ZooKeeperError,
    () => new ZooKeeperError('NO_NODE', 'getChildren', '/locks/a'),
    'ZK_LOCK_ZOOKEEPER',
  ],
] as const;

describe('error classes', () => {
  it.each(CASES)(
    '%s has its stable code, its class name, and extends ZkLockError and Error',
    (name, Class, make, code) => {
      const error = make();
      expect(error).toBeInstanceOf(Class);
      expect(error).toBeInstanceOf(ZkLockError);
      expect(error).toBeInstanceOf(Error);
      expect(Object.getPrototypeOf(Class.prototype)).toBe(ZkLockError.prototype);
      expect(Class.name).toBe(name);
      expect(error.name).toBe(name);
      expect(error.code).toBe(code);
      expect(String(error)).toBe(`${name}: ${error.message}`);
      expect(error.stack?.split('\n')[0]).toBe(`${name}: ${error.message}`);
      expect(Object.prototype.toString.call(error)).toBe('[object Error]');
    },
  );

  it('every code is distinct and prefixed ZK_LOCK_', () => {
    const codes = CASES.map(([, , make]) => make().code);
    expect(new Set(codes).size).toBe(CASES.length);
    for (const code of codes) expect(code).toMatch(/^ZK_LOCK_[A-Z_]+$/);
  });

  it('covers every error class of the public API', () => {
    const exported = Object.entries(publicApi)
      .filter(([, value]) => typeof value === 'function' && value.prototype instanceof ZkLockError)
      .map(([name]) => name)
      .toSorted();
    expect(exported).toEqual(CASES.map(([name]) => name).toSorted());
    expect(publicApi.ZkLockError).toBe(ZkLockError);
  });

  it('ZkLockError is the base: a subclass of Error whose name follows the concrete class', () => {
    class CustomError extends ZkLockError {
      readonly code = 'CUSTOM';
    }
    const error = new CustomError('boom', { cause: 'why' });
    expect(Object.getPrototypeOf(ZkLockError.prototype)).toBe(Error.prototype);
    expect(error.name).toBe('CustomError');
    expect(error.message).toBe('boom');
    expect(error.cause).toBe('why');
  });
});

describe('error messages', () => {
  it('LockTimeoutError names the path and the timeout', () => {
    const error = new LockTimeoutError('/locks/orders/42', 2500);
    expect(error.path).toBe('/locks/orders/42');
    expect(error.timeout).toBe(2500);
    expect(error.message).toContain('"/locks/orders/42"');
    expect(error.message).toContain('2500 ms');
    expect(error.message).toBe(
      'Timed out after 2500 ms waiting for lock "/locks/orders/42": it is held by another owner',
    );
  });

  const REASONS: [LockLostReason, string][] = [
    ['session-expired', 'the ZooKeeper session expired'],
    ['connection-lost', 'cut off from ZooKeeper for longer than the session timeout'],
    ['node-deleted', 'the lock node was deleted by someone else'],
    ['closed', 'the ZooKeeper connection was closed'],
    ['revoked', 'another owner asked for it to be released (revocation); release it'],
    ['outer-released', 'the outer holder released the lock (this handle was a nested, reentrant one)'],
  ];

  it.each(REASONS)('LockLostError for %s names the path and the reason', (reason, text) => {
    const error = new LockLostError('/locks/orders/42', reason);
    expect(error.reason).toBe(reason);
    expect(error.path).toBe('/locks/orders/42');
    expect(error.message).toBe(`Lost lock "/locks/orders/42": ${text}`);
  });

  it('LockLostError gives each reason its own message', () => {
    const messages = REASONS.map(([reason]) => new LockLostError('/p', reason).message);
    expect(new Set(messages).size).toBe(REASONS.length);
    for (const message of messages) expect(message).not.toContain('undefined');
  });

  it('ZkConnectError names the servers and the timeout, and the detail when given', () => {
    const error = new ZkConnectError('zk1:2181,zk2:2182/app', 10_000, 'ECONNREFUSED');
    expect(error.connectionString).toBe('zk1:2181,zk2:2182/app');
    expect(error.timeout).toBe(10_000);
    expect(error.message).toContain('zk1:2181,zk2:2182/app');
    expect(error.message).toContain('within 10000 ms');
    expect(error.message).toContain('(ECONNREFUSED)');
    expect(error.message).toContain('connectTimeout');

    const bare = new ZkConnectError('127.0.0.1:2181', 500);
    expect(bare.message).toBe(
      'Could not connect to ZooKeeper at 127.0.0.1:2181 within 500 ms. Is a server running there? Check connectionString and connectTimeout.',
    );
  });

  it('LockAbortedError names the path and keeps the abort reason as cause', () => {
    const reason = new Error('shutdown');
    const error = new LockAbortedError('/locks/jobs', reason);
    expect(error.path).toBe('/locks/jobs');
    expect(error.message).toContain('"/locks/jobs"');
    expect(error.message).toContain('aborted');
    expect(error.cause).toBe(reason);
  });

  it('InvalidLockPathError names the value and the rule', () => {
    const error = new InvalidLockPathError('/a//b', 'no empty segments');
    expect(error.path).toBe('/a//b');
    expect(error.rule).toBe('no empty segments');
    expect(error.message).toBe('Invalid lock path "/a//b": no empty segments');
    expect(new InvalidLockPathError(Symbol('s'), 'r').message).toBe('Invalid lock path [object Symbol]: r');
    expect(new InvalidLockPathError(10n, 'r').message).toBe('Invalid lock path 10: r');
  });

  it('InvalidOptionsError names the option, the value and the rule', () => {
    const error = new InvalidOptionsError('lockTimeout', -5, 'must be >= 0');
    expect(error.option).toBe('lockTimeout');
    expect(error.value).toBe(-5);
    expect(error.rule).toBe('must be >= 0');
    expect(error.message).toBe('Invalid option lockTimeout = -5: must be >= 0');
    expect(new InvalidOptionsError('appName', 'a"b', 'r').message).toBe('Invalid option appName = "a\\"b": r');
  });

  it('ZooKeeperError names the operation, the path and the ZooKeeper code', () => {
    const error = new ZooKeeperError('CONNECTION_LOSS', 'create', '/locks/a/_c_x-lock-', 'socket closed');
    expect(error.zkCode).toBe('CONNECTION_LOSS');
    expect(error.operation).toBe('create');
    expect(error.path).toBe('/locks/a/_c_x-lock-');
    expect(error.message).toBe('ZooKeeper create /locks/a/_c_x-lock- failed: CONNECTION_LOSS (socket closed)');
    expect(new ZooKeeperError('NO_NODE', 'remove', '/x').message).toBe('ZooKeeper remove /x failed: NO_NODE');
  });

  it('NotConnectedError carries the detail', () => {
    expect(new NotConnectedError('the module is shutting down').message).toBe(
      'No ZooKeeper connection: the module is shutting down',
    );
  });
});

describe('ZooKeeperError.is', () => {
  const noNode = new ZooKeeperError('NO_NODE', 'getChildren', '/locks/a');

  it('matches a ZooKeeperError by one of the codes given, or any ZooKeeperError without codes', () => {
    expect(ZooKeeperError.is(noNode, 'NO_NODE')).toBe(true);
    expect(ZooKeeperError.is(noNode, 'NOT_EMPTY', 'NO_NODE')).toBe(true);
    expect(ZooKeeperError.is(noNode)).toBe(true);
    expect(ZooKeeperError.is(noNode, 'NODE_EXISTS')).toBe(false);
    expect(ZooKeeperError.is(noNode, 'CONNECTION_LOSS', 'OPERATION_TIMEOUT')).toBe(false);
  });

  it.each([
    ['a plain Error', new Error('NO_NODE')],
    ['another ZkLockError', new LockTimeoutError('/locks/a', 1)],
    ['a look-alike object', { name: 'ZooKeeperError', zkCode: 'NO_NODE' }],
    ['undefined', undefined],
    ['a string', 'NO_NODE'],
  ])('is false for %s', (_, value) => {
    expect(ZooKeeperError.is(value, 'NO_NODE')).toBe(false);
    expect(ZooKeeperError.is(value)).toBe(false);
  });

  it('narrows the type', () => {
    const error: unknown = noNode;
    if (!ZooKeeperError.is(error, 'NO_NODE')) throw new Error('expected a match');
    expect(error.path).toBe('/locks/a'); // compiles: narrowed to ZooKeeperError
  });
});
