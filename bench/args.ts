/** Command line of the benchmark (pure). What it measures and why: docs/benchmarks.md. */
import { parseArgs } from 'node:util';

export const WORKLOADS = [
  'floor',
  'w1',
  'nest',
  'idle',
  'w2',
  'w2c',
  'w3',
  'mem',
  'http',
  'rw',
  'sem',
  'multi',
  'leader',
  'tls',
] as const;
export type Workload = (typeof WORKLOADS)[number];

export const DEFAULTS = {
  workloads: [...WORKLOADS] as Workload[],
  clients: [1, 4, 16, 64, 256],
  seconds: 5,
  cycles: 2_000,
  memCycles: 100_000,
  keys: 1_000,
  handovers: 100,
  crashes: 3,
  svg: 'docs/benchmarks.svg',
} as const;

export const USAGE = `Usage: npm run bench -- [options]
       bash scripts/bench.sh [options]

Measures the lock against the cost floor of ZooKeeper itself and prints one JSON object per
line on stdout (each ending with requests_per_op), a table and ratios on stderr. What each
workload measures, its fields and the targets: docs/benchmarks.md.

Options:
  --connect H:P       ZooKeeper to use (its 4-letter words srvr, mntr, wchs must be allowed);
                      default: start a local server for the run (tickTime 2000) and stop it after
  --workload LIST     comma-separated, of ${WORKLOADS.join(',')} (default: all)
  --clients LIST      sessions for w2, w2c and w3 (default ${DEFAULTS.clients.join(',')})
  --seconds S         measured duration of each w2/w2c/w3 point, and of rw, sem and multi
                      (default ${DEFAULTS.seconds})
  --cycles N          cycles of floor, w1, nest and idle, requests per route of http (default ${DEFAULTS.cycles})
  --mem-cycles N      acquire/release cycles of mem (default ${DEFAULTS.memCycles})
  --keys N            w3's scale point over N distinct keys, 0 to skip (default ${DEFAULTS.keys})
  --handovers N       leader: clean handovers counted (default ${DEFAULTS.handovers})
  --crashes N         leader: crash handovers, each about a session timeout (default ${DEFAULTS.crashes})
  --json FILE         also write the JSON lines to FILE
  --svg FILE          where to write the chart (default ${DEFAULTS.svg}); --no-svg: none
  -h, --help          this text

The lock kinds: rw (8 reader + 2 writer sessions on one path), sem (10
sessions, 3 leases), multi (4 sessions, each acquireAll of 2 of 4 paths); --clients does not
apply to them. leader: 3 Nest apps with a @LeaderElection provider (4 s session timeout): clean
handovers (the leader's app closed), crash handovers (the leader cut off until its session
expires), and ticks of an @OnOneInstance job skipped on the apps that do not hold it. tls: w1 and
w2 at 64 sessions over TLS and over plaintext on one local server that serves both (Netty, a
secureClientPort and a clientPort), reported as ratios; skipped with --connect. nest: w1's cycle through a @DistributedLock service
method of a Nest application context, no HTTP; idle: floor's raw cycle after 1 ms without
traffic (not measured), as a request's round trips start. Each workload warms up before it counts: floor, w1,
nest and idle at least 200 cycles and 2 s, the timed points at least 200 iterations (and one
per session) or 2 s. floor, w1 and nest, when run together, take turns in blocks of 50 cycles
so that their ratios compare like with like.
Node must run with --expose-gc for mem (scripts/bench.sh does).`;

export interface BenchArgs {
  connect: string | undefined;
  workloads: Workload[];
  clients: number[];
  seconds: number;
  cycles: number;
  memCycles: number;
  keys: number;
  handovers: number;
  crashes: number;
  json: string | undefined;
  svg: string | undefined;
  help: boolean;
}

/** A bad command line; the message names the option, the value and the rule. */
export class UsageError extends Error {
  override name = 'UsageError';
}

function wholeNumber(option: string, text: string, min: number, max: number): number {
  const value = Number(text);
  if (!/^\d+$/.test(text.trim()) || value < min || value > max) {
    throw new UsageError(`--${option} ${JSON.stringify(text)}: must be a whole number from ${min} to ${max}`);
  }
  return value;
}

export function parseBenchArgs(argv: string[]): BenchArgs {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        connect: { type: 'string' },
        workload: { type: 'string' },
        clients: { type: 'string' },
        seconds: { type: 'string' },
        cycles: { type: 'string' },
        'mem-cycles': { type: 'string' },
        keys: { type: 'string' },
        handovers: { type: 'string' },
        crashes: { type: 'string' },
        json: { type: 'string' },
        svg: { type: 'string' },
        'no-svg': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    throw new UsageError((error as Error).message);
  }

  let workloads: Workload[] = [...DEFAULTS.workloads];
  if (values.workload !== undefined) {
    const names = values.workload.split(',').map((name) => name.trim());
    for (const name of names) {
      if (!(WORKLOADS as readonly string[]).includes(name)) {
        throw new UsageError(`--workload ${JSON.stringify(name)}: must be one of ${WORKLOADS.join(', ')}`);
      }
    }
    // Always in the order of WORKLOADS, each once.
    workloads = WORKLOADS.filter((name) => names.includes(name));
  }

  let clients: number[] = [...DEFAULTS.clients];
  if (values.clients !== undefined) {
    clients = [...new Set(values.clients.split(',').map((text) => wholeNumber('clients', text, 1, 2_000)))];
    clients.sort((a, b) => a - b);
  }

  let seconds: number = DEFAULTS.seconds;
  if (values.seconds !== undefined) {
    seconds = Number(values.seconds);
    if (!/^\d+(\.\d+)?$/.test(values.seconds.trim()) || seconds < 0.1 || seconds > 3_600) {
      throw new UsageError(`--seconds ${JSON.stringify(values.seconds)}: must be a number from 0.1 to 3600`);
    }
  }

  if (values.connect !== undefined && !/^[^\s:,/]+:\d+$/.test(values.connect)) {
    throw new UsageError(`--connect ${JSON.stringify(values.connect)}: must be one server as host:port`);
  }
  if (values.svg !== undefined && values['no-svg']) throw new UsageError('--svg and --no-svg exclude each other');

  return {
    connect: values.connect,
    workloads,
    clients,
    seconds,
    cycles: values.cycles === undefined ? DEFAULTS.cycles : wholeNumber('cycles', values.cycles, 1, 10_000_000),
    memCycles:
      values['mem-cycles'] === undefined
        ? DEFAULTS.memCycles
        : wholeNumber('mem-cycles', values['mem-cycles'], 10, 100_000_000),
    keys: values.keys === undefined ? DEFAULTS.keys : wholeNumber('keys', values.keys, 0, 1_000_000),
    handovers:
      values.handovers === undefined ? DEFAULTS.handovers : wholeNumber('handovers', values.handovers, 1, 10_000),
    crashes: values.crashes === undefined ? DEFAULTS.crashes : wholeNumber('crashes', values.crashes, 1, 100),
    json: values.json,
    svg: values['no-svg'] ? undefined : (values.svg ?? DEFAULTS.svg),
    help: values.help ?? false,
  };
}
