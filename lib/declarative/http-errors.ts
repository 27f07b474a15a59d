import { BadRequestException, ServiceUnavailableException } from '@nestjs/common';
import { InvalidLockPathError } from '../errors/invalid-lock-path.error.js';
import { InvalidOptionsError } from '../errors/invalid-options.error.js';
import { LockTimeoutError } from '../errors/lock-timeout.error.js';
import { ZkLockError } from '../errors/zk-lock.error.js';
import { LockBusyException } from './lock-busy.exception.js';

/**
 * THE mapping of the library's errors to HTTP responses, shared by the `@DistributedLock`
 * interceptor and {@link ZkLockExceptionFilter} (for `withLock` / `acquire` in ordinary routes):
 *
 * - `LockTimeoutError` (the lock is busy) -> 409 {@link LockBusyException};
 * - `InvalidLockPathError` about a string that breaks the path or key rules (an empty key, a
 *   path with `..`) -> 400: such a string is the client's input (a key from the request, a path
 *   built from it);
 * - `InvalidOptionsError`, and an `InvalidLockPathError` about anything else (`undefined`, `null`,
 *   an object: e.g. a key function that read a parameter the route does not have) -> unchanged:
 *   a bug in the app's own code, which Nest answers 500 and logs as an error with its message;
 * - every other `ZkLockError` (`ZkUnavailableError`, `NotConnectedError`, `ZkConnectError`, a lost
 *   lock, a failed ZooKeeper request) -> 503: ZooKeeper unreachable or the app shutting down is
 *   an outage, never a busy lock.
 *
 * Errors that are not the library's pass unchanged.
 */
export function lockErrorToHttp(error: unknown): unknown {
  if (!(error instanceof ZkLockError)) return error;
  if (error instanceof LockTimeoutError) return new LockBusyException(error);
  if (isAppBug(error)) return error;
  if (error instanceof InvalidLockPathError) return new BadRequestException(error.message, { cause: error });
  return new ServiceUnavailableException(error.message, { cause: error });
}

/** True for the errors that are the app's bug rather than the client's input or an outage (a 500). */
export function isAppBug(error: ZkLockError): boolean {
  if (error instanceof InvalidOptionsError) return true;
  // Only a string can come from the client: a key or path of any other type was computed wrongly.
  if (error instanceof InvalidLockPathError) return typeof error.path !== 'string';
  return false;
}
