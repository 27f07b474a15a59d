import type { ExecutionContext } from '@nestjs/common';
import { InvalidOptionsError } from '../errors/invalid-options.error.js';
import type { LockTimeoutError } from '../errors/lock-timeout.error.js';
import { lockPathFor, validateLockPath } from '../lock/lock-path.js';
import { ACQUIRE_OPTION_RULES, lockOrder, type AcquireOptions } from '../lock/acquire-options.js';

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

/**
 * The acquire options a decorator fixes for every call of its method: all of `AcquireOptions`
 * but `signal` (each call has its own: the runner's, which aborts when an Observable's
 * subscriber leaves). A per-call option added to `AcquireOptions` (with its rule in
 * ACQUIRE_OPTION_RULES) is one here too, with nothing to add.
 */
export type DeclaredAcquireOptions = Omit<AcquireOptions, 'signal'>;

/**
 * Options of `@DistributedLock(path, options)`: the acquire options of every call (`timeout`,
 * `reentrant`, `mode`, `leases`, `revocable`: see `AcquireOptions`), plus `key` and `onTimeout`.
 */
export interface DistributedLockOptions extends DeclaredAcquireOptions {
  /**
   * A dynamic key: the lock path becomes `<path>/<encoded key>`, the key encoded as ONE segment,
   * so that no input can reach a node outside `path`. E.g. `key: ({ request }) => request.params.id`
   * for a route, `key: ({ args }) => args[0]` for a service method.
   */
  key?: (call: LockCall) => unknown;
  /**
   * What a wait timeout becomes, instead of the default (HTTP: 409 with a body naming the lock;
   * elsewhere: the LockTimeoutError itself). Return the error to throw; or `'skip'`: the call
   * resolves `undefined` without running the method (an Observable emits `undefined` and
   * completes; an HTTP handler answers its usual status, 200 or 201 for POST or its `@HttpCode`,
   * with an empty body), with one debug line. An outage is never skipped.
   */
  onTimeout?: ((error: LockTimeoutError, call: LockCall) => unknown) | 'skip';
}

/** A lock path, or several (a multi-lock, taken all-or-nothing in sorted order), or a function of the call returning either. */
export type LockTarget = string | readonly string[] | ((call: LockCall) => string | readonly string[]);

/** The decorator's arguments, checked once at decoration time. */
export interface LockSpec {
  path: LockTarget;
  key: DistributedLockOptions['key'];
  onTimeout: DistributedLockOptions['onTimeout'];
  /** The acquire options of every call, checked and frozen; the runner passes them on whole (adding the call's signal). */
  acquire: Readonly<DeclaredAcquireOptions>;
  /** `ClassName#method`, for messages. */
  method: string;
}

export function createLockSpec(path: LockTarget, options: DistributedLockOptions, method: string): LockSpec {
  checkTarget(path, method);
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
  if (options.onTimeout !== undefined && options.onTimeout !== 'skip' && typeof options.onTimeout !== 'function') {
    throw new InvalidOptionsError(
      `@DistributedLock onTimeout on ${method}`,
      options.onTimeout,
      'must be a function returning the error to throw, or "skip"',
    );
  }
  return {
    path,
    key: options.key,
    onTimeout: options.onTimeout,
    acquire: declaredAcquireOptions(options, method),
    method,
  };
}

/** The declared acquire options that are set, each checked by its rule (an error names the decorator and method). */
function declaredAcquireOptions(options: DistributedLockOptions, method: string): Readonly<DeclaredAcquireOptions> {
  const acquire: Record<string, unknown> = {};
  for (const [option, check] of Object.entries(ACQUIRE_OPTION_RULES)) {
    if (option === 'signal') continue; // each call has its own
    const value = options[option as keyof DeclaredAcquireOptions];
    if (value === undefined) continue;
    try {
      check(value, options);
    } catch (error) {
      if (!(error instanceof InvalidOptionsError)) throw error;
      throw new InvalidOptionsError(`@DistributedLock ${error.option} on ${method}`, error.value, error.rule);
    }
    acquire[option] = value;
  }
  return Object.freeze(acquire);
}

function checkTarget(path: LockTarget, method: string): void {
  if (typeof path === 'string') validateLockPath(path);
  else if (Array.isArray(path)) lockOrder(path);
  else if (typeof path !== 'function') {
    throw new InvalidOptionsError(
      `@DistributedLock path on ${method}`,
      path,
      'must be a lock path string, an array of them, or a function of the call',
    );
  }
}

/**
 * The lock path(s) of one call: static, `<path>/<encoded key>`, or a validated function result.
 *
 * A key or path function result of the wrong type (`undefined`, `null`, an object, `NaN`: e.g. a
 * key that reads `request.params.orderId` on an `:id` route) is a bug in the app's code, not
 * the client's input: an {@link InvalidOptionsError} naming the decorator, the method and the
 * value (HTTP: a 500 that Nest logs). A string (or number key) the rules refuse (an empty key, a
 * path with `..`) is input: an `InvalidLockPathError` (HTTP: 400).
 */
export function resolveLockPath(spec: LockSpec, call: LockCall): string | readonly string[] {
  if (typeof spec.path === 'function') {
    const target = spec.path(call);
    if (Array.isArray(target)) {
      const wrong = target.findIndex((path) => typeof path !== 'string');
      if (target.length === 0 || wrong >= 0) throw wrongResult(spec, 'path', wrong >= 0 ? target[wrong] : target);
      return lockOrder(target);
    }
    if (typeof target !== 'string') throw wrongResult(spec, 'path', target);
    return validateLockPath(target);
  }
  if (typeof spec.path !== 'string') return spec.path;
  if (!spec.key) return spec.path;
  const key = spec.key(call);
  if (typeof key !== 'string' && !(typeof key === 'number' && Number.isFinite(key))) {
    throw wrongResult(spec, 'key', key);
  }
  return lockPathFor(spec.path, key);
}

function wrongResult(spec: LockSpec, option: 'key' | 'path', value: unknown): InvalidOptionsError {
  const returns =
    option === 'key'
      ? 'must return a string or a finite number'
      : 'must return a lock path string or a non-empty array of them';
  return new InvalidOptionsError(
    `@DistributedLock ${option} of ${spec.method}`,
    value,
    `the ${option} function ${returns}: a bug in the app's code, not the client's input ` +
      `(does it read a request parameter, body field or argument that is not there?)`,
  );
}
