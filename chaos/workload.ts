/**
 * What a chaos worker does under its locks (chaos/worker.ts runs it): fenced read-modify-writes
 * of the counter by every way of locking the library offers, and short holds of a read/write
 * lock and a semaphore. Every holder reports its belief interval to main: from the moment its
 * code acts as the holder to the moment its code stops (release) or its signal aborts (loss),
 * whichever comes first, on process.hrtime.bigint() (one monotonic clock for all processes).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Injectable } from '@nestjs/common';
import { from, lastValueFrom, Observable } from 'rxjs';
import { DistributedLock, LockService, LockTimeoutError, type LockHandle } from '../lib/index.js';
import {
  isMainMessage,
  PATHS,
  SEMAPHORE_LEASES,
  type BeliefMode,
  type MainMessage,
  type ReadReply,
  type WorkerMessage,
  type WriteReply,
} from './messages.js';
import { Prng } from './prng.js';

/** How long a waiting acquisition waits for its lock before a LockTimeoutError. */
export const LOCK_TIMEOUT = 8_000;

/** The ways of locking the counter, with their weights in the draw. */
export const COUNTER_OPS = {
  decorator: 2,
  withLock: 2,
  observable: 1,
  tryAcquire: 1,
  shortTimeout: 1,
  multi: 1,
  nested: 1,
} as const;
export type CounterOp = keyof typeof COUNTER_OPS;

/**
 * The holds of the read/write lock, with their weights. `longRead` holds a read lock for 1-5 s,
 * longer than some session timeouts, with writers queueing behind it; `quietRead` does the same
 * and the worker's other loops start nothing meanwhile: a holder that sends nothing for a while
 * (it pings). What the targeted faults (notify-cut, ping-cut) aim at.
 */
export const RW_OPS = { read: 2, write: 2, longRead: 1, quietRead: 1 } as const;
/** The holds of the semaphore, with their weights (tryLease: only if a lease is free now). */
export const SEMAPHORE_OPS = { lease: 3, tryLease: 1 } as const;
export const SIDE_OPS = { ...RW_OPS, ...SEMAPHORE_OPS } as const;
export type SideOp = keyof typeof SIDE_OPS;

/** The operations that hold a lock for seconds (what the targeted faults prefer to hit). */
export const LONG_HOLDS: ReadonlySet<string> = new Set(['longRead', 'quietRead', 'nested']);

/** The operations for which "busy" is a lawful outcome (they need not ever get the lock). */
export const MAY_BE_BUSY: ReadonlySet<string> = new Set(['tryAcquire', 'shortTimeout', 'tryLease']);

/** The store refused a read or a write: this worker's token is stale (it lost the lock without knowing in time). */
export class StaleTokenError extends Error {
  override name = 'StaleTokenError';
}

/** The lock was busy, as the operation intended to find out (tryAcquire null, a short timeout). */
export class Busy extends Error {
  override name = 'Busy';
}

export const now = () => process.hrtime.bigint().toString();

export function send(message: WorkerMessage): void {
  if (process.connected) process.send?.(message);
}

/** The belief intervals of this process, reported to main as they start and end. */
export class Beliefs {
  private next = 1;

  /** The current session's id, hex (set by the worker). */
  session: () => string | undefined = () => undefined;

  /** Starts a belief in `path`; the returned function ends it as released (a loss of `signal` ends it first). */
  hold(path: string, mode: BeliefMode, token: bigint, signal: AbortSignal, op: string): () => void {
    const id = this.next++;
    send({ type: 'hold', id, path, mode, at: now(), token: token.toString(), op, session: this.session() });
    let ended = false;
    const end = (how: 'released' | 'lost') => {
      if (ended) return;
      ended = true;
      signal.removeEventListener('abort', onAbort);
      send({ type: 'unhold', id, at: now(), how });
    };
    const onAbort = () => end('lost');
    if (signal.aborted) end('lost');
    else signal.addEventListener('abort', onAbort, { once: true });
    return () => end('released');
  }
}

/** The fenced store, in chaos/main.js, over the IPC channel. */
export class StoreClient {
  private nextReq = 1;
  private readonly pending = new Map<number, { resolve: (reply: MainMessage) => void; reject: (e: Error) => void }>();

  constructor() {
    process.on('message', (message: unknown) => {
      if (!isMainMessage(message) || message.type === 'stop') return;
      const waiter = this.pending.get(message.req);
      this.pending.delete(message.req);
      waiter?.resolve(message);
    });
    process.once('disconnect', () => {
      for (const waiter of this.pending.values()) waiter.reject(new Error('the IPC channel to main is closed'));
      this.pending.clear();
    });
  }

  read(token: bigint): Promise<ReadReply> {
    return this.ask({ type: 'read', req: this.nextReq++, token: token.toString() }) as Promise<ReadReply>;
  }

  write(token: bigint, counter: number): Promise<WriteReply> {
    return this.ask({ type: 'write', req: this.nextReq++, token: token.toString(), counter }) as Promise<WriteReply>;
  }

  private ask(request: WorkerMessage & { req: number }): Promise<MainMessage> {
    return new Promise((resolve, reject) => {
      if (!process.connected) {
        reject(new Error('the IPC channel to main is closed'));
        return;
      }
      this.pending.set(request.req, { resolve, reject });
      process.send!(request);
    });
  }
}

/** One iteration's state: the counter token it held, for its error report. */
export interface Iteration {
  op: string;
  token?: bigint;
}

/** The seed of the workload's PRNG (a provider, so that the service stays injectable). */
export class WorkloadSeed {
  constructor(readonly seed: number) {}
}

@Injectable()
export class Workload {
  private readonly prng: Prng;
  readonly beliefs = new Beliefs();
  /** Until then (performance.now()), the loops start no new iteration (a `quietRead` holds). */
  quietUntil = 0;

  constructor(
    private readonly locks: LockService,
    private readonly store: StoreClient,
    seed: WorkloadSeed,
  ) {
    this.prng = new Prng(seed.seed);
  }

  private readonly counterOps = new Deck<CounterOp>(COUNTER_OPS);
  private readonly rwOps = new Deck<SideOp>(RW_OPS);
  private readonly semaphoreOps = new Deck<SideOp>(SEMAPHORE_OPS);

  pickCounterOp(): CounterOp {
    return this.counterOps.deal(this.prng);
  }

  pickRwOp(): SideOp {
    return this.rwOps.deal(this.prng);
  }

  pickSemaphoreOp(): SideOp {
    return this.semaphoreOps.deal(this.prng);
  }

  /** One fenced read-modify-write of the counter by `op`; rejects with Busy when the lock was (meant to be found) busy. */
  async counter(it: Iteration & { op: CounterOp }): Promise<void> {
    const options = { timeout: LOCK_TIMEOUT };
    switch (it.op) {
      case 'decorator':
        await this.appendDecorated(it);
        return;
      case 'observable':
        await lastValueFrom(this.appendObservable(it));
        return;
      case 'withLock':
        await this.locks.withLock(PATHS.counter, (lock) => this.critical(lock, it), options);
        return;
      case 'tryAcquire': {
        // A few looks: the counter is rarely free with every worker queueing for it.
        let lock = await this.locks.tryAcquire(PATHS.counter);
        for (let look = 1; !lock && look < 4; look += 1) {
          await sleep(this.prng.between(5, 30));
          lock = await this.locks.tryAcquire(PATHS.counter);
        }
        return this.holdThen(lock, it);
      }
      case 'shortTimeout': {
        let lock: LockHandle;
        try {
          lock = await this.locks.acquire(PATHS.counter, { timeout: this.prng.int(20, 300) });
        } catch (error) {
          if (error instanceof LockTimeoutError) throw new Busy('timed out, as a short timeout may');
          throw error;
        }
        return this.holdThen(lock, it);
      }
      case 'multi': {
        const both = await this.locks.acquireAll([PATHS.counter, PATHS.multi], options);
        const part = (path: string) => both.locks[both.paths.indexOf(path)];
        const endMulti = this.beliefs.hold(PATHS.multi, 'write', part(PATHS.multi).fencingToken, both.signal, it.op);
        try {
          await this.critical({ fencingToken: part(PATHS.counter).fencingToken, signal: both.signal }, it);
        } finally {
          endMulti();
          await both.release();
        }
        return;
      }
      case 'nested': {
        // A write of the counter while holding the write lock of /chaos/rw: a holder that waits
        // for another lock, with contenders behind it (what the "notification, then cut" fault
        // aims at). Always in this order (rw, then the counter): no deadlock.
        const outer = await this.locks.acquireWrite(PATHS.rw, options);
        const endOuter = this.beliefs.hold(PATHS.rw, 'write', outer.fencingToken, outer.signal, it.op);
        try {
          await this.locks.withLock(PATHS.counter, (lock) => this.critical(lock, it), options);
        } finally {
          endOuter();
          await outer.release();
        }
        return;
      }
    }
  }

  /** A short hold of the read/write lock or the semaphore (tryLease: only if a lease is free now). */
  async side(op: SideOp): Promise<void> {
    const options = { timeout: LOCK_TIMEOUT };
    const leases = SEMAPHORE_LEASES;
    let taken: LockHandle | null;
    const reads = op === 'read' || op === 'longRead' || op === 'quietRead';
    if (reads) taken = await this.locks.acquireRead(PATHS.rw, options);
    else if (op === 'write') taken = await this.locks.acquireWrite(PATHS.rw, options);
    else if (op === 'lease') taken = await this.locks.acquire(PATHS.semaphore, { ...options, leases });
    else taken = await this.locks.tryAcquire(PATHS.semaphore, { leases });
    if (!taken) throw new Busy('no lease free, as tryAcquire may find');
    const lock = taken;
    const [path, mode]: [string, BeliefMode] = reads
      ? [PATHS.rw, 'read']
      : op === 'write'
        ? [PATHS.rw, 'write']
        : [PATHS.semaphore, 'lease'];
    const end = this.beliefs.hold(path, mode, lock.fencingToken, lock.signal, op);
    try {
      const long = op === 'longRead' || op === 'quietRead';
      const ms = long ? this.prng.between(1_000, 5_000) : this.prng.between(10, 60);
      if (op === 'quietRead') this.quietUntil = performance.now() + ms;
      await sleep(ms, undefined, { signal: lock.signal }).catch(() => undefined);
      lock.signal.throwIfAborted();
    } finally {
      if (op === 'quietRead') this.quietUntil = 0;
      end();
      await lock.release();
    }
  }

  /** One iteration through the decorator: the lock is held for the whole call. */
  @DistributedLock(PATHS.counter, { timeout: LOCK_TIMEOUT })
  async appendDecorated(it: Iteration): Promise<number> {
    return this.critical(this.locks.current(PATHS.counter)!, it);
  }

  /** One iteration through a decorated method returning an Observable: held from subscribe to complete. */
  @DistributedLock(PATHS.counter, { timeout: LOCK_TIMEOUT })
  appendObservable(it: Iteration): Observable<number> {
    return from(this.critical(this.locks.current(PATHS.counter)!, it));
  }

  /** A pause between iterations, so that the workers do not saturate 2 cores; and while a quietRead holds. */
  async pause(min = 5, max = 25): Promise<void> {
    await sleep(this.prng.between(min, max));
    while (performance.now() < this.quietUntil) await sleep(this.quietUntil - performance.now());
  }

  /** A longer pause after an error (a NotConnectedError would otherwise spin). */
  backoff(): Promise<void> {
    return sleep(this.prng.between(50, 250));
  }

  private async holdThen(lock: LockHandle | null, it: Iteration): Promise<void> {
    if (!lock) throw new Busy('held elsewhere, as tryAcquire may find');
    try {
      await this.critical(lock, it);
    } finally {
      await lock.release();
    }
  }

  /** The read-modify-write, fenced, as the holder of the counter; resolves with the counter written. */
  private async critical(lock: Pick<LockHandle, 'fencingToken' | 'signal'>, it: Iteration): Promise<number> {
    const token = lock.fencingToken;
    const end = this.beliefs.hold(PATHS.counter, 'write', token, lock.signal, it.op);
    it.token = token;
    try {
      send({ type: 'acquired', token: token.toString() });
      lock.signal.throwIfAborted();
      const read = await this.store.read(token);
      if (!read.ok) throw new StaleTokenError(`read refused: ${read.reason}`);
      // Real work between the read and the write: other holders would interleave here without the lock.
      const slept = sleep(this.prng.between(20, 50));
      // Said once the timer runs (main may SIGSTOP us right away): a process paused now wakes up
      // with its timer due, and writes before it hears of anything that happened meanwhile.
      send({ type: 'yielding', token: token.toString() });
      await slept;
      // The documented way: stop when the lock is gone. (A process paused right here checks
      // nothing: the store's token check is what stops its write.)
      lock.signal.throwIfAborted();
      const counter = read.counter! + 1;
      const written = await this.store.write(token, counter);
      if (!written.ok) throw new StaleTokenError(`write of ${counter} refused: ${written.reason}`);
      return counter;
    } finally {
      end();
    }
  }
}

/**
 * Ops dealt from a shuffled deck that holds each op as many times as its weight, refilled when
 * empty: the draw keeps the weights, and every op comes within each round (a 1-in-6 op such as
 * `longRead` once went undrawn through a whole slow run, failing the workload check).
 */
class Deck<K extends string> {
  private cards: K[] = [];

  constructor(private readonly weights: Readonly<Partial<Record<K, number>>>) {}

  deal(prng: Prng): K {
    if (this.cards.length === 0) {
      for (const [key, weight] of Object.entries(this.weights) as [K, number][]) {
        for (let i = 0; i < weight; i += 1) this.cards.push(key);
      }
      for (let i = this.cards.length - 1; i > 0; i -= 1) {
        const j = prng.int(0, i);
        [this.cards[i], this.cards[j]] = [this.cards[j], this.cards[i]];
      }
    }
    return this.cards.pop()!;
  }
}
