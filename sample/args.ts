/** Command line of sample/main.ts (pure). */
import { parseArgs } from 'node:util';

export const LIMITS = {
  workers: { min: 1, max: 200 },
  lines: { min: 1, max: 10_000 },
  requests: { min: 1, max: 100_000 },
  concurrency: { min: 1, max: 256 },
} as const;
export const DEFAULTS = { workers: 8, lines: 25, requests: 200, concurrency: 16 } as const;

export const USAGE = `Usage: npm run sample -- [options]
       npm run sample -- --http [options]
       npm run sample -- --jobs
       bash scripts/sample.sh [options]

W worker processes (each a Nest application context with its own ZooKeeper session) append
K numbered lines each to one log file; every line is a read-modify-write (read the last
counter, write counter + 1) under the distributed lock /locks/write_lock. Then the file is
verified: counters 1..W*K each exactly once, in order, fencing tokens strictly increasing.

With --http, two instances of a Nest HTTP app (two processes on two free loopback ports, one
ZooKeeper session each) serve POST /log, a handler decorated @DistributedLock('/locks/write_lock')
that does the same read-modify-write and answers { counter, token }. N requests, C at a time,
alternate between the two instances; then the instances are stopped (shutdown hooks) and the
file is verified the same way: counters 1..N.

With --jobs, three instances of a Nest app (three processes, one ZooKeeper session each, a 4 s
session timeout) run a @Cron job every second under @OnOneInstance + @WithoutOverlapping, and a
@LeaderElection provider. The sample prints who runs each tick, SIGKILLs the job's holder (which
also leads), then stops the next holder cleanly (SIGTERM), and shows both handovers with their
times (from the kill or the stop to the next run on another instance). It verifies that no tick
ran twice (a tick is the second it fired), that fencing tokens strictly increase, and that no two
leaders overlapped. It takes no other option; about 30 s.

Options:
  --workers W        worker processes, ${LIMITS.workers.min}..${LIMITS.workers.max} (default ${DEFAULTS.workers})
  --lines K          lines per worker, ${LIMITS.lines.min}..${LIMITS.lines.max} (default ${DEFAULTS.lines})
  --http             two HTTP app instances and N requests instead of the workers
  --jobs             three instances running a scheduled job and a leader election instead
  --requests N       with --http: requests, ${LIMITS.requests.min}..${LIMITS.requests.max} (default ${DEFAULTS.requests})
  --concurrency C    with --http: requests in flight at a time, ${LIMITS.concurrency.min}..${LIMITS.concurrency.max} (default ${DEFAULTS.concurrency})
  --no-lock          the same read-modify-write without the lock (with --http: POST /log-unlocked):
                     shows the corruption the lock prevents
  --log PATH         the log file, truncated first (default sample/lock.log)
  -h, --help         this text

Environment:
  ZK_CONNECT     ZooKeeper to use, e.g. 127.0.0.1:2181; unset: start a local server for the run

Exit status: 0 when the log verifies (--jobs: no tick ran twice, tokens increased, leaders never
overlapped), 1 when not (or the run failed), 2 for bad arguments.`;

export interface SampleArgs {
  workers: number;
  lines: number;
  /** HTTP mode: two app instances and `requests` requests instead of the workers. */
  http: boolean;
  /** Jobs mode: three instances running a scheduled job and a leader election. */
  jobs: boolean;
  requests: number;
  concurrency: number;
  noLock: boolean;
  /** As given (relative to the working directory), or undefined for the default. */
  log: string | undefined;
  help: boolean;
}

/** A bad command line; the message names the value and the rule. */
export class UsageError extends Error {
  override name = 'UsageError';
}

function wholeNumber(option: string, text: string | undefined, fallback: number, min: number, max: number): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!/^\d+$/.test(text.trim()) || value < min || value > max) {
    throw new UsageError(`--${option} ${JSON.stringify(text)}: must be a whole number from ${min} to ${max}`);
  }
  return value;
}

export function parseSampleArgs(argv: string[]): SampleArgs {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        workers: { type: 'string' },
        lines: { type: 'string' },
        http: { type: 'boolean' },
        jobs: { type: 'boolean' },
        requests: { type: 'string' },
        concurrency: { type: 'string' },
        'no-lock': { type: 'boolean' },
        log: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    // e.g. "Unknown option '--x'", "Option '--workers <value>' argument missing"
    throw new UsageError((error as Error).message.split('. ')[0].replace(/\.$/, ''), { cause: error });
  }
  if (values.log !== undefined && values.log.trim() === '') throw new UsageError('--log "": must be a file path');
  const http = values.http ?? false;
  const jobs = values.jobs ?? false;
  if (jobs) {
    const given = (['http', 'workers', 'lines', 'requests', 'concurrency', 'no-lock', 'log'] as const).find(
      (option) => values[option] !== undefined,
    );
    if (given) {
      throw new UsageError(`--${given} does not apply with --jobs (three instances run a scheduled job; no options)`);
    }
  }
  // Options of the other mode would be silently ignored: say so instead.
  const misplaced = http
    ? (['workers', 'lines'] as const).find((option) => values[option] !== undefined)
    : (['requests', 'concurrency'] as const).find((option) => values[option] !== undefined);
  if (misplaced) {
    throw new UsageError(
      http
        ? `--${misplaced} does not apply with --http (two app instances serve the requests; see --requests)`
        : `--${misplaced} needs --http`,
    );
  }
  return {
    workers: wholeNumber('workers', values.workers, DEFAULTS.workers, LIMITS.workers.min, LIMITS.workers.max),
    lines: wholeNumber('lines', values.lines, DEFAULTS.lines, LIMITS.lines.min, LIMITS.lines.max),
    http,
    jobs,
    requests: wholeNumber('requests', values.requests, DEFAULTS.requests, LIMITS.requests.min, LIMITS.requests.max),
    concurrency: wholeNumber(
      'concurrency',
      values.concurrency,
      DEFAULTS.concurrency,
      LIMITS.concurrency.min,
      LIMITS.concurrency.max,
    ),
    noLock: values['no-lock'] ?? false,
    log: values.log,
    help: values.help ?? false,
  };
}
