/**
 * The IPC protocol between chaos/main.ts and its workers (chaos/worker.ts). Tokens travel as
 * decimal strings (JSON has no bigint), session ids and passwords as hex.
 */

/** Worker to main: the Nest context is up and connected; the loop starts. */
export interface ReadyMessage {
  type: 'ready';
  /** `decorator` (@DistributedLock on a service method) or `withLock` (LockService.withLock). */
  style: LockStyle;
}

/** Worker to main: a session was established (the first, or a new one after expiry): how to expire it. */
export interface SessionMessage {
  type: 'session';
  id: string;
  password: string;
  /** The session timeout the server granted, in ms. */
  timeout: number;
}

/** Worker to main: the lock is ours (main tracks who holds it). */
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

/** Worker to main: one iteration failed; the worker goes on. `kind` is the error's class name. */
export interface ErrorEvent {
  type: 'error';
  kind: string;
  message: string;
  /** The token of the lock held when it failed, if one was. */
  token?: string;
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
  | ErrorEvent
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

export type LockStyle = 'decorator' | 'withLock';

const WORKER_TYPES = new Set(['ready', 'session', 'acquired', 'read', 'yielding', 'write', 'error', 'stopped']);
const MAIN_TYPES = new Set(['read-reply', 'write-reply', 'stop']);

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
  /** Seed of the worker's own PRNG (yields and pauses). */
  seed: 'CHAOS_SEED',
} as const;
