/**
 * The ways of holding a lock that the lock contract (contract-suite.ts) runs over, like Curator's
 * TestInterProcessMutexBase and its abstract makeLock(): each variant makes contenders (one
 * ZooKeeper session each) whose `acquire` holds a lock of one path its own way. The contract
 * sees only {@link Contender} and {@link ContractHold}.
 *
 * With ZK_MUTANT set (the mutation checks), every contender's connection is patched with that
 * mutant: the LockService variants through lockClient, the Nest variant through mutantHook.
 */
import 'reflect-metadata';
import { Injectable, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Observable } from 'rxjs';
import {
  DistributedLock,
  LockService,
  ZkConnectionService,
  ZkLockModule,
  type AcquireOptions,
  type LockHandle,
  type ZkLockOptions,
} from '../../lib/index.js';
import { lockClient } from '../fixtures/lock-clients.js';
import { mutantHook } from '../fixtures/mutant-hook.js';

/** The wait of an acquisition that must give up (the lock is held elsewhere). */
export const SHORT_WAIT_MS = 300;
/** The wait of an acquisition that must succeed. */
export const LONG_WAIT_MS = 20_000;
/** How long shutdown lets running holders go on before it releases their locks. */
export const SHUTDOWN_MS = 1_000;

/** What the contract asks of a held lock. */
export interface ContractHold {
  /** Aborts with a LockLostError when the lock stops being ours. */
  readonly signal: AbortSignal;
  readonly fencingToken: bigint;
  /** Ends the hold; the lock is free when this resolves. Safe to call twice. */
  release(): Promise<void>;
}

/** One ZooKeeper session holding locks one variant's way. */
export interface Contender {
  readonly connection: ZkConnectionService;
  /** Holds `path`; `timeout` is SHORT_WAIT_MS or LONG_WAIT_MS. Rejects as the variant's API does. */
  acquire(path: string, options: { timeout: number; signal?: AbortSignal }): Promise<ContractHold>;
  /** Shuts down as an application does: waits stop, holders get SHUTDOWN_MS, the session closes. */
  shutdown(): Promise<void>;
}

export interface Variant {
  name: string;
  /** A contender on a new session. */
  contender(connectionString: string, options?: Partial<ZkLockOptions>): Promise<Contender>;
  /** True when an aborted wait rejects with the library's LockAbortedError (the Nest variant's "abort" is an unsubscribe). */
  abortRejectsWithLockAborted: boolean;
}

/** Contender options shared by every variant: short sessions, holders that do not watch their own nodes. */
const BASE: Partial<ZkLockOptions> = {
  sessionTimeout: 2_000,
  heldLockWatchDelay: Infinity,
  shutdownTimeout: SHUTDOWN_MS,
};

/** A variant over LockService.acquire with fixed extra options (and module options). */
function serviceVariant(name: string, extra: AcquireOptions, module: Partial<ZkLockOptions> = {}): Variant {
  return {
    name,
    abortRejectsWithLockAborted: true,
    async contender(connectionString, options = {}) {
      const { connection, locks } = await lockClient(connectionString, { ...BASE, ...module, ...options });
      return {
        connection,
        acquire: (path, { timeout, signal }) => locks.acquire(path, { ...extra, timeout, signal }),
        shutdown: () => shutDown(locks, connection),
      };
    },
  };
}

/** LockService's half of an application's shutdown, then the connection's. */
async function shutDown(locks: LockService, connection: ZkConnectionService): Promise<void> {
  await locks.beforeApplicationShutdown();
  await connection.close();
}

const multiVariant: Variant = {
  name: 'acquireAll([path])',
  abortRejectsWithLockAborted: true,
  async contender(connectionString, options = {}) {
    const { connection, locks } = await lockClient(connectionString, { ...BASE, ...options });
    return {
      connection,
      acquire: async (path, { timeout, signal }) => {
        const all = await locks.acquireAll([path], { timeout, signal });
        return { signal: all.signal, fencingToken: all.locks[0].fencingToken, release: () => all.release() };
      },
      shutdown: () => shutDown(locks, connection),
    };
  },
};

// ---- the Nest variant: a @DistributedLock service method ----

/** One call of the locked method: it holds the lock until `until` resolves. */
interface HoldCall {
  path: string;
  until: Promise<void>;
}

const pathOf = ({ args }: { args: unknown[] }) => (args[0] as HoldCall).path;

/**
 * Locked methods that emit the held handle, then stay in the lock until the call's `until`
 * resolves. Observable-returning, so that unsubscribing while waiting stops the wait (the
 * declarative layer's abort).
 */
@Injectable()
class ContractService {
  constructor(private readonly locks: LockService) {}

  @DistributedLock(pathOf, { timeout: SHORT_WAIT_MS })
  holdBriefly(call: HoldCall): Observable<LockHandle> {
    return this.body(call);
  }

  @DistributedLock(pathOf, { timeout: LONG_WAIT_MS })
  hold(call: HoldCall): Observable<LockHandle> {
    return this.body(call);
  }

  private body(call: HoldCall): Observable<LockHandle> {
    const handle = this.locks.current(call.path)!; // the runner's own handle for this call
    return new Observable<LockHandle>((subscriber) => {
      subscriber.next(handle);
      void call.until.then(() => subscriber.complete());
    });
  }
}

function contractModule(options: ZkLockOptions): new () => object {
  @Module({ imports: [ZkLockModule.forRoot(options)], providers: [ContractService, mutantHook] })
  class ContractModule {}
  return ContractModule;
}

/** Open Nest contenders, closed after each test by closeContenders(). */
const apps = new Set<{ close(): Promise<void> }>();

export async function closeContenders(): Promise<void> {
  const open = [...apps];
  apps.clear();
  await Promise.all(open.map((app) => app.close()));
}

const nestVariant: Variant = {
  name: '@DistributedLock service method',
  abortRejectsWithLockAborted: false,
  async contender(connectionString, options = {}) {
    const app = await NestFactory.createApplicationContext(contractModule({ ...BASE, ...options, connectionString }), {
      logger: false,
    });
    apps.add(app);
    const service = app.get(ContractService);
    return {
      connection: app.get(ZkConnectionService),
      acquire: (path, { timeout, signal }) => {
        if (timeout !== SHORT_WAIT_MS && timeout !== LONG_WAIT_MS)
          throw new Error(`no locked method waits ${timeout} ms`);
        const method =
          timeout === SHORT_WAIT_MS
            ? (call: HoldCall) => service.holdBriefly(call)
            : (call: HoldCall) => service.hold(call);
        return holdThrough(method, path, signal);
      },
      shutdown: async () => {
        apps.delete(app);
        await app.close();
      },
    };
  },
};

/**
 * Calls a locked method and resolves once it holds the lock. Aborting `signal` while it waits
 * unsubscribes (the runner stops the wait) and rejects with the signal's reason. The hold's
 * `release` releases the handle itself, then lets the method return, whose runner releases again.
 */
function holdThrough(
  method: (call: HoldCall) => Observable<LockHandle>,
  path: string,
  signal: AbortSignal | undefined,
): Promise<ContractHold> {
  let end!: () => void;
  const until = new Promise<void>((resolve) => (end = resolve));
  let returned!: () => void;
  let failed!: (error: unknown) => void;
  const done = new Promise<void>((resolve, reject) => {
    returned = resolve;
    failed = reject;
  });
  done.catch(() => undefined); // read by release(), if the hold was granted
  return new Promise<ContractHold>((resolve, reject) => {
    let held = false;
    let subscription: { unsubscribe(): void } | undefined;
    const onAbort = () => {
      subscription?.unsubscribe();
      reject(signal!.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    subscription = method({ path, until }).subscribe({
      next: (handle) => {
        held = true;
        signal?.removeEventListener('abort', onAbort);
        resolve({
          signal: handle.signal,
          fencingToken: handle.fencingToken,
          release: async () => {
            await handle.release();
            end();
            await done;
          },
        });
      },
      error: (error: unknown) => {
        signal?.removeEventListener('abort', onAbort);
        if (held) failed(error);
        else reject(error);
      },
      complete: () => returned(),
    });
    if (signal?.aborted) onAbort();
  });
}

/** Every way of holding a lock, each one variant of the contract. */
export const VARIANTS: Variant[] = [
  serviceVariant('plain', {}),
  serviceVariant("mode 'write'", { mode: 'write' }),
  serviceVariant('coalesce: true', {}, { coalesce: true }),
  serviceVariant('leases: 1', { leases: 1 }),
  multiVariant,
  nestVariant,
];
