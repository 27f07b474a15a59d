/** What sample/main.ts prints: formatting, percentiles, the live status line, the verdict on the log. */
import { performance } from 'node:perf_hooks';
import type { VerifyResult } from './verify.js';

export const say = (line = '') => console.log(line);
export const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
export const millis = (ms: number) => `${ms.toFixed(1)} ms`;
export const megabytes = (bytes: number) => `${Math.round(bytes / 2 ** 20)} MB`;
/** Elapsed time at the start of a status line, aligned. */
export const elapsedText = (ms: number) => `${(ms / 1000).toFixed(1).padStart(5)} s`;

/** Nearest-rank percentile of ascending values. */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

/** The last `lines` lines of `text`. */
export function tail(text: string, lines: number): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

/** A status line: rewritten in place on a terminal, printed every `everyMs` otherwise. */
export class Progress {
  /** The status line showing now: a new one replaces it. */
  private static current: Progress | undefined;
  private readonly timer: NodeJS.Timeout;
  private readonly startedAt = performance.now();
  private readonly tty: boolean = process.stdout.isTTY; // undefined when not a terminal
  private shown = false;
  private stopped = false;

  constructor(
    private readonly text: (elapsedMs: number) => string,
    everyMs: number,
  ) {
    Progress.current?.stop(false);
    Progress.current = this;
    this.timer = setInterval(() => this.render(), this.tty ? 100 : everyMs);
  }

  /** Stops the status line that is showing, if any (e.g. on a signal). */
  static stopCurrent(final = true): void {
    Progress.current?.stop(final);
  }

  /** Shows the final state (with `final`) and stops. */
  stop(final = true): void {
    if (this.stopped) return;
    this.stopped = true;
    if (Progress.current === this) Progress.current = undefined;
    clearInterval(this.timer);
    if (final) this.render();
    if (this.tty && this.shown) process.stdout.write('\n');
  }

  private render(): void {
    const text = this.text(performance.now() - this.startedAt);
    if (this.tty) {
      const width = Math.max(20, (process.stdout.columns || 80) - 1);
      process.stdout.write(`\r${text.length > width ? `${text.slice(0, width - 3)}...` : text}\u001b[K`);
      this.shown = true;
    } else {
      say(text);
    }
  }
}

/** Prints the verifier's verdict on the log: one PASS line, or a FAIL line and one line per problem. */
export function sayVerdict(
  result: VerifyResult,
  { log, expected, fenced }: { log: string; expected: number; fenced: boolean },
): void {
  say();
  if (result.ok) {
    const tokens = fenced ? '; fencing tokens strictly increasing' : '';
    say(
      `PASS: ${result.lines} lines verified in ${log}: counters 1..${expected} each exactly once, in order${tokens}.`,
    );
  } else {
    say(`FAIL: ${log} does not verify (${result.lines} lines, ${expected} expected):`);
    for (const problem of result.problems) say(`  - ${problem}`);
  }
}
