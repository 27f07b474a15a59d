/**
 * The IPC protocol between sample/main.ts (the parent) and the processes it forks: the workers
 * (sample/worker.ts), with --http the app instances (sample/http-instance.ts), and with --jobs
 * the scheduled-jobs instances (sample/jobs-instance.ts).
 */

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

/** App instance to parent: connected to ZooKeeper and listening on `url`. */
export interface ListeningMessage {
  type: 'listening';
  /** e.g. `http://127.0.0.1:41234` */
  url: string;
  /** From the instance's first line of code to listening, in ms. */
  startupMs: number;
}

/** App instance to parent: start-up failed (the same shape as a worker's); it exits with code 1 next. */
export type InstanceMessage = ListeningMessage | ErrorMessage;

const INSTANCE_TYPES = new Set(['listening', 'error']);

export function isInstanceMessage(value: unknown): value is InstanceMessage {
  return typeof value === 'object' && value !== null && INSTANCE_TYPES.has(String((value as { type?: unknown }).type));
}

// ---- --jobs: the scheduled-jobs instances ----
// Instants are process.hrtime.bigint() as decimal strings: the machine's monotonic clock, the
// same in every process, so the parent can subtract them from its own.

/** Jobs instance to parent: its app is up (the elections are being joined). */
export interface JobsReadyMessage {
  type: 'jobs-ready';
  /** The session timeout the server granted, in ms. */
  sessionTimeoutMs: number;
  /** From the instance's first line of code to ready, in ms. */
  startupMs: number;
}

/** Jobs instance to parent: it ran a tick of the @Cron job. */
export interface RanMessage {
  type: 'ran';
  /** The second the tick fired (Unix time, from cron's record of the firing): the tick's identity. */
  second: number;
  /** The run's fencing token (decimal). */
  token: string;
  /** When the run began (hrtime). */
  at: string;
}

/** Jobs instance to parent: it now holds the job (its election), or no longer does. */
export interface JobHolderMessage {
  type: 'job-holder';
  holds: boolean;
  token: string;
  at: string;
  /** Why it let go (holds: false). */
  reason?: string;
}

/** Jobs instance to parent: what its @LeaderElection provider was told. */
export interface LeaderMessage {
  /** onLeadershipAcquired; the leader's signal aborted (its belief ends); onLeadershipLost. */
  type: 'leader-acquired' | 'leader-signal' | 'leader-lost';
  token: string;
  at: string;
  reason?: string;
}

/** Jobs instance to parent: a warning or an error it logged. */
export interface LogMessage {
  type: 'log';
  level: 'warn' | 'error' | 'fatal';
  message: string;
}

export type JobsInstanceMessage =
  JobsReadyMessage | RanMessage | JobHolderMessage | LeaderMessage | LogMessage | ErrorMessage;

const JOBS_INSTANCE_TYPES = new Set([
  'jobs-ready',
  'ran',
  'job-holder',
  'leader-acquired',
  'leader-signal',
  'leader-lost',
  'log',
  'error',
]);

export function isJobsInstanceMessage(value: unknown): value is JobsInstanceMessage {
  return (
    typeof value === 'object' && value !== null && JOBS_INSTANCE_TYPES.has(String((value as { type?: unknown }).type))
  );
}

/** Sends `message` to sample/main.js; rejects when the IPC channel is gone. */
export function sendToParent(message: WorkerMessage | InstanceMessage | JobsInstanceMessage): Promise<void> {
  return new Promise((resolve, reject) => {
    if (!process.send || !process.connected) {
      reject(new Error('the IPC channel to sample/main.js is closed'));
      return;
    }
    process.send(message, undefined, {}, (error) => (error ? reject(error) : resolve()));
  });
}

/** What the parent passes to each worker (and app instance), in its environment. */
export const ENV = {
  /** ZooKeeper connection string (the library's `connectionString`). */
  connect: 'ZK_CONNECT',
  /** 1-based worker (or app instance) number. */
  workerId: 'SAMPLE_WORKER_ID',
  /** Lines this worker appends (workers only). */
  lines: 'SAMPLE_LINES',
  /** The log file (absolute path). */
  log: 'SAMPLE_LOG',
  /** `1`: the same read-modify-write without the lock (workers only; app instances serve both routes). */
  noLock: 'NO_LOCK',
} as const;

/** The value of the environment variable `name`; throws when it is unset or empty. */
export function requireEnv(env: NodeJS.ProcessEnv, name: string): string {
  const value = env[name];
  if (!value) throw new Error(`the environment variable ${name} is not set (sample/main.js sets it)`);
  return value;
}

/** The whole number >= 1 in the environment variable `name`; throws when it is not one. */
export function requirePositiveEnv(env: NodeJS.ProcessEnv, name: string): number {
  const text = requireEnv(env, name);
  if (!/^[1-9]\d*$/.test(text)) throw new Error(`${name}=${JSON.stringify(text)} must be a whole number >= 1`);
  return Number(text);
}
