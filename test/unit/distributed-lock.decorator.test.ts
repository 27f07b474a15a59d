/** Unit tests of @DistributedLock's decoration-time behaviour (no ZooKeeper, no application). */
import 'reflect-metadata';
import { Get, SetMetadata } from '@nestjs/common';
import { INTERCEPTORS_METADATA, PATH_METADATA } from '@nestjs/common/constants.js';
import { describe, expect, it } from 'vitest';
import {
  DistributedLock,
  DistributedLockInterceptor,
  InvalidLockPathError,
  InvalidOptionsError,
  NotConnectedError,
} from '../../lib/index.js';
import { lastValueFrom, of } from 'rxjs';
import { createLockSpec } from '../../lib/declarative/lock-spec.js';
import { LockRunner } from '../../lib/declarative/lock-runner.js';
import type { LockService } from '../../lib/index.js';
import { DISTRIBUTED_LOCK_METADATA } from '../../lib/zk-lock.constants.js';

class Reports {
  @Get('rebuild')
  @DistributedLock('/locks/reports', { timeout: 50 })
  @SetMetadata('custom', 'kept')
  async rebuild(): Promise<string> {
    return 'rebuilt';
  }
}

describe('@DistributedLock', () => {
  const method = Object.getOwnPropertyDescriptor(Reports.prototype, 'rebuild')!.value as (
    ...args: unknown[]
  ) => unknown;

  it('wraps the method, keeping its name and the metadata of decorators below and above it', () => {
    expect(method.name).toBe('rebuild');
    expect(Reflect.getMetadata('custom', method)).toBe('kept');
    expect(Reflect.getMetadata(PATH_METADATA, method)).toBe('rebuild');
    expect(Reflect.getMetadata(INTERCEPTORS_METADATA, method)).toEqual([DistributedLockInterceptor]);
    expect(Reflect.getMetadata(DISTRIBUTED_LOCK_METADATA, method)).toMatchObject({
      path: '/locks/reports',
      acquire: { timeout: 50 },
      method: 'Reports#rebuild',
    });
  });

  it('keeps the acquire options it was given (checked, frozen), without key and onTimeout', () => {
    const key = () => 'k';
    const spec = createLockSpec(
      '/locks/x',
      { key, timeout: 0, reentrant: false, mode: 'write', leases: 3, revocable: true, onTimeout: (e) => e },
      'C#m',
    );
    expect(spec.acquire).toEqual({ timeout: 0, reentrant: false, mode: 'write', leases: 3, revocable: true });
    expect(Object.isFrozen(spec.acquire)).toBe(true);
    expect(spec.key).toBe(key);
    expect(createLockSpec('/locks/x', {}, 'C#m').acquire).toEqual({});
  });

  it("the runner passes the spec's acquire options on whole, with the call's signal", async () => {
    const asked: unknown[][] = [];
    const handle = { path: '/locks/x', kind: 'write', release: async () => undefined };
    const locks = {
      acquire: async (...args: unknown[]) => (asked.push(['acquire', ...args]), handle),
      acquireAll: async (...args: unknown[]) => (asked.push(['acquireAll', ...args]), { locks: [handle], ...handle }),
    } as unknown as LockService;
    const runner = new LockRunner(locks);
    const call = { args: [], instance: {}, method: 'C#m' };
    const options = { timeout: 5, reentrant: false, mode: 'write', leases: 2, revocable: true } as const;
    await runner.runPromise(createLockSpec('/locks/x', options, 'C#m'), call, () => 1);
    await runner.runPromise(createLockSpec(['/locks/x', '/locks/y'], options, 'C#m'), call, () => 1);
    await lastValueFrom(
      runner.runObservable(createLockSpec('/locks/x', options, 'C#m'), call, () => of(1)),
      {
        defaultValue: undefined,
      },
    );
    expect(asked).toEqual([
      ['acquire', '/locks/x', { ...options, signal: undefined }],
      ['acquireAll', ['/locks/x', '/locks/y'], { ...options, signal: undefined }],
      ['acquire', '/locks/x', { ...options, signal: expect.any(AbortSignal) }],
    ]);
  });

  it('outside any running application, a call fails with a clear error', async () => {
    await expect(new Reports().rebuild()).rejects.toThrow(NotConnectedError);
    await expect(new Reports().rebuild()).rejects.toThrow(
      'Reports#rebuild is decorated with @DistributedLock, but no application with ZkLockModule is running',
    );
  });

  it.each([
    ['a relative path', () => DistributedLock('locks/x'), InvalidLockPathError, 'must start with "/"'],
    ['a ".." segment', () => DistributedLock('/locks/../x'), InvalidLockPathError, '".." segment'],
    [
      'a number as path',
      () => DistributedLock(42 as unknown as string),
      InvalidOptionsError,
      'must be a lock path string',
    ],
    ['a negative timeout', () => DistributedLock('/x', { timeout: -1 }), InvalidOptionsError, 'timeout on C#m = -1'],
    ['a non-function key', () => DistributedLock('/x', { key: 'id' as never }), InvalidOptionsError, 'key on C#m'],
    [
      'a key with a path function',
      () => DistributedLock(() => '/x', { key: () => 1 }),
      InvalidOptionsError,
      'needs a static path',
    ],
    [
      'a non-boolean revocable',
      () => DistributedLock('/x', { revocable: 1 as never }),
      InvalidOptionsError,
      'revocable on C#m = 1',
    ],
    ['an unknown mode', () => DistributedLock('/x', { mode: 'shared' as never }), InvalidOptionsError, 'mode on C#m'],
    ['zero leases', () => DistributedLock('/x', { leases: 0 }), InvalidOptionsError, 'leases on C#m = 0'],
    [
      'leases with mode read',
      () => DistributedLock('/x', { leases: 2, mode: 'read' }),
      InvalidOptionsError,
      'has no read mode',
    ],
    ['an empty path array', () => DistributedLock([]), InvalidOptionsError, 'non-empty array of lock paths'],
    ['a bad path in an array', () => DistributedLock(['/a', 'b']), InvalidLockPathError, 'must start with "/"'],
    [
      'a key with a path array',
      () => DistributedLock(['/a', '/b'], { key: () => 1 }),
      InvalidOptionsError,
      'needs a static path',
    ],
    [
      'a non-boolean reentrant',
      () => DistributedLock('/x', { reentrant: 'yes' as never }),
      InvalidOptionsError,
      'true or false',
    ],
  ])('rejects %s at decoration time', (_, make, type, message) => {
    const apply = () => {
      class C {
        m(): void {}
      }
      make()(C.prototype, 'm', Object.getOwnPropertyDescriptor(C.prototype, 'm')!);
    };
    expect(apply).toThrow(type);
    expect(apply).toThrow(message);
  });

  it('refuses to be applied twice to one method', () => {
    expect(() => {
      class Twice {
        @DistributedLock('/a')
        @DistributedLock('/b')
        async m(): Promise<void> {}
      }
      return Twice;
    }).toThrow('is already applied to this method');
  });
});
