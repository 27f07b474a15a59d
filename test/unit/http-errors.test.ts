/**
 * The one mapping of the library's errors to HTTP answers (lib/declarative/http-errors.ts), shared by
 * the @DistributedLock interceptor and ZkLockExceptionFilter: 409 busy, 503 outage, 400 the
 * client's input, and the app's own bugs unchanged (Nest answers 500 and logs them); and the
 * declared key and path functions: a result of the wrong type is the app's bug, named.
 */
import 'reflect-metadata';
import { BadRequestException, HttpException, ServiceUnavailableException } from '@nestjs/common';
import { describe, expect, it } from 'vitest';
import { lockErrorToHttp } from '../../lib/declarative/http-errors.js';
import { LockBusyException } from '../../lib/declarative/lock-busy.exception.js';
import { createLockSpec, resolveLockPath, type LockCall } from '../../lib/declarative/lock-spec.js';
import {
  InvalidLockPathError,
  InvalidOptionsError,
  LockLostError,
  LockTimeoutError,
  NotConnectedError,
  ZkConnectError,
  ZkUnavailableError,
  ZooKeeperError,
} from '../../lib/errors/index.js';
import { encodeLockKey, validateLockPath } from '../../lib/lock/lock-path.js';

/** The error `fn` throws. */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('did not throw');
}

function status(error: unknown): number | 'unchanged' {
  const mapped = lockErrorToHttp(error);
  if (mapped === error) return 'unchanged';
  expect(mapped).toBeInstanceOf(HttpException);
  expect((mapped as HttpException).cause).toBe(error);
  return (mapped as HttpException).getStatus();
}

describe('lockErrorToHttp', () => {
  it('a busy lock is 409 with the body the interceptor always gave', () => {
    const error = new LockTimeoutError('/locks/a', 200);
    const mapped = lockErrorToHttp(error);
    expect(mapped).toBeInstanceOf(LockBusyException);
    expect((mapped as LockBusyException).getResponse()).toEqual({
      statusCode: 409,
      error: 'Conflict',
      message: 'Lock "/locks/a" is busy: not acquired within 200 ms',
      lock: '/locks/a',
      code: 'ZK_LOCK_TIMEOUT',
    });
  });

  it.each([
    ['ZkUnavailableError', new ZkUnavailableError('/locks/a', 'suspended', 'no session within 300 ms')],
    ['NotConnectedError', new NotConnectedError('the module is shutting down')],
    ['ZkConnectError', new ZkConnectError('zk1:2181', 500, 'refused by every server')],
    ['LockLostError', new LockLostError('/locks/a', 'session-expired')],
    ['ZooKeeperError', new ZooKeeperError('NO_AUTH', 'create', '/locks/a')],
  ])('%s (an outage, never "busy") is 503 with the message', (_, error) => {
    expect(status(error)).toBe(503);
    expect((lockErrorToHttp(error) as ServiceUnavailableException).message).toBe(error.message);
  });

  it.each([
    ['an empty key', () => encodeLockKey('')],
    ['a path with ".."', () => validateLockPath('/locks/../etc')],
    ['a path too long', () => validateLockPath(`/${'x'.repeat(2000)}`)],
  ])('a string the rules refuse (%s) is the client input: 400', (_, make) => {
    const error = thrown(make);
    expect(error).toBeInstanceOf(InvalidLockPathError);
    expect(status(error)).toBe(400);
    expect((lockErrorToHttp(error) as BadRequestException).message).toBe((error as Error).message);
  });

  it.each([
    ['an undefined key', () => encodeLockKey(undefined)],
    ['an object key', () => encodeLockKey({ id: 1 })],
    ['a NaN key', () => encodeLockKey(Number.NaN)],
    ['an undefined path', () => validateLockPath(undefined)],
    ['a number as path', () => validateLockPath(42)],
  ])("anything else the app computed (%s) is the app's bug: unchanged, so Nest answers 500 and logs it", (_, make) => {
    const error = thrown(make);
    expect(error).toBeInstanceOf(InvalidLockPathError);
    expect(status(error)).toBe('unchanged');
  });

  it("an option that breaks a rule is the app's bug: unchanged", () => {
    expect(status(new InvalidOptionsError('leases', 3, 'another caller of the path uses 2'))).toBe('unchanged');
  });

  it('errors that are not the library’s pass unchanged', () => {
    const error = new TypeError('boom');
    expect(lockErrorToHttp(error)).toBe(error);
    const http = new BadRequestException('from the handler');
    expect(lockErrorToHttp(http)).toBe(http);
  });
});

describe('@DistributedLock key and path functions', () => {
  const call = (request: unknown): LockCall => ({ args: [], instance: {}, method: 'OrdersController#charge', request });

  it.each([
    ['undefined (request.params.orderId on an :id route)', ({ request }: LockCall) => request.params.orderId],
    ['null', () => null],
    ['an object', () => ({ id: 1 })],
    ['NaN', () => Number.NaN],
    ['a boolean', () => true],
  ])(
    "a key function that returns %s is the app's bug: an InvalidOptionsError naming the decorator, the method and the value",
    (_, key) => {
      const spec = createLockSpec('/locks/orders', { key }, 'OrdersController#charge');
      const error = thrown(() => resolveLockPath(spec, call({ params: { id: '42' } })));
      expect(error).toBeInstanceOf(InvalidOptionsError);
      expect((error as Error).message).toMatch(/^Invalid option @DistributedLock key of OrdersController#charge = /);
      expect((error as Error).message).toContain('must return a string or a finite number');
      expect(status(error)).toBe('unchanged');
    },
  );

  it('the value is shown: undefined', () => {
    const spec = createLockSpec('/locks/orders', { key: () => undefined }, 'OrdersController#charge');
    expect((thrown(() => resolveLockPath(spec, call({}))) as Error).message).toContain('= undefined:');
  });

  it('a key the encoder refuses (an empty string) is the client input: InvalidLockPathError, 400', () => {
    const spec = createLockSpec('/locks/orders', { key: () => '' }, 'OrdersController#charge');
    const error = thrown(() => resolveLockPath(spec, call({})));
    expect(error).toBeInstanceOf(InvalidLockPathError);
    expect(status(error)).toBe(400);
  });

  it('strings and finite numbers are keys', () => {
    expect(resolveLockPath(createLockSpec('/locks/orders', { key: () => 'a/b' }, 'C#m'), call({}))).toBe(
      '/locks/orders/a%2Fb',
    );
    expect(resolveLockPath(createLockSpec('/locks/orders', { key: () => 7 }, 'C#m'), call({}))).toBe('/locks/orders/7');
  });

  it.each([
    ['undefined', () => undefined],
    ['an empty array', () => []],
    ['an array with undefined', () => ['/locks/a', undefined]],
  ])("a path function that returns %s is the app's bug: InvalidOptionsError naming the method", (_, path) => {
    const spec = createLockSpec(path as never, {}, 'AccountsService#transfer');
    const error = thrown(() => resolveLockPath(spec, call({})));
    expect(error).toBeInstanceOf(InvalidOptionsError);
    expect((error as Error).message).toContain('@DistributedLock path of AccountsService#transfer');
    expect(status(error)).toBe('unchanged');
  });

  it('a path function that returns a string the rules refuse is input: InvalidLockPathError, 400', () => {
    const spec = createLockSpec(() => '/locks/../x', {}, 'C#m');
    const error = thrown(() => resolveLockPath(spec, call({})));
    expect(error).toBeInstanceOf(InvalidLockPathError);
    expect(status(error)).toBe(400);
  });
});
