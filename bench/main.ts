/**
 * nestjs-zk-lock's benchmark (`npm run bench`): the lock against the cost floor of ZooKeeper itself, on a
 * real server (what it measures and why: docs/benchmarks.md). One JSON object per line on stdout (and in
 * --json FILE), a table and the ratios on stderr, the chart in docs/benchmarks.svg (--svg FILE).
 *
 * Runs as bench/dist/bench/main.js, built and started by scripts/bench.sh (node --expose-gc).
 * Exit status: 0, or 1 when a run failed or an invariant did not hold (see `failures`: overlapping
 * holders in w2, w2c, rw, sem or multi; readers never together in rw; not exactly 3 semaphore
 * holders at most; a multi-lock deadlock; two leaders at once, or a skipped tick that ran or made
 * a request, in leader), 2 for bad arguments.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Logger } from '@nestjs/common';
import { DEFAULTS, parseBenchArgs, USAGE, UsageError, type BenchArgs } from './args.js';
import { closeSessions, openSessions, removeEmptyTree } from './harness.js';
import { StderrLogger } from './logger.js';
import { failures, leaderComparison, ratios, ratiosText, table } from './report.js';
import { openServer, type BenchServer } from './server.js';
import {
  multi,
  MULTI_CLIENTS,
  MULTI_PATHS,
  RW_READERS,
  RW_WRITERS,
  rw,
  sem,
  SEM_CLIENTS,
  SEM_HOLD_MS,
  SEM_LEASES,
} from './kinds.js';
import { renderChart } from './svg.js';
import { BENCH_ROOT, type BenchContext } from './context.js';
import { floorAndW1, http, mem, w2, w3, type BenchLine } from './workloads.js';
import { LEADER_INSTANCES, leader, SKIP_TICKS } from './leader.js';
import { TLS_W2_CLIENTS, tlsComparison } from './tls.js';

// This file runs as bench/dist/bench/main.js.
const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

const err = (line = '') => process.stderr.write(`${line}\n`);
const CYCLE_TEXT = {
  floor: 'raw create + getChildren + delete',
  w1: 'acquire + release',
  nest: 'a @DistributedLock service method',
  idle: 'floor after 1 ms idle',
} as const;

/** Deletes what earlier runs left under /bench (empty lock directories), on its own short session. */
async function cleanUp(server: BenchServer): Promise<number> {
  const [admin] = await openSessions(server.connectString, 1);
  try {
    return await removeEmptyTree(admin.connection, BENCH_ROOT);
  } finally {
    await closeSessions([admin]);
  }
}

/** The machine in one line, e.g. `2 CPUs, 23.5 GiB RAM, Node v20.20.2, ZooKeeper 3.8.0`. */
async function machine(server: BenchServer): Promise<string> {
  return (
    `${os.availableParallelism()} CPUs, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB RAM, ` +
    `Node ${process.version}, ZooKeeper ${await server.version()}`
  );
}

async function run(args: BenchArgs, server: BenchServer): Promise<BenchLine[]> {
  const lines: BenchLine[] = [];
  const ctx: BenchContext = { server, args, note: (text) => err(`  note: ${text}`) };
  if (args.json) fs.writeFileSync(args.json, '');
  const emit = (line: BenchLine) => {
    const json = JSON.stringify(line);
    process.stdout.write(`${json}\n`);
    if (args.json) fs.appendFileSync(args.json, `${json}\n`);
    lines.push(line);
  };
  const step = async (label: string, body: () => Promise<BenchLine | BenchLine[]>) => {
    const started = Date.now();
    err(`- ${label}...`);
    const result = await body();
    for (const line of Array.isArray(result) ? result : [result]) emit(line);
    err(`  done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  };

  const cycleWorkloads = args.workloads.filter(
    (w): w is 'floor' | 'w1' | 'nest' | 'idle' => w === 'floor' || w === 'w1' || w === 'nest' || w === 'idle',
  );
  for (const workload of args.workloads) {
    switch (workload) {
      case 'floor':
      case 'w1':
      case 'nest':
      case 'idle':
        if (workload !== cycleWorkloads[0]) break; // run together with the first of them
        await step(
          `${cycleWorkloads.join(', ')} (${cycleWorkloads.map((w) => CYCLE_TEXT[w]).join('; ')}), ${args.cycles} cycles each` +
            (cycleWorkloads.length > 1 ? ', taking turns in blocks of 50' : ''),
          () => floorAndW1(ctx, cycleWorkloads),
        );
        break;
      case 'w2':
        for (const clients of args.clients) {
          await step(`w2: ${clients} session(s) on one lock for ${args.seconds} s`, () => w2(ctx, clients));
        }
        break;
      case 'w2c':
        for (const clients of args.clients.filter((c) => c > 1)) {
          await step(`w2c: ${clients} callers in one process (coalesce) on one lock for ${args.seconds} s`, () =>
            w2(ctx, clients, true),
          );
        }
        break;
      case 'w3':
        for (const clients of args.clients) {
          await step(`w3: ${clients} session(s), a lock each, for ${args.seconds} s`, () => w3(ctx, clients));
        }
        if (args.keys > 0) {
          const clients = Math.min(Math.max(...args.clients), args.keys);
          await step(`w3: ${clients} session(s) over ${args.keys} distinct keys for ${args.seconds} s`, () =>
            w3(ctx, clients, args.keys),
          );
        }
        break;
      case 'mem':
        await step(`mem: ${args.memCycles} acquire + release`, () => mem(ctx));
        break;
      case 'http':
        await step(`http: ${args.cycles} requests to each route`, () => http(ctx));
        break;
      case 'rw':
        await step(
          `rw: ${RW_READERS} reader and ${RW_WRITERS} writer sessions on one read/write lock for ${args.seconds} s`,
          () => rw(ctx),
        );
        break;
      case 'sem':
        await step(
          `sem: ${SEM_CLIENTS} sessions on a semaphore of ${SEM_LEASES} leases (each held ${SEM_HOLD_MS} ms) for ${args.seconds} s`,
          () => sem(ctx),
        );
        break;
      case 'multi':
        await step(
          `multi: ${MULTI_CLIENTS} sessions, each acquireAll of 2 of ${MULTI_PATHS} paths, for ${args.seconds} s`,
          () => multi(ctx),
        );
        break;
      case 'tls':
        if (args.connect) {
          err('- tls: skipped with --connect (it starts a local server that serves TLS and plaintext)');
          break;
        }
        await step(
          `tls: w1 (${args.cycles} cycles each, taking turns) and w2 at ${TLS_W2_CLIENTS} sessions for ${args.seconds} s, ` +
            'over TLS and over plaintext, on one local server that serves both',
          () => tlsComparison(ctx),
        );
        break;
      case 'leader':
        await step(
          `leader: ${LEADER_INSTANCES} apps with a @LeaderElection provider, ${args.handovers} clean and ${args.crashes} crash ` +
            `handovers; ${SKIP_TICKS} skipped ticks of an @OnOneInstance job on each app that does not hold it`,
          () => leader(ctx),
        );
        break;
    }
  }
  return lines;
}

async function main(): Promise<number> {
  let args: BenchArgs;
  try {
    args = parseBenchArgs(process.argv.slice(2));
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    err(`bench: ${error.message}\n\n${USAGE}`);
    return 2;
  }
  if (args.help) {
    err(USAGE);
    return 0;
  }
  // Nest's console logger would write to stdout, between the JSON lines.
  Logger.overrideLogger(new StderrLogger());

  const started = Date.now();
  err(args.connect ? `Using ZooKeeper at ${args.connect}` : 'Starting a local ZooKeeper (tickTime 2000)...');
  const server = await openServer(args.connect);
  let stopping: Promise<void> | undefined;
  const stop = () => (stopping ??= server.stop());
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      err(`\n${signal}: stopping${server.local ? ' the local ZooKeeper' : ''}...`);
      void stop().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
    });
  }

  try {
    const about = await machine(server);
    err(`Machine: ${about}; CPU ${os.cpus()[0]?.model.trim() ?? 'unknown'}`);
    err(
      server.local
        ? `ZooKeeper: local standalone server on ${server.connectString}, tickTime 2000 (started and stopped by the benchmark)`
        : `ZooKeeper: ${server.connectString}`,
    );
    err(`Command: npm run bench -- ${process.argv.slice(2).join(' ')}`.trimEnd());
    const stale = await cleanUp(server);
    if (stale > 0) err(`  (deleted ${stale} empty node(s) under ${BENCH_ROOT} left by an earlier run)`);

    const lines = await run(args, server);
    await cleanUp(server);
    const seconds = (Date.now() - started) / 1000;

    err('\nResults (times in microseconds; w2, w2c, rw, sem, multi: the wait from asking to holding):');
    err(table(lines));
    err('\nRatios:');
    err(ratiosText(ratios(lines)));
    const comparison = leaderComparison(lines);
    if (comparison) err(`\n${comparison}`);
    if (args.svg) {
      // The default is the repository's docs/; a path given is relative to the working directory.
      const file = args.svg === DEFAULTS.svg ? path.join(REPO_ROOT, DEFAULTS.svg) : path.resolve(args.svg);
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, renderChart(lines, about));
      err(`\nChart: ${file.startsWith(REPO_ROOT) ? path.relative(REPO_ROOT, file) : file}`);
    }
    err(`Total: ${seconds.toFixed(1)} s`);

    const failed = failures(lines);
    for (const failure of failed) err(`FAIL: ${failure}`);
    if (failed.length > 0) return 1;
    return 0;
  } finally {
    await stop();
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    err(`bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    process.exit(1);
  },
);
