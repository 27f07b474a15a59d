import type { ExecutionContext } from '@nestjs/common';
import { InvalidOptionsError } from '../errors/invalid-options.error.js';
import type { LockTimeoutError } from '../errors/lock-timeout.error.js';
import { lockPathFor, validateLockPath } from '../lock/lock-path.js';
import { kindOf, lockOrder, type LockMode } from '../lock/acquire-options.js';
import { validateDuration } from '../zk-lock.options.js';

/** What a dynamic path or key is computed from: one call of the decorated method. */
export interface LockCall {
  /**
   * For a service method: its arguments. For a handler behind the interceptor: the handler's raw
   * arguments from the execution context (`[req, res, next]` for HTTP, `[data, ctx]` for RPC),
   * taken before pipes run.
   */
  args: unknown[];
  /** The object whose method is called (for a handler behind the interceptor: its class). */
  instance: object;
  /** `ClassName#method`. */
  method: string;
  /** Set for handlers behind the interceptor (HTTP, microservice). */
  context?: ExecutionContext;
  /** For HTTP handlers: the framework request (`params`, `query`, `body`, `headers`). */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- Express or Fastify request
  request?: any;
}

/** Options of `@DistributedLock(path, options)`. */
export interface DistributedLockOptions {
  /**
   * A dynamic key: the lock path becomes `<path>/<encoded key>`, the key encoded as ONE segment,
   * so that no input can reach a node outside `path`. E.g. `key: ({ request }) => request.params.id`
   * for a route, `key: ({ args }) => args[0]` for a service method.
   */
  key?: (call: LockCall) => unknown;
  /** How long to wait for the lock, in ms. Default: the module's `lockTimeout`. */
  timeout?: number;
  /** A nested call in the same async call chain that locks the same path goes through (default true). */
  reentrant?: boolean;
  /**
   * What a wait timeout becomes, instead of the default (HTTP: 409 with a body naming the lock;
   * elsewhere: the LockTimeoutError itself). Return the error to throw.
   */
  onTimeout?: (error: LockTimeoutError, call: LockCall) => unknown;
  /** `write` (default, exclusive) or `read` (shared with other readers). See `AcquireOptions.mode`. */
  mode?: LockMode;
  /** A counting semaphore: at most `leases` concurrent calls (1..10000). See `AcquireOptions.leases`. */
  leases?: number;
  /** Watch the node from the start so that `requestRelease` is seen at once. See `AcquireOptions.revocable`. */
  revocable?: boolean;
}

/** A lock path, or several (a multi-lock, taken all-or-nothing in sorted order), or a function of the call returning either. */
export type LockTarget = string | readonly string[] | ((call: LockCall) => string | readonly string[]);

/** The decorator's arguments, checked once at decoration time. */
export interface LockSpec extends Required<Pick<DistributedLockOptions, 'reentrant'>> {
  path: LockTarget;
  mode: LockMode | undefined;
  leases: number | undefined;
  revocable: boolean;
  key: DistributedLockOptions['key'];
  timeout: number | undefined;
  onTimeout: DistributedLockOptions['onTimeout'];
  /** `ClassName#method`, for messages. */
  method: string;
}

export function createLockSpec(path: LockTarget, options: DistributedLockOptions, method: string): LockSpec {
  if (typeof path === 'string') validateLockPath(path);
  else if (Array.isArray(path)) lockOrder(path);
  else if (typeof path !== 'function') {
    throw new InvalidOptionsError(
      `@DistributedLock path on ${method}`,
      path,
      'must be a lock path string, an array of them, or a function of the call',
    );
  }
  if (options === null || typeof options !== 'object') {
    throw new InvalidOptionsError(`@DistributedLock options on ${method}`, options, 'must be an object');
  }
  if (options.key !== undefined && typeof options.key !== 'function') {
    throw new InvalidOptionsError(`@DistributedLock key on ${method}`, options.key, 'must be a function of the call');
  }
  if (options.key !== undefined && typeof path !== 'string') {
    throw new InvalidOptionsError(
      `@DistributedLock key on ${method}`,
      'function',
      'needs a static path to put the key under',
    );
  }
  if (options.onTimeout !== undefined && typeof options.onTimeout !== 'function') {
    throw new InvalidOptionsError(`@DistributedLock onTimeout on ${method}`, options.onTimeout, 'must be a function');
  }
  if (options.revocable !== undefined && typeof options.revocable !== 'boolean') {
    throw new InvalidOptionsError(
      `@DistributedLock revocable on ${method}`,
      options.revocable,
      'must be true or false',
    );
  }
  if (options.reentrant !== undefined && typeof options.reentrant !== 'boolean') {
    throw new InvalidOptionsError(
      `@DistributedLock reentrant on ${method}`,
      options.reentrant,
      'must be true or false',
    );
  }
  // Checked now with the same rules LockService applies at each call.
  try {
    kindOf({ mode: options.mode, leases: options.leases });
  } catch (error) {
    const { option, value, rule } = error as InvalidOptionsError;
    throw new InvalidOptionsError(`@DistributedLock ${option} on ${method}`, value, rule);
  }
  const timeout =
    options.timeout === undefined
      ? undefined
      : validateDuration(`@DistributedLock timeout on ${method}`, options.timeout, {
          allowZero: true,
          allowInfinity: true,
        });
  return {
    path,
    mode: options.mode,
    leases: options.leases,
    revocable: options.revocable ?? false,
    key: options.key,
    timeout,
    reentrant: options.reentrant ?? true,
    onTimeout: options.onTimeout,
    method,
  };
}

/** The lock path(s) of one call: static, `<path>/<encoded key>`, or a validated function result. */
export function resolveLockPath(spec: LockSpec, call: LockCall): string | readonly string[] {
  if (typeof spec.path === 'function') {
    const target = spec.path(call);
    return Array.isArray(target) ? lockOrder(target) : validateLockPath(target);
  }
  if (typeof spec.path !== 'string') return spec.path;
  return spec.key ? lockPathFor(spec.path, spec.key(call)) : spec.path;
}
