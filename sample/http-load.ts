/**
 * The load of `npm run sample -- --http`: N POST requests, C in flight at a time, request i to
 * target i mod (number of targets), with Node's fetch. Records each request's latency and
 * answer; a failed request (an error status, a bad body, a network error, its timeout) is
 * recorded and the load goes on.
 */
import { performance } from 'node:perf_hooks';
import type { LogEntry } from './http-app.js';

export interface LoadOptions {
  /** Base URLs, e.g. `http://127.0.0.1:41234`; request i goes to `targets[i % targets.length]`. */
  targets: readonly string[];
  /** e.g. `/log` */
  path: string;
  requests: number;
  concurrency: number;
  /** Deadline of one request, in ms. */
  requestTimeoutMs: number;
  /** Aborting it stops the load: no new requests, the ones in flight are cancelled. */
  signal?: AbortSignal;
}

/** Live counters, for a progress line. */
export class LoadStats {
  started = 0;
  answered = 0;
  failed = 0;
  /** Answered requests per target. */
  readonly perTarget: number[];

  constructor(targets: number) {
    this.perTarget = Array.from({ length: targets }, () => 0);
  }

  get inFlight(): number {
    return this.started - this.answered - this.failed;
  }
}

export interface LoadResult {
  /** From the first request sent to the last one settled. */
  elapsedMs: number;
  /** Latency of each answered request in ms, ascending. */
  latencies: number[];
  /** The answers, in the order they arrived. */
  answers: LogEntry[];
  /** One line per failed request, in the order they failed. */
  failures: string[];
  /** Requests never sent because the load was stopped (`signal`). */
  notSent: number;
}

function isLogEntry(value: unknown): value is LogEntry {
  if (typeof value !== 'object' || value === null) return false;
  const { counter, token } = value as Record<string, unknown>;
  return Number.isInteger(counter) && (token === null || (typeof token === 'string' && /^\d+$/.test(token)));
}

/** Why a fetch failed, in a few words: `ECONNREFUSED`, `timed out after 60000 ms`, ... */
function reason(error: unknown, timeoutMs: number): string {
  if (error instanceof DOMException && error.name === 'TimeoutError') return `timed out after ${timeoutMs} ms`;
  if (!(error instanceof Error)) return String(error);
  const code = (error.cause as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' ? `${error.message} (${code})` : error.message;
}

/** Sends the requests; resolves when all have settled (or the load was stopped). Never rejects. */
export async function runLoad(
  options: LoadOptions,
  stats = new LoadStats(options.targets.length),
): Promise<LoadResult> {
  const { targets, path, requests, concurrency, requestTimeoutMs, signal } = options;
  const latencies: number[] = [];
  const answers: LogEntry[] = [];
  const failures: string[] = [];
  let next = 0;

  async function send(index: number): Promise<void> {
    const target = index % targets.length;
    const url = `${targets[target]}${path}`;
    const timeout = AbortSignal.timeout(requestTimeoutMs);
    const startedAt = performance.now();
    try {
      const response = await fetch(url, {
        method: 'POST',
        signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
      });
      const text = await response.text();
      const latency = performance.now() - startedAt;
      if (!response.ok) throw new Error(`${response.status} ${response.statusText}: ${text.slice(0, 200)}`);
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        body = undefined;
      }
      if (!isLogEntry(body)) throw new Error(`unexpected answer ${JSON.stringify(text.slice(0, 200))}`);
      latencies.push(latency);
      answers.push(body);
      stats.answered += 1;
      stats.perTarget[target] += 1;
    } catch (error) {
      stats.failed += 1;
      failures.push(`request ${index + 1}, POST ${url}: ${reason(error, requestTimeoutMs)}`);
    }
  }

  const stopped = () => signal?.aborted === true;
  async function loop(): Promise<void> {
    while (next < requests && !stopped()) {
      const index = next++;
      stats.started += 1;
      await send(index);
    }
  }

  const startedAt = performance.now();
  await Promise.all(Array.from({ length: Math.min(concurrency, requests) }, loop));
  return {
    elapsedMs: performance.now() - startedAt,
    latencies: latencies.toSorted((a, b) => a - b),
    answers,
    failures,
    notSent: requests - next,
  };
}
