/**
 * The nestjs-zk-lock sample: W processes ("machines") append K numbered lines each to one log file,
 * every line a read-modify-write under one distributed lock; then the file is verified.
 *
 *   npm run sample -- --workers 100 --lines 10
 *   npm run sample -- --no-lock        # the same without the lock: see the corruption it prevents
 *   npm run sample -- --http           # two HTTP app instances, a locked route, 200 requests
 *   npm run sample -- --jobs           # three instances, a @Cron job on one of them, a leader; handovers
 *
 * Starts a local ZooKeeper for the run unless ZK_CONNECT is set; forks the workers
 * (sample/worker.ts), waits until all are connected, lets them all go at the same moment, shows
 * progress, checks the log (sample/verify.ts) and prints a summary. With --http, runs two app
 * instances and sends them the requests instead (sample/http-mode.ts); with --jobs, runs three
 * instances of a scheduled job and a leader election, and kills and stops its holders
 * (sample/jobs-mode.ts). Exit status 0 when the log (--jobs: the ticks) verifies, 1 when not or
 * when the run failed, 2 for bad arguments.
 */
import { execFileSync, fork } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { installProcessTripwire, TRIPWIRE_EXIT_CODE } from '../test/setup/process-tripwire.js';
import { startZooKeeper, type ZkServer } from '../test/support/zookeeper.js';
import { parseSampleArgs, USAGE, UsageError, type SampleArgs } from './args.js';
import { Fleet, lastOutput, type Member } from './fleet.js';
import { runHttp } from './http-mode.js';
import { runJobs } from './jobs-mode.js';
import { ENV, isWorkerMessage, type GoMessage, type WorkerMessage } from './messages.js';
import { elapsedText, megabytes, millis, percentile, Progress, say, sayVerdict, seconds, tail } from './report.js';
import { verifyLog } from './verify.js';

// This file runs as sample/dist/sample/main.js.
const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const WORKER_SCRIPT = fileURLToPath(new URL('./worker.js', import.meta.url));
const DEFAULT_LOG = path.join(REPO_ROOT, 'sample', 'lock.log');

/** All workers connected: 60 s plus 1 s per worker (100 Nest processes on 2 cores take a while). */
const readyTimeout = (workers: number) => 60_000 + workers * 1_000;
/** All lines written: 60 s plus 100 ms per line (a locked append takes a few ms). */
const doneTimeout = (lines: number) => 60_000 + lines * 100;
/** Each worker gone after `done` (it closes its Nest context and exits on its own). */
const EXIT_TIMEOUT = 15_000;
/** Workers starting at the same time. */
const START_CONCURRENCY = Math.max(4, 2 * os.availableParallelism());
/**
 * A worker waits on the network and the lock, it has no hot code: without V8's optimizing
 * compiler it starts with ~25% less CPU and ~10% less memory (100 of them on 2 cores).
 */
const WORKER_NODE_FLAGS = ['--no-opt'];

interface Worker extends Member {
  ready: boolean;
  startupMs: number;
  lines: number;
  done?: { waits: number[]; maxRss: number };
}

let zk: ZkServer | undefined;
let shuttingDown: Promise<never> | undefined;
/** What a signal stops, for its message. */
let children = 'workers';

/** Stops the child processes (SIGTERM, then SIGKILL) and our ZooKeeper, then exits with `code`. Once. */
function shutdown(code: number): Promise<never> {
  shuttingDown ??= (async () => {
    Progress.stopCurrent();
    await Promise.all(Array.from(Fleet.all, (fleet) => fleet.stop(5_000)));
    await zk?.dispose().catch(() => undefined);
    process.exit(code);
  })();
  return shuttingDown;
}

// An unhandled rejection or uncaught exception here: one clear line, then the run stops and fails.
installProcessTripwire('sample main', { exit: () => shutdown(TRIPWIRE_EXIT_CODE) });

let interrupted = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (interrupted) return;
    interrupted = true;
    Progress.stopCurrent(false);
    say(`${signal}: stopping the ${children}${zk ? ' and the local ZooKeeper' : ''}...`);
    void shutdown(signal === 'SIGINT' ? 130 : 143);
  });
}

function describeWorker(w: Worker): string {
  let text = `worker ${w.id} (pid ${w.child.pid ?? '?'})`;
  if (!w.done) text += ` died (${w.exit ?? 'still running'}) after ${w.lines} lines`;
  else if (w.exit) text += ` exited with ${w.exit}`;
  return w.error ? `${text}: ${w.error}` : text;
}

function forkWorker(fleet: Fleet<Worker>, id: number, args: SampleArgs, connect: string, log: string): Worker {
  const child = fork(WORKER_SCRIPT, [], {
    env: {
      ...process.env,
      [ENV.connect]: connect,
      [ENV.workerId]: String(id),
      [ENV.lines]: String(args.lines),
      [ENV.log]: log,
      [ENV.noLock]: args.noLock ? '1' : '0',
    },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    serialization: 'json',
    execArgv: [...process.execArgv, ...WORKER_NODE_FLAGS],
  });
  const worker: Worker = { id, child, ready: false, startupMs: 0, lines: 0, output: '' };
  return fleet.adopt(worker, {
    message: (message) => {
      if (isWorkerMessage(message)) onMessage(worker, message);
    },
    // Done workers exit on their own; otherwise what it reported says it all, or else show what
    // it printed (e.g. a crash).
    closed: () =>
      worker.done || fleet.stopping ? undefined : new Error(`${describeWorker(worker)}${lastOutput(worker)}`),
  });
}

function onMessage(worker: Worker, message: WorkerMessage): void {
  switch (message.type) {
    case 'ready':
      worker.ready = true;
      worker.startupMs = message.startupMs;
      return;
    case 'line':
      worker.lines += 1;
      return;
    case 'done':
      worker.done = { waits: message.waits, maxRss: message.maxRss };
      return;
    case 'error':
      worker.error = message.message;
      return;
  }
}

/** Checks where the log goes, and truncates it. Returns its absolute path. */
function prepareLog(given: string | undefined): string {
  const log = given === undefined ? DEFAULT_LOG : path.resolve(given);
  const dir = path.dirname(log);
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) {
    throw new UsageError(`--log ${JSON.stringify(given)}: the directory ${JSON.stringify(dir)} does not exist`);
  }
  if (fs.existsSync(log) && fs.statSync(log).isDirectory()) {
    throw new UsageError(`--log ${JSON.stringify(given)}: is a directory, must be a file path`);
  }
  fs.writeFileSync(log, '');
  return log;
}

/** ZK_CONNECT, or a local ZooKeeper started for the run; undefined (after saying why) when none could be started. */
async function zooKeeper(): Promise<string | undefined> {
  const given = process.env[ENV.connect];
  if (given) {
    say(`ZooKeeper: ${given} (from ZK_CONNECT)`);
    return given;
  }
  const started = performance.now();
  try {
    // test/support finds scripts/zookeeper.sh relative to its own file, which is not where the
    // compiled copy in sample/dist/ lives: tell it the classpath (scripts/sample.sh does too).
    process.env['ZK_CLASSPATH'] ||= execFileSync(
      'bash',
      [path.join(REPO_ROOT, 'scripts', 'zookeeper.sh'), 'classpath'],
      {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    ).trim();
    // tickTime 2000 (ZooKeeper's default): session timeouts up to 40 s, plenty for a busy machine.
    zk = await startZooKeeper({ tickTime: 2_000 });
  } catch (error) {
    console.error(
      `sample: could not start a local ZooKeeper: ${(error as Error).message}\n` +
        'Set ZK_CONNECT=host:port to use a running server, or install one: bash scripts/zookeeper.sh ensure',
    );
    return undefined;
  }
  say(
    `ZooKeeper: local server on ${zk.connectString}, started in ${seconds(performance.now() - started)} (set ZK_CONNECT to use your own)`,
  );
  return zk.connectString;
}

/** The worker mode: W processes append K lines each; then the log is verified. */
async function runWorkers(args: SampleArgs, connect: string, log: string, shownLog: string): Promise<number> {
  const expected = args.workers * args.lines;
  const fleet = new Fleet<Worker>();
  const workers = fleet.members;
  const startedForking = performance.now();
  // Loading Nest costs ~0.5 s of CPU per process; a few starting at a time get there as fast
  // as all at once, and each one is connected within seconds instead of all at the very end.
  const atOnce = Math.min(args.workers, START_CONCURRENCY);
  say(
    `Starting ${args.workers} worker processes, ${atOnce} at a time ` +
      '(each a Nest application context with its own ZooKeeper session)...',
  );
  const ready = () => workers.filter((w) => w.ready).length;
  let progress = new Progress((ms) => `${elapsedText(ms)}  ${ready()}/${args.workers} workers connected`, 5_000);

  const readyDeadline = startedForking + readyTimeout(args.workers);
  const notReady = () => {
    const late = workers.filter((w) => !w.ready).map((w) => w.id);
    const unforked = args.workers - workers.length;
    return (
      `${late.length + unforked} of ${args.workers} workers not connected within ${seconds(readyTimeout(args.workers))}` +
      (late.length > 0 ? ` (started but not connected: ${late.slice(0, 20).join(', ')})` : '')
    );
  };
  for (let id = 1; id <= args.workers; id++) {
    const left = readyDeadline - performance.now();
    await fleet.until(() => workers.length - ready() < atOnce, left, notReady);
    forkWorker(fleet, id, args, connect, log);
  }
  await fleet.until(() => ready() === args.workers, readyDeadline - performance.now(), notReady);
  progress.stop(false);
  const slowest = Math.max(...workers.map((w) => w.startupMs));
  say(
    `All ${args.workers} workers connected in ${seconds(performance.now() - startedForking)} ` +
      `(slowest worker: ${seconds(slowest)} from its start to connected). Go!`,
  );

  const go: GoMessage = { type: 'go' };
  for (const w of workers) w.child.send(go);
  const goAt = performance.now();
  progress = new Progress((ms) => {
    const total = workers.reduce((sum, w) => sum + w.lines, 0);
    return `${elapsedText(ms)}  ${total}/${expected} lines  per worker: ${workers.map((w) => w.lines).join(' ')}`;
  }, 1_000);
  await fleet.until(
    () => workers.every((w) => w.done),
    doneTimeout(expected),
    () => {
      const late = workers.filter((w) => !w.done).map((w) => `${w.id} (${w.lines} lines)`);
      return `${late.length} of ${args.workers} workers not done within ${seconds(doneTimeout(expected))}: ${late.slice(0, 20).join(', ')}`;
    },
  );
  const elapsed = performance.now() - goAt;
  progress.stop();

  // Every worker closes its context and exits on its own.
  const problems: string[] = [];
  await fleet
    .until(
      () => workers.every((w) => w.exit !== undefined),
      EXIT_TIMEOUT,
      () => 'workers still running',
      false,
    )
    .catch(() => {
      const stuck = fleet.running();
      problems.push(`${stuck.length} workers did not exit within ${seconds(EXIT_TIMEOUT)} after done (killed)`);
      for (const w of stuck) w.child.kill('SIGKILL');
    });
  for (const w of workers) {
    if (w.exit !== undefined && w.exit !== 'exit code 0') problems.push(describeWorker(w));
  }

  const result = verifyLog(fs.readFileSync(log, 'utf8'), { expectedLines: expected, fenced: !args.noLock });
  sayVerdict(result, { log: shownLog, expected, fenced: !args.noLock });

  const waits = workers.flatMap((w) => w.done!.waits).toSorted((a, b) => a - b);
  const rate = (waits.length / elapsed) * 1000;
  say(`  ${args.workers} workers x ${args.lines} lines in ${seconds(elapsed)} from go to the last line`);
  if (args.noLock) {
    say(`  ${rate.toFixed(0)} unlocked appends/s`);
  } else {
    say(`  ${rate.toFixed(1)} lock acquisitions/s`);
    say(
      `  lock wait: p50 ${millis(percentile(waits, 50))}, p99 ${millis(percentile(waits, 99))}, max ${millis(waits.at(-1) ?? 0)} (${waits.length} acquisitions)`,
    );
  }
  const rss = workers.map((w) => w.done!.maxRss);
  say(
    `  worker peak RSS: avg ${megabytes(rss.reduce((a, b) => a + b, 0) / rss.length)}, ` +
      `max ${megabytes(Math.max(...rss))}, sum ${megabytes(rss.reduce((a, b) => a + b, 0))} (shared pages counted in each)`,
  );

  const talkative = workers.filter((w) => w.output.trim() !== '');
  if (talkative.length > 0) {
    say(`\nOutput of ${talkative.length} workers (last lines):`);
    for (const w of talkative.slice(0, 10))
      say(`[worker ${w.id}] ${tail(w.output, 5).replaceAll('\n', `\n[worker ${w.id}] `)}`);
    if (talkative.length > 10) say(`... and ${talkative.length - 10} more`);
  }
  for (const problem of problems) say(`Problem: ${problem}`);
  if (args.noLock && !result.ok) {
    say(
      '\nWithout the lock, workers read the same last counter at the same time and write the same next number, ' +
        'so counters are duplicated and go missing: this is exactly the corruption the distributed lock prevents.',
    );
  }
  return result.ok && problems.length === 0 ? 0 : 1;
}

/** The jobs mode: three instances, a scheduled job and a leader election, two handovers. */
async function mainJobs(): Promise<number> {
  children = 'app instances';
  say(
    'nestjs-zk-lock sample (jobs): 3 app instances (processes), a @Cron job every second under @OnOneInstance + ' +
      '@WithoutOverlapping, and a @LeaderElection provider; the job holder is killed, the next one stopped',
  );
  const connect = await zooKeeper();
  if (connect === undefined) return 1;
  return runJobs(connect);
}

async function main(): Promise<number> {
  let args: SampleArgs;
  let log: string;
  try {
    args = parseSampleArgs(process.argv.slice(2));
    if (args.help) {
      say(USAGE);
      return 0;
    }
    if (args.jobs) return await failing(mainJobs());
    log = prepareLog(args.log);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(`sample: ${error.message}\nRun with --help for the options.`);
    return 2;
  }
  const relative = path.relative(process.cwd(), log);
  const shownLog = relative && !relative.startsWith('..') ? relative : log;
  if (args.http) {
    children = 'app instances';
    const route = args.noLock
      ? 'POST /log-unlocked (WITHOUT the lock)'
      : 'POST /log (under the lock /locks/write_lock)';
    say(
      `nestjs-zk-lock sample (HTTP): ${args.requests} requests ${route}, ${args.concurrency} at a time, ` +
        `alternating between 2 app instances, each request appending a line to ${shownLog}`,
    );
  } else {
    const mode = args.noLock ? 'appends WITHOUT the lock' : 'appends, each under the lock /locks/write_lock,';
    say(
      `nestjs-zk-lock sample: ${args.workers} workers x ${args.lines} lines = ${args.workers * args.lines} ${mode} to ${shownLog}`,
    );
  }

  const connect = await zooKeeper();
  if (connect === undefined) return 1;
  return failing(args.http ? runHttp(args, connect, log, shownLog) : runWorkers(args, connect, log, shownLog));
}

/** The run's exit status; a failed run says why and gives 1 (130 when interrupted). */
async function failing(run: Promise<number>): Promise<number> {
  try {
    return await run;
  } catch (error) {
    if (interrupted) return shutdown(130);
    Progress.stopCurrent();
    console.error(`\nsample: the run failed: ${(error as Error).message}`);
    return 1;
  }
}

main().then(
  (code) => shutdown(code),
  (error: unknown) => {
    console.error('sample: unexpected failure:', error);
    return shutdown(1);
  },
);
