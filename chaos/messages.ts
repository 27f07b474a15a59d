/**
 * The IPC protocol between chaos/main.ts and its workers (chaos/worker.ts). Tokens travel as
 * decimal strings (JSON has no bigint), session ids and passwords as hex, times as decimal
 * strings of `process.hrtime.bigint()` nanoseconds (CLOCK_MONOTONIC: one clock for every
 * process of the machine, so main compares the workers' times directly).
 */
import type { BeliefMode } from './beliefs.js';

export type { BeliefMode };

/** The lock paths of the workload: one kind of lock per path. */
export const PATHS = {
  /** The fenced counter: exclusive (plain locks, the decorator, Observables, multi-locks, coalescing). */
  counter: '/locks/write_lock',
  /** A read/write lock: readers share it, a writer excludes everyone. */
  rw: '/chaos/rw',
  /** A semaphore of {@link SEMAPHORE_LEASES} leases. */
  semaphore: '/chaos/sem',
  /** The second part of the multi-lock (with the counter). */
  multi: '/chaos/multi',
} as const;

export const SEMAPHORE_LEASES = 2;

/**
 * `mixed`: one loop of fenced read-modify-writes by every way of locking (decorator, withLock,
 * an Observable method, tryAcquire, short timeouts, multi-lock, a write under a held read lock)
 * and one loop on the read/write lock and the semaphore. `coalesce`: the same with the module
 * option `coalesce`, and two local callers of the counter at once.
 */
export type LockStyle = 'mixed' | 'coalesce';

/** Worker to main: the Nest context is up and connected; the loops start. */
export interface ReadyMessage {
  type: 'ready';
  style: LockStyle;
  /** The mutant applied to its connection (test/mutants), if any. */
  mutant?: string;
}

/** Worker to main: a session was established (the first, or a new one after expiry): how to expire it. */
export interface SessionMessage {
  type: 'session';
  id: string;
  password: string;
  /** The session timeout the server granted, in ms. */
  timeout: number;
}

/** Worker to main: the counter lock is ours (main tracks who holds it). */
export interface AcquiredMessage {
  type: 'acquired';
  token: string;
}

/** Worker to main: read the last counter, fenced with `token`; answered by a ReadReply with the same `req`. */
export interface ReadRequest {
  type: 'read';
  req: number;
  token: string;
}

/** Worker to main: the counter is read, about to yield before the write (where a pause does the most harm). */
export interface YieldingMessage {
  type: 'yielding';
  token: string;
}

/** Worker to main: write `counter` with `token`; answered by a WriteReply with the same `req`. */
export interface WriteRequest {
  type: 'write';
  req: number;
  token: string;
  counter: number;
}

/**
 * Worker to main: a belief starts: from now on this worker's code acts as the holder of `path`
 * (the lock's promise resolved, or the locked body started).
 */
export interface HoldMessage {
  type: 'hold';
  /** Unique in its process. */
  id: number;
  path: string;
  mode: BeliefMode;
  /** hrtime ns. */
  at: string;
  token: string;
  /** Which operation took it (e.g. `decorator`, `tryAcquire`, `nested`). */
  op: string;
  /** The process's session (hex) when it started. */
  session?: string;
}

/** Worker to main: the belief `id` ended: its holder's code finished (`released`), or its signal aborted (`lost`). */
export interface UnholdMessage {
  type: 'unhold';
  id: number;
  at: string;
  how: 'released' | 'lost';
}

/** Worker to main: the event loop did not run from `from` to `to` (hrtime ns): the process could act on nothing. */
export interface StallMessage {
  type: 'stall';
  from: string;
  to: string;
}

/** Worker to main: one iteration of an operation ended (`busy`: tryAcquire null or a short timeout, as intended). */
export interface OpMessage {
  type: 'op';
  op: string;
  outcome: 'ok' | 'busy' | 'error';
}

/** Worker to main: one iteration failed; the worker goes on. `kind` is the error's class name. */
export interface ErrorEvent {
  type: 'error';
  op: string;
  kind: string;
  message: string;
  /** The token of the counter lock held when it failed, if one was. */
  token?: string;
}

/** Worker to main: an unhandled rejection or uncaught exception: the worker exits next. */
export interface TripwireMessage {
  type: 'tripwire';
  line: string;
}

/** Worker to main: after `stop`, its last iteration is over and its Nest context closed; it exits next. */
export interface StoppedMessage {
  type: 'stopped';
  iterations: number;
}

export type WorkerMessage =
  | ReadyMessage
  | SessionMessage
  | AcquiredMessage
  | ReadRequest
  | YieldingMessage
  | WriteRequest
  | HoldMessage
  | UnholdMessage
  | StallMessage
  | OpMessage
  | ErrorEvent
  | TripwireMessage
  | StoppedMessage;

export interface ReadReply {
  type: 'read-reply';
  req: number;
  ok: boolean;
  counter?: number;
  reason?: string;
}

export interface WriteReply {
  type: 'write-reply';
  req: number;
  ok: boolean;
  reason?: string;
}

/** Main to worker: finish the current iteration, close, exit. */
export interface StopMessage {
  type: 'stop';
}

export type MainMessage = ReadReply | WriteReply | StopMessage;

const WORKER_TYPES = new Set<string>([
  'ready',
  'session',
  'acquired',
  'read',
  'yielding',
  'write',
  'hold',
  'unhold',
  'stall',
  'op',
  'error',
  'tripwire',
  'stopped',
] satisfies WorkerMessage['type'][]);
const MAIN_TYPES = new Set<string>(['read-reply', 'write-reply', 'stop'] satisfies MainMessage['type'][]);

const typeOf = (value: unknown) =>
  typeof value === 'object' && value !== null ? String((value as { type?: unknown }).type) : '';

export function isWorkerMessage(value: unknown): value is WorkerMessage {
  return WORKER_TYPES.has(typeOf(value));
}

export function isMainMessage(value: unknown): value is MainMessage {
  return MAIN_TYPES.has(typeOf(value));
}

/** What main passes to each worker, in its environment. */
export const ENV = {
  /** The worker's connection string: its own proxies, one per ensemble member. */
  connect: 'CHAOS_CONNECT',
  workerId: 'CHAOS_WORKER_ID',
  /** Requested session timeout, ms. */
  sessionTimeout: 'CHAOS_SESSION_TIMEOUT',
  style: 'CHAOS_LOCK_STYLE',
  /** Seed of the worker's own PRNG (operations, yields and pauses). */
  seed: 'CHAOS_SEED',
  /** A mutant of test/mutants/port-mutants.ts to apply to the worker's connection (unset: the real lock). */
  mutant: 'CHAOS_MUTANT',
  /** With --tls: `{ "ca", "cert", "key" }`, the files the worker reads at each connection (unset: plaintext). */
  tls: 'CHAOS_TLS_FILES',
} as const;

/** The certificate files of a worker's connection (--tls). */
export interface TlsFiles {
  ca: string;
  cert: string;
  key: string;
}
