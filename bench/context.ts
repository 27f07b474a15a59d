/** What every workload gets (workloads.ts and kinds.ts both use it, neither imports the other for it). */
import type { ZkLockOptions } from '../lib/index.js';
import type { BenchArgs } from './args.js';
import type { BenchServer } from './server.js';
import { round } from './stats.js';

/** Every node the benchmark makes lives under this path (deleted before and after a run). */
export const BENCH_ROOT = '/bench';

export interface BenchContext {
  server: BenchServer;
  args: BenchArgs;
  /** A remark for the human-readable output (stderr). */
  note(text: string): void;
  /** The sessions' `tls` option (the tls workload's TLS side; w1 and w2 read it); plaintext without. */
  tls?: ZkLockOptions['tls'];
}

export const perSecond = (count: number, elapsedUs: number) => round(count / (elapsedUs / 1e6), 1);
export const perOp = (requests: number, ops: number) => round(ops > 0 ? requests / ops : Number.NaN, 3);
