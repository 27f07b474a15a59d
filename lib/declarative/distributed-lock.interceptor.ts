import {
  Injectable,
  ServiceUnavailableException,
  BadRequestException,
  type CallHandler,
  type ExecutionContext,
  type NestInterceptor,
} from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { catchError, throwError, type Observable } from 'rxjs';
import { InvalidLockPathError } from '../errors/invalid-lock-path.error.js';
import { LockTimeoutError } from '../errors/lock-timeout.error.js';
import { ZkLockError } from '../errors/zk-lock.error.js';
import { DISTRIBUTED_LOCK_METADATA } from '../zk-lock.constants.js';
import { LockBusyException } from './lock-busy.exception.js';
import { LockRunner } from './lock-runner.js';
import type { LockCall, LockSpec } from './lock-spec.js';

/**
 * Backs @DistributedLock on controller and microservice handlers: runs after guards and
 * before pipes and the handler. For HTTP, maps the library's errors to responses through
 * {@link toHttpError} (override it in a subclass to change the mapping).
 */
@Injectable()
export class DistributedLockInterceptor implements NestInterceptor {
  constructor(
    private readonly reflector: Reflector,
    private readonly runner: LockRunner,
  ) {}

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
   * The HTTP response for an error of the lock (errors of the handler pass unchanged):
   * a wait timeout on a busy lock -> 409 {@link LockBusyException}; a path built from bad input
   * -> 400; ZooKeeper unreachable (ZkUnavailableError: an outage is not a busy lock), the
   * connection closed or the app shutting down -> 503.
   */
  protected toHttpError(error: unknown, _context: ExecutionContext): unknown {
    if (!(error instanceof ZkLockError)) return error;
    if (error instanceof LockTimeoutError) return new LockBusyException(error);
    if (error instanceof InvalidLockPathError) return new BadRequestException(error.message, { cause: error });
    return new ServiceUnavailableException(error.message, { cause: error });
  }
}
