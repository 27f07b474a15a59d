/** The leader workload's JSON lines (docs/benchmarks.md) and the pure parts of its report. */
import { percentile, round } from './stats.js';

export interface LeaderCleanLine {
  workload: 'leader';
  point: 'clean';
  instances: number;
  handovers: number;
  p50_ms: number;
  p99_ms: number;
  max_ms: number;
  session_timeout_ms: number;
  /** A TTL lease (TTL = the session timeout) deleted at shutdown: the next poll, at most TTL / 3 later. */
  ttl_lease_bound_ms: number;
  /** Handovers where the old leader's signal had not aborted when the next one was told it leads: must be 0. */
  overlaps: number;
  /** Requests the server received per handover (the old leader's close, the next one's take-over), pings left out. */
  requests_per_op: number;
}

export interface LeaderCrashLine {
  workload: 'leader';
  point: 'crash';
  instances: number;
  handovers: number;
  p50_ms: number;
  p99_ms: number;
  max_ms: number;
  session_timeout_ms: number;
  /** p50_ms and max_ms over the session timeout. */
  p50_ratio: number;
  max_ratio: number;
  /** A TTL lease (TTL = the session timeout, renewed and polled every TTL / 3) after a crash: up to TTL + one poll. */
  ttl_lease_bound_ms: number;
  overlaps: number;
  requests_per_op: number;
}

export interface LeaderSkipLine {
  workload: 'leader';
  point: 'skip';
  instances: number;
  skipped_ticks: number;
  /** Runs on the instances that do not hold the job: must be 0. */
  runs: number;
  /** Requests the server received per skipped tick, pings left out: must be 0. */
  requests_per_op: number;
}

export type LeaderLine = LeaderCleanLine | LeaderCrashLine | LeaderSkipLine;

/** The computed bounds of a TTL lease with TTL = `ttl` ms, renewed and polled every TTL / 3. */
export function ttlLeaseBounds(ttl: number): { clean: number; crash: number } {
  return { clean: round(ttl / 3, 1), crash: round(ttl + ttl / 3, 1) };
}

/** ZooKeeper opcodes a handover sends. */
const OPCODES: Record<number, string> = {
  1: 'create',
  2: 'delete',
  3: 'exists',
  4: 'getData',
  5: 'setData',
  8: 'getChildren',
  12: 'getChildren2',
  15: 'create2',
  18: 'removeWatches',
  19: 'createContainer',
  [-11]: 'closeSession',
};

/** `delete 1, closeSession 1, ...` per operation. */
export function perOpcode(opcodes: Map<number, number>, operations: number): string {
  return [...opcodes]
    .toSorted(([, a], [, b]) => b - a)
    .map(([code, count]) => `${OPCODES[code] ?? `opcode ${code}`} ${round(count / operations, 2)}`)
    .join(', ');
}

/** p50, p99 and max of handover times (ms, rounded to 0.1). */
export function handoverStats(times: number[]): { p50: number; p99: number; max: number } {
  const sorted = times.toSorted((a, b) => a - b);
  return {
    p50: round(percentile(sorted, 50), 1),
    p99: round(percentile(sorted, 99), 1),
    max: round(sorted.at(-1) ?? Number.NaN, 1),
  };
}
