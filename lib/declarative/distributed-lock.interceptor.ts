import { Injectable, Optional, type CallHandler, type ExecutionContext, type NestInterceptor } from '@nestjs/common';
import { ModuleRef, Reflector } from '@nestjs/core';
import { catchError, throwError, type Observable } from 'rxjs';
import { NotConnectedError } from '../errors/not-connected.error.js';
import { DISTRIBUTED_LOCK_METADATA } from '../zk-lock.constants.js';
import { lockErrorToHttp } from './http-errors.js';
import { LockRunner } from './lock-runner.js';
import type { LockCall, LockSpec } from './lock-spec.js';

/**
 * Backs @DistributedLock on controller and microservice handlers: runs after guards and
 * before pipes and the handler. For HTTP, maps the library's errors to responses through
 * {@link toHttpError} (override it in a subclass to change the mapping).
 *
 * Nest creates it in every module that declares a class with a decorated method (a handler or
 * not: Nest cannot tell), at bootstrap. Without ZkLockModule there, it stops the bootstrap with a
 * `NotConnectedError` that names the decorated methods of the module and says what to import.
 */
@Injectable()
export class DistributedLockInterceptor implements NestInterceptor {
  private readonly runner: LockRunner;

  constructor(
    private readonly reflector: Reflector,
    @Optional() runner?: LockRunner,
    @Optional() moduleRef?: ModuleRef,
  ) {
    if (!runner) throw missingModule(moduleRef);
    this.runner = runner;
  }

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const spec = this.reflector.get<LockSpec | undefined>(DISTRIBUTED_LOCK_METADATA, context.getHandler());
    if (!spec) return next.handle();
    const http = context.getType() === 'http';
    const call: LockCall = {
      args: context.getArgs(),
      instance: context.getClass(),
      method: spec.method,
      context,
      request: http ? context.switchToHttp().getRequest() : undefined,
    };
    const locked = this.runner.runObservable(spec, call, () => next.handle(), true);
    return http
      ? locked.pipe(catchError((error: unknown) => throwError(() => this.toHttpError(error, context))))
      : locked;
  }

  /**
   * The HTTP response for an error of the lock (errors of the handler pass unchanged), the same
   * as `ZkLockExceptionFilter` gives: a wait timeout on a busy lock -> 409 LockBusyException; a
   * key or path from the client that breaks the rules -> 400; ZooKeeper unreachable
   * (ZkUnavailableError: an outage is not a busy lock), the connection closed or the app shutting
   * down -> 503; the app's own bug (a key function that returned `undefined`, an option that
   * breaks a rule) -> unchanged, which Nest answers 500 and logs.
   */
  protected toHttpError(error: unknown, _context: ExecutionContext): unknown {
    return lockErrorToHttp(error);
  }
}

// ---- without ZkLockModule ----

/** Classes with @DistributedLock methods, and those methods (`ClassName#method`), for the error below. */
const decorated = new Map<object, string[]>();

/** Called by @DistributedLock for each method it decorates. */
export function registerDecorated(target: object, method: string): void {
  decorated.set(target, [...(decorated.get(target) ?? []), method]);
}

/**
 * The bootstrap error of a module that declares decorated methods without ZkLockModule: names
 * the methods (the decorated classes the module holds: Nest tells an interceptor nothing else of
 * where it was created) and says what to import.
 */
function missingModule(moduleRef: ModuleRef | undefined): NotConnectedError {
  const fix = 'import ZkLockModule.forRoot() (or forRootAsync()) in your root module';
  const classes = [...decorated.keys()].filter((target) => holds(moduleRef, target));
  if (classes.length === 0) return new NotConnectedError(`@DistributedLock needs ZkLockModule: ${fix}`);
  const methods = classes.flatMap((target) => decorated.get(target)!);
  const owners = classes.map((target) => (target as { name: string }).name).join(', ');
  return new NotConnectedError(
    `${methods.join(', ')} ${methods.length > 1 ? 'are' : 'is'} decorated with @DistributedLock, but ZkLockModule ` +
      `is not available in ${methods.length > 1 ? 'their' : 'its'} module: ${fix} (with isGlobal: false, in the ` +
      `module that declares ${owners} too)`,
  );
}

/** True when the module of `moduleRef` itself declares `target` (a provider or a controller). */
function holds(moduleRef: ModuleRef | undefined, target: object): boolean {
  if (!moduleRef) return false;
  try {
    moduleRef.get(target as new () => unknown, { strict: true });
    return true;
  } catch (error) {
    // Found, but request-scoped or transient ("get" refuses those); unknown to the module otherwise.
    return (error as { constructor?: { name?: string } }).constructor?.name !== 'UnknownElementException';
  }
}
