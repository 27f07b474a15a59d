/** Command line of chaos/main.ts (pure). */
import { parseArgs } from 'node:util';
import { isMutantName, MUTANTS } from '../test/mutants/port-mutants.js';
import { FAULT_KINDS, type FaultKind } from './faults.js';

export const LIMITS = {
  seconds: { min: 10, max: 24 * 3600 },
  workers: { min: 2, max: 16 },
} as const;
export const DEFAULTS = { seconds: 120, workers: 4 } as const;
/** Fault kinds that find ZooKeeper frames in the proxied bytes: impossible inside TLS. */
export const FRAME_KINDS: readonly FaultKind[] = ['notify-cut', 'ping-cut'];

export const USAGE = `Usage: npm run chaos -- [--minutes M | --seconds S] [--seed N] [--workers W] [--only K,...] [--log PATH] [--mutant NAME] [--tls]
       bash scripts/chaos.sh [options]

Starts a 3-server ZooKeeper ensemble and W worker processes that loop on read-modify-writes
under the lock /locks/write_lock (every way of locking it), against a fenced store in this
process, and hold a read/write lock and a semaphore; meanwhile injects faults (member crashes,
leader crashes, cut and partitioned workers, expired sessions, a SIGSTOP of the lock holder,
killed workers, a cut right after a notification, a cut at a ping), then verifies what was
written and that no two holders ever believed they held a lock at once. See chaos/README.md.

Options:
  --minutes M     how long faults are injected (default ${DEFAULTS.seconds / 60})
  --seconds S     the same in seconds, ${LIMITS.seconds.min}..${LIMITS.seconds.max}
  --seed N        seed of the fault schedule, 0..4294967295 (default: random, printed)
  --workers W     worker processes, ${LIMITS.workers.min}..${LIMITS.workers.max} (default ${DEFAULTS.workers})
  --only K,K...   inject only these kinds of fault (to reproduce one): ${FAULT_KINDS.join(', ')}
  --log PATH      the store's log, truncated first (default chaos/lock.log); the workers'
                  own output goes next to it, to <name>.workers.log
  --mutant NAME   break the lock on purpose in every worker (test/mutants/port-mutants.ts):
                  ${MUTANTS.join(', ')}; the run must then FAIL
  --tls           the ensemble serves mutual TLS only (secureClientPort, ssl.clientAuth=need, keystores
                  made with keytool); every worker connects with the tls option, reading its
                  certificate files at each connection. Without ${FRAME_KINDS.join(' and ')}: the
                  proxies cannot see ZooKeeper's frames inside TLS
  -h, --help      this text

Exit status: 0 when every check passes, 1 when one fails (or the run failed), 2 for bad arguments.`;

export interface ChaosArgs {
  /** How long faults are injected, in ms. */
  durationMs: number;
  /** Seed of the fault schedule; undefined: pick one. */
  seed: number | undefined;
  workers: number;
  /** The kinds of fault to draw from. */
  kinds: FaultKind[];
  /** As given (relative to the working directory), or undefined for the default. */
  log: string | undefined;
  /** A mutant of test/mutants/port-mutants.ts to apply in every worker. */
  mutant: string | undefined;
  /** The ensemble serves (mutual) TLS only; the workers connect with the tls option. */
  tls: boolean;
  help: boolean;
}

/** A bad command line; the message names the value and the rule. */
export class UsageError extends Error {
  override name = 'UsageError';
}

function wholeNumber(flag: string, text: string, min: number, max: number): number {
  if (!/^\d+$/.test(text) || Number(text) < min || Number(text) > max) {
    throw new UsageError(`${flag} ${JSON.stringify(text)}: must be a whole number from ${min} to ${max}`);
  }
  return Number(text);
}

function positiveNumber(flag: string, text: string, min: number, max: number): number {
  const value = Number(text);
  if (!/^\d+(\.\d+)?$/.test(text) || value < min || value > max) {
    throw new UsageError(`${flag} ${JSON.stringify(text)}: must be a number from ${min} to ${max}`);
  }
  return value;
}

export function parseChaosArgs(argv: string[]): ChaosArgs {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        minutes: { type: 'string' },
        seconds: { type: 'string' },
        seed: { type: 'string' },
        workers: { type: 'string' },
        only: { type: 'string' },
        log: { type: 'string' },
        mutant: { type: 'string' },
        tls: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const { values } = parsed;
  if (values.minutes !== undefined && values.seconds !== undefined) {
    throw new UsageError('--minutes and --seconds: give one of them, not both');
  }
  let durationMs = DEFAULTS.seconds * 1000;
  if (values.seconds !== undefined) {
    durationMs = wholeNumber('--seconds', values.seconds, LIMITS.seconds.min, LIMITS.seconds.max) * 1000;
  }
  if (values.minutes !== undefined) {
    const { min, max } = LIMITS.seconds;
    durationMs = Math.round(positiveNumber('--minutes', values.minutes, min / 60, max / 60) * 60_000);
  }
  const tls = values.tls === true;
  return {
    durationMs,
    seed: values.seed === undefined ? undefined : wholeNumber('--seed', values.seed, 0, 2 ** 32 - 1),
    workers:
      values.workers === undefined
        ? DEFAULTS.workers
        : wholeNumber('--workers', values.workers, LIMITS.workers.min, LIMITS.workers.max),
    kinds: kindsFor(values.only, tls),
    log: values.log,
    mutant: values.mutant === undefined ? undefined : parseMutant(values.mutant),
    tls,
    help: values.help === true,
  };
}

/** The kinds asked for (all by default); over TLS, never the ones that need to see frames. */
function kindsFor(only: string | undefined, tls: boolean): FaultKind[] {
  if (only === undefined) return FAULT_KINDS.filter((kind) => !tls || !FRAME_KINDS.includes(kind));
  const kinds = parseKinds(only);
  const blind = tls ? kinds.filter((kind) => FRAME_KINDS.includes(kind)) : [];
  if (blind.length > 0) {
    throw new UsageError(
      `--only ${blind.join(',')} with --tls: these faults find ZooKeeper frames in the proxied bytes, which TLS encrypts`,
    );
  }
  return kinds;
}

function parseMutant(text: string): string {
  if (!isMutantName(text))
    throw new UsageError(`--mutant ${JSON.stringify(text)}: unknown; the mutants: ${MUTANTS.join(', ')}`);
  return text;
}

function parseKinds(text: string): FaultKind[] {
  const kinds = text.split(',').map((kind) => kind.trim());
  const known = new Set<string>(FAULT_KINDS);
  const unknown = kinds.filter((kind) => !known.has(kind));
  if (unknown.length > 0 || kinds.length === 0) {
    throw new UsageError(
      `--only ${JSON.stringify(text)}: unknown kind ${unknown.join(', ')}; the kinds: ${FAULT_KINDS.join(', ')}`,
    );
  }
  return [...new Set(kinds)] as FaultKind[];
}
