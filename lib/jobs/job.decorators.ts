/**
 * `@OnOneInstance` and `@WithoutOverlapping`: method decorators for scheduled jobs (next to
 * `@Cron`, `@Interval` or `@Timeout` of @nestjs/schedule, in either order; @nestjs/schedule is
 * never imported). Like `@DistributedLock`, they replace the method when the class is defined,
 * so whatever calls it (the scheduler, a test, another service) calls the guarded method; both
 * on one method make one wrapper with one spec.
 */
import { InvalidOptionsError } from '../errors/invalid-options.error.js';
import { validateLockPath } from '../lock/lock-path.js';
import { jobRunnerFor } from './job-runner.js';

/** Metadata key of a job's spec, on the wrapper that replaces the method. */
export const JOB_METADATA = 'zk_lock:job';
/** Marks our wrappers: the spec they run. */
const SPEC = Symbol('nestjs-zk-lock.job-spec');

/** What the decorators of one method say. */
export interface JobSpec {
  readonly className: string;
  readonly methodName: string;
  /** `ClassName#method`, for messages and events. */
  readonly method: string;
  /** `@OnOneInstance`: the election's path, when given. */
  oneInstance?: { path: string | undefined };
  /** `@WithoutOverlapping` (or `withoutOverlapping: true`): the lock's path, when given. */
  withoutOverlapping?: { path: string | undefined };
  /** The decorators applied (each at most once). */
  readonly applied: Set<string>;
}

/** Options of `@OnOneInstance(path?, options?)`. */
export interface OnOneInstanceOptions {
  /**
   * Also never overlap: a tick while a run of the job is still in progress skips (as
   * `@WithoutOverlapping()` on the same method does). Costs no request: the holder knows its runs.
   * @default false
   */
  withoutOverlapping?: boolean;
}

/**
 * Runs the method on ONE instance of the application: every instance joins an election for the
 * job (one ZooKeeper node each under the job's path); the first holds the job and runs every
 * tick while it lives; the others skip, resolving `undefined`, with one debug line and no
 * ZooKeeper request (who leads is known from the watch, not asked per tick). When the holder
 * shuts down its node goes and the next instance holds the job at once; when it crashes, when its
 * session expires. A run gets a LockHandle (`LockService.current()`, `@CurrentLock()`) whose
 * `fencingToken` grows with every run and every new holder and whose `signal` aborts when the job
 * is lost. `path` defaults to `<jobsPath>/<Class>.<method>` (option `jobsPath`, default
 * `/zk-lock/jobs`); two jobs with one path fail at start-up.
 *
 * @example
 * \@Cron(CronExpression.EVERY_MINUTE)
 * \@OnOneInstance()
 * async sendReminders() { ... }
 */
export function OnOneInstance(path?: string, options: OnOneInstanceOptions = {}): MethodDecorator {
  return jobDecorator('@OnOneInstance', path, (spec) => {
    if (options === null || typeof options !== 'object') {
      throw new InvalidOptionsError(`@OnOneInstance options on ${spec.method}`, options, 'must be an object');
    }
    if (options.withoutOverlapping !== undefined && typeof options.withoutOverlapping !== 'boolean') {
      throw new InvalidOptionsError(
        `@OnOneInstance withoutOverlapping on ${spec.method}`,
        options.withoutOverlapping,
        'must be true or false',
      );
    }
    spec.oneInstance = { path };
    if (options.withoutOverlapping) spec.withoutOverlapping ??= { path: undefined };
  });
}

/**
 * Any instance may run the method, but never two runs at once anywhere: a tick that finds a run
 * in progress (here or on another instance) resolves `undefined` quietly. Alone, it is
 * `@DistributedLock(path, { timeout: 0, onTimeout: 'skip' })`: each run takes the lock at `path`
 * (default `<jobsPath>/<Class>.<method>`) without waiting. With `@OnOneInstance` and no `path`,
 * the job's holder alone runs it and knows its own runs: no lock, no request; with a `path`, that
 * lock is taken too (so that jobs sharing it exclude each other). A tick during an outage skips
 * with one warning.
 */
export function WithoutOverlapping(path?: string): MethodDecorator {
  return jobDecorator('@WithoutOverlapping', path, (spec) => {
    spec.withoutOverlapping = { path };
  });
}

/** Wraps the method once (at the first job decorator) and lets `apply` add to its spec. */
function jobDecorator(name: string, path: string | undefined, apply: (spec: JobSpec) => void): MethodDecorator {
  return (target, propertyKey, descriptor) => {
    const className = (target as { constructor: { name: string } }).constructor.name;
    const method = `${className}#${String(propertyKey)}`;
    const current: unknown = descriptor.value;
    if (typeof current !== 'function') {
      throw new InvalidOptionsError(`${name} on ${method}`, current, 'can only decorate methods');
    }
    if (path !== undefined) {
      try {
        validateLockPath(path);
      } catch (error) {
        throw new InvalidOptionsError(`${name} path on ${method}`, path, (error as Error).message);
      }
    }
    let spec = (current as { [SPEC]?: JobSpec })[SPEC];
    if (!spec) {
      spec = { className, methodName: String(propertyKey), method, applied: new Set() };
      (descriptor as TypedPropertyDescriptor<unknown>).value = wrap(current as (...args: unknown[]) => unknown, spec);
    }
    if (spec.applied.has(name))
      throw new InvalidOptionsError(`${name} on ${method}`, path, 'is already applied to this method');
    spec.applied.add(name);
    apply(spec);
    const { oneInstance, withoutOverlapping } = spec;
    if (oneInstance?.path !== undefined && oneInstance.path === withoutOverlapping?.path) {
      throw new InvalidOptionsError(
        `@WithoutOverlapping path on ${method}`,
        withoutOverlapping.path,
        'is the path of its own @OnOneInstance election: leave it out (the holder alone runs the job and knows its own runs), or give another path',
      );
    }
    return descriptor;
  };
}

/** The method's replacement: runs through the job runner of the application that made `this`. */
function wrap(original: (...args: unknown[]) => unknown, spec: JobSpec): (...args: unknown[]) => Promise<unknown> {
  const guarded = function (this: object, ...args: unknown[]): Promise<unknown> {
    try {
      return jobRunnerFor(this, spec.method).tick(spec, () => original.apply(this, args));
    } catch (error) {
      return Promise.reject(error);
    }
  };
  // Keep what other decorators stored on the original (e.g. @Cron's metadata), and its name.
  for (const key of Reflect.getMetadataKeys(original)) {
    Reflect.defineMetadata(key, Reflect.getMetadata(key, original), guarded);
  }
  Object.defineProperty(guarded, 'name', { value: original.name });
  Object.defineProperty(guarded, SPEC, { value: spec });
  Reflect.defineMetadata(JOB_METADATA, spec, guarded);
  return guarded;
}
