import { HttpException, HttpStatus } from '@nestjs/common';
import type { LockTimeoutError } from '../errors/lock-timeout.error.js';

/**
 * 409 Conflict: the route's lock is held elsewhere and was not free within the timeout.
 * Body: `{ statusCode: 409, error: 'Conflict', message, lock, code: 'ZK_LOCK_TIMEOUT' }`.
 */
export class LockBusyException extends HttpException {
  constructor(readonly lockError: LockTimeoutError) {
    super(
      {
        statusCode: HttpStatus.CONFLICT,
        error: 'Conflict',
        message: `Lock "${lockError.path}" is busy: not acquired within ${lockError.timeout} ms`,
        lock: lockError.path,
        code: lockError.code,
      },
      HttpStatus.CONFLICT,
      { cause: lockError },
    );
  }
}
