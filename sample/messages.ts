/** The IPC protocol between sample/main.ts (the parent) and sample/worker.ts (each forked worker). */

/** Parent to worker: everybody is ready, start writing now (all workers race from the same moment). */
export interface GoMessage {
  type: 'go';
}

/** Worker to parent: connected to ZooKeeper, waiting for `go`. */
export interface ReadyMessage {
  type: 'ready';
  /** From the worker's first line of code to connected, in ms. */
  startupMs: number;
}

/** Worker to parent: one more line appended to the log (progress). */
export interface LineMessage {
  type: 'line';
  workerId: number;
}

/** Worker to parent: all lines written; the worker closes its Nest context and exits next. */
export interface DoneMessage {
  type: 'done';
  /** Lock wait of each acquisition, in ms (all 0 with NO_LOCK). */
  waits: number[];
  /** The worker's peak resident set size, in bytes. */
  maxRss: number;
}

/** Worker to parent: something failed; the worker exits with code 1 next. */
export interface ErrorMessage {
  type: 'error';
  message: string;
}

export type WorkerMessage = ReadyMessage | LineMessage | DoneMessage | ErrorMessage;

const WORKER_TYPES = new Set(['ready', 'line', 'done', 'error']);

export function isWorkerMessage(value: unknown): value is WorkerMessage {
  return typeof value === 'object' && value !== null && WORKER_TYPES.has(String((value as { type?: unknown }).type));
}

export function isGoMessage(value: unknown): value is GoMessage {
  return typeof value === 'object' && value !== null && (value as { type?: unknown }).type === 'go';
}

/** What the parent passes to each worker, in its environment. */
export const ENV = {
  /** ZooKeeper connection string (the library's `connectionString`). */
  connect: 'ZK_CONNECT',
  /** 1-based worker number. */
  workerId: 'SAMPLE_WORKER_ID',
  /** Lines this worker appends. */
  lines: 'SAMPLE_LINES',
  /** The log file (absolute path). */
  log: 'SAMPLE_LOG',
  /** `1`: the same read-modify-write without the lock. */
  noLock: 'NO_LOCK',
} as const;
