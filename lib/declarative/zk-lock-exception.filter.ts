import { Catch, Optional, type ArgumentsHost, type HttpServer } from '@nestjs/common';
import { BaseExceptionFilter } from '@nestjs/core';
import { throwError, type Observable } from 'rxjs';
import { ZkLockError } from '../errors/zk-lock.error.js';
import { lockErrorToHttp } from './http-errors.js';

/**
 * Answers the library's errors thrown in ordinary HTTP routes (`withLock`, `acquire`, ... called
 * by hand) the way `@DistributedLock` answers them (the same mapping, {@link lockErrorToHttp}):
 * a busy lock 409, ZooKeeper unreachable or the app shutting down 503, a key or path from the
 * client that breaks the rules 400; a bug in the app's own code (e.g. a lock path that is
 * `undefined`) 500, logged as an error. Other errors are not caught.
 *
 * HTTP only: in other contexts (microservice handlers, gateways) the error goes on unchanged.
 *
 * @example
 * // main.ts: every route
 * app.useGlobalFilters(new ZkLockExceptionFilter(app.getHttpAdapter()));
 * // or, in a module: providers: [{ provide: APP_FILTER, useClass: ZkLockExceptionFilter }]
 * // or, on a controller or handler: @UseFilters(ZkLockExceptionFilter)
 */
@Catch(ZkLockError)
export class ZkLockExceptionFilter extends BaseExceptionFilter<unknown> {
  /**
   * @param applicationRef the HTTP adapter (`app.getHttpAdapter()`), when you create the filter
   *   yourself; Nest provides it when it creates the filter (APP_FILTER, `@UseFilters(ZkLockExceptionFilter)`).
   */
  constructor(@Optional() applicationRef: HttpServer) {
    super(applicationRef);
  }

  override catch(exception: ZkLockError, host: ArgumentsHost): void | Observable<never> {
    if (host.getType() !== 'http') return throwError(() => exception);
    // Nest's own filter then answers an HttpException with its status and body, and anything
    // else (the app's bugs) with a 500 that it logs.
    super.catch(lockErrorToHttp(exception), host);
  }
}
