import { AsyncLocalStorage } from 'node:async_hooks';
import { Injectable, Logger, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { Observable, type Subscription } from 'rxjs';
import { LockTimeoutError } from '../errors/lock-timeout.error.js';
import { NotConnectedError } from '../errors/not-connected.error.js';
import { runWithLock } from '../lock/lock-context.js';
import type { LockHandle } from '../lock/lock-handle.js';
import type { MultiLockHandle } from '../lock/multi-lock.js';
import { LockService } from '../lock/lock.service.js';
import { resolveLockPath, type LockCall, type LockSpec } from './lock-spec.js';

/**
 * The ONE code path of @DistributedLock: the interceptor (controller and microservice
 * handlers) and the method wrapper (services) both come here. Resolves and validates the path,
 * acquires (reentrant within a call chain unless the spec says otherwise), runs the body inside
 * the lock context, releases however the body ends, and applies the spec's `onTimeout`.
 */
@Injectable()
export class LockRunner implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger('DistributedLock');

  constructor(private readonly locks: LockService) {}

  onModuleInit(): void {
    activeRunners.add(this);
  }

  onApplicationShutdown(): void {
    activeRunners.delete(this);
  }

  /**
   * Runs a Promise-returning (or plain) body under the lock; the lock is released before the
   * Promise settles. The body's error wins over a failed release (which is logged); after a
   * body that succeeded, a failed release (the node stays) rejects.
   */
  async runPromise<T>(spec: LockSpec, call: LockCall, body: () => T | Promise<T>): Promise<Awaited<T>> {
    const lock = await this.enter(spec, call);
    if (lock === SKIPPED) return undefined as Awaited<T>;
    let result: Awaited<T>;
    try {
      result = await runWithLock(partsOf(lock), body);
    } catch (error) {
      await lock.release().catch((failure: unknown) => this.releaseFailed(spec, failure));
      throw error;
    }
    await lock.release();
    return result;
  }

  /**
   * Runs an Observable body under the lock: acquires on subscribe; on complete or error the lock
   * is released BEFORE downstream hears of it (so an HTTP response goes out after the release);
   * unsubscribing (a client that went away) releases too, and while still waiting for the lock
   * stops the wait (nothing of it is left on the server). A body that throws instead of
   * returning an Observable errors downstream, after the release.
   */
  runObservable<T>(spec: LockSpec, call: LockCall, body: () => Observable<T>, asHandler = false): Observable<T> {
    return new Observable<T>((subscriber) => {
      const leaving = new AbortController();
      let lock: LockHandle | MultiLockHandle | undefined;
      let inner: Subscription | undefined;
      let finished = false;
      /** Releases, then ends downstream with `error` (or the release's failure, or complete). */
      const finish = (acquired: LockHandle | MultiLockHandle, error?: { error: unknown }) => {
        finished = true;
        acquired.release().then(
          () => (error ? subscriber.error(error.error) : subscriber.complete()),
          (failure: unknown) => {
            if (error) this.releaseFailed(spec, failure);
            subscriber.error(error ? error.error : failure);
          },
        );
      };
      const run = (acquired: LockHandle | MultiLockHandle) => {
        lock = acquired;
        if (subscriber.closed) {
          acquired.release().catch((failure: unknown) => this.releaseFailed(spec, failure));
          return;
        }
        const subscribe = () =>
          body().subscribe({
            next: (value) => subscriber.next(value),
            error: (error: unknown) => finish(acquired, { error }),
            complete: () => finish(acquired),
          });
        try {
          inner = runWithLock(partsOf(acquired), () => (asHandler ? handlerCalls.run(spec, subscribe) : subscribe()));
        } catch (error) {
          // body() threw (e.g. argument checks before building the Observable)
          if (!finished) finish(acquired, { error });
        }
      };
      this.enter(spec, call, leaving.signal).then(
        (acquired) => {
          if (acquired !== SKIPPED) return run(acquired);
          subscriber.next(undefined as T); // (an HTTP handler answers its status with an empty body)
          subscriber.complete();
        },
        (error: unknown) => subscriber.error(error),
      );
      return () => {
        if (!lock) {
          leaving.abort(); // still waiting: stop the wait
          return;
        }
        inner?.unsubscribe();
        if (!finished) lock.release().catch((failure: unknown) => this.releaseFailed(spec, failure));
      };
    });
  }

  private async enter(
    spec: LockSpec,
    call: LockCall,
    signal?: AbortSignal,
  ): Promise<LockHandle | MultiLockHandle | typeof SKIPPED> {
    const target = resolveLockPath(spec, call);
    const options = { ...spec.acquire, signal };
    try {
      return typeof target === 'string'
        ? await this.locks.acquire(target, options)
        : await this.locks.acquireAll(target, options);
    } catch (error) {
      // onTimeout is for a busy lock only: an outage (ZkUnavailableError) stays what it is.
      if (error instanceof LockTimeoutError && spec.onTimeout !== undefined) {
        if (spec.onTimeout !== 'skip') throw spec.onTimeout(error, call);
        this.logger.debug(`${spec.method}: skipped, ${error.message}`);
        return SKIPPED;
      }
      throw error;
    }
  }

  private releaseFailed(spec: LockSpec, failure: unknown): void {
    this.logger.warn(`${spec.method}: releasing its lock failed: ${String(failure)}`);
  }
}

/** What `enter` returns when the lock was busy and the spec says `onTimeout: 'skip'`. */
const SKIPPED = Symbol('skipped');

// ---- how a wrapped method finds its runner ----

/** Instances created by Nest, mapped to the runner of their application (the explorer fills this). */
const runners = new WeakMap<object, LockRunner>();
/** Runners of the applications alive in this process. */
const activeRunners = new Set<LockRunner>();

export function registerInstance(instance: object, runner: LockRunner): void {
  runners.set(instance, runner);
}

/**
 * The runner for a call of a wrapped method: the one of the application that created `instance`
 * at bootstrap, else the only application alive in the process (objects made later: request-scoped
 * and transient providers, lazily loaded modules, objects made with `new`).
 */
export function runnerFor(instance: object, method: string): LockRunner {
  const runner = runners.get(instance);
  if (runner) return runner;
  if (activeRunners.size === 1) return activeRunners.values().next().value!;
  const decorated = `${method} is decorated with @DistributedLock, but`;
  throw new NotConnectedError(
    activeRunners.size === 0
      ? `${decorated} no application with ZkLockModule is running: import ZkLockModule.forRoot() ` +
          `(or forRootAsync()) in your root module, and call the method while the application runs`
      : `${decorated} its object was not created by one of the ${activeRunners.size} running applications ` +
          `at bootstrap (it is request-scoped or transient, or was made with new), so which one's locks it ` +
          `should use is not known: get it from the application that should lock it (inject it, or app.get(...)) ` +
          `as a singleton provider`,
  );
}

// ---- a route handler behind the interceptor must not be locked again by its own wrapper ----

const handlerCalls = new AsyncLocalStorage<LockSpec | undefined>();

/** True when the interceptor has just locked this very spec and is calling the handler. */
export function isHandlerCallOf(spec: LockSpec): boolean {
  return handlerCalls.getStore() === spec;
}

/** Runs `fn` outside the interceptor's handler call (deeper calls lock as usual). */
export function outsideHandlerCall<T>(fn: () => T): T {
  return handlerCalls.run(undefined, fn);
}

/** The single locks of a handle (a multi-lock's parts), for the call chain's context. */
function partsOf(lock: LockHandle | MultiLockHandle): LockHandle | readonly LockHandle[] {
  return 'locks' in lock ? lock.locks : lock;
}
