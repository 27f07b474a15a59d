/** Small numeric helpers of the benchmark (pure). */
import { performance } from 'node:perf_hooks';

/** Monotonic time in microseconds. */
export const nowUs = (): number => performance.now() * 1_000;

/** Latencies in µs, appended without reallocating on every push. */
export class Samples {
  private values = new Float64Array(1_024);
  length = 0;

  push(value: number): void {
    if (this.length === this.values.length) {
      const grown = new Float64Array(this.values.length * 2);
      grown.set(this.values);
      this.values = grown;
    }
    this.values[this.length++] = value;
  }

  /** Nearest-rank percentiles (µs, rounded), e.g. `percentiles(50, 99)`. */
  percentiles(...ps: number[]): number[] {
    const sorted = this.values.subarray(0, this.length).toSorted();
    return ps.map((p) => Math.round(percentile(sorted, p)));
  }
}

/** Nearest-rank percentile of ascending values (NaN when empty). */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

/** Rounds to `digits` decimals. */
export function round(value: number, digits: number): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

export const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
