import { SetMetadata, UseInterceptors } from '@nestjs/common';
import { isObservable, Observable, throwError } from 'rxjs';
import { InvalidOptionsError } from '../errors/invalid-options.error.js';
import { DISTRIBUTED_LOCK_METADATA } from '../zk-lock.constants.js';
import { DistributedLockInterceptor, registerDecorated } from './distributed-lock.interceptor.js';
import { isHandlerCallOf, outsideHandlerCall, runnerFor, type LockRunner } from './lock-runner.js';
import { createLockSpec, type DistributedLockOptions, type LockCall, type LockTarget } from './lock-spec.js';

/** Marks our wrappers, so that wrapping is never done twice. */
const WRAPPED = Symbol('nestjs-zk-lock.wrapped');

/**
 * A method `@DistributedLock` can decorate: one that returns a Promise or an Observable. The
 * decorated method returns one whatever the original did (the lock is released when it settles
 * or ends), so a synchronous method is refused by the compiler: declare it `async`.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- any arguments
export type LockableMethod = (...args: any[]) => Promise<unknown> | Observable<unknown>;

/** The method decorator `@DistributedLock(...)` returns: it accepts only a {@link LockableMethod}. */
export type DistributedLockDecorator = <T extends LockableMethod>(
  target: object,
  propertyKey: string | symbol,
  descriptor: TypedPropertyDescriptor<T>,
) => TypedPropertyDescriptor<T>;

/**
 * Runs the method only while this process holds the ZooKeeper lock `path`, and releases the lock
 * when the method finishes, however it finishes.
 *
 * - On controller and microservice handlers the lock is taken by an interceptor: after
 *   guards, before pipes and the handler; HTTP responses go out after the release.
 * - On methods of any provider the method itself is wrapped (at decoration time, so other
 *   decorators such as `@Cron` or `@OnEvent` call the locked method); it returns a Promise, or an
 *   Observable when its declared return type is Observable.
 *
 * The method must be declared to return a Promise or an Observable (handlers too: mark them
 * `async`); a synchronous one fails to compile, since the locked method could not return its value
 * synchronously.
 *
 * `path` is a lock path, or a function of the call that returns one; `options.key` adds one
 * encoded segment from the call (safe for user input).
 *
 * @example
 * \@DistributedLock('/locks/write_lock')
 * async append(line: string) { ... }
 *
 * \@Post(':id/charge')
 * \@DistributedLock('/locks/orders', { key: ({ request }) => request.params.id, timeout: 2_000 })
 * charge(@Param('id') id: string) { ... }
 */
export function DistributedLock(path: LockTarget, options: DistributedLockOptions = {}): DistributedLockDecorator {
  return <T extends LockableMethod>(
    target: object,
    propertyKey: string | symbol,
    descriptor: TypedPropertyDescriptor<T>,
  ): TypedPropertyDescriptor<T> => {
    const method = `${(target as { constructor: { name: string } }).constructor.name}#${String(propertyKey)}`;
    const original: unknown = descriptor.value;
    if (typeof original !== 'function') {
      throw new InvalidOptionsError(`@DistributedLock on ${method}`, original, 'can only decorate methods');
    }
    if ((original as { [WRAPPED]?: boolean })[WRAPPED]) {
      throw new InvalidOptionsError(`@DistributedLock on ${method}`, path, 'is already applied to this method');
    }
    const spec = createLockSpec(path, options, method);
    const returnsObservable = Reflect.getMetadata('design:returntype', target, propertyKey) === Observable;
    const run = original as (...args: unknown[]) => unknown;

    const locked = function (this: object, ...args: unknown[]): unknown {
      // Called by the interceptor that already holds this lock for this call: run the body.
      if (isHandlerCallOf(spec)) return outsideHandlerCall(() => run.apply(this, args));
      let runner: LockRunner;
      try {
        runner = runnerFor(this, method);
      } catch (error) {
        // Fail the way the method's callers expect: a rejected Promise or an erroring Observable.
        return returnsObservable ? throwError(() => error) : Promise.reject(error);
      }
      const call: LockCall = { args, instance: this, method };
      return returnsObservable
        ? runner.runObservable(spec, call, () => run.apply(this, args) as Observable<unknown>)
        : runner.runPromise(spec, call, () => notAnObservable(run.apply(this, args), method));
    };
    // Keep what other decorators stored on the original, and its name.
    for (const key of Reflect.getMetadataKeys(run)) {
      Reflect.defineMetadata(key, Reflect.getMetadata(key, run), locked);
    }
    Object.defineProperty(locked, 'name', { value: run.name });
    Object.defineProperty(locked, WRAPPED, { value: true });
    descriptor.value = locked as T;

    SetMetadata(DISTRIBUTED_LOCK_METADATA, spec)(target, propertyKey, descriptor);
    UseInterceptors(DistributedLockInterceptor)(target, propertyKey, descriptor);
    registerDecorated(target.constructor, method);
    return descriptor;
  };
}

/**
 * A method whose declared return type did not reach the decorator as `Observable` (imported with
 * `import type`, or declared as a union) but that returns one would run its Observable outside the
 * lock (the lock is held for the call, not for the subscription): refuse it loudly instead.
 */
function notAnObservable(result: unknown, method: string): unknown {
  if (!isObservable(result)) return result;
  throw new InvalidOptionsError(
    `@DistributedLock on ${method}`,
    'an Observable',
    "is returned, but the method's declared return type is not Observable as the decorator sees it " +
      "(design:returntype): declare it `: Observable<...>` and import Observable as a value (import { Observable } from 'rxjs', not import type)",
  );
}
