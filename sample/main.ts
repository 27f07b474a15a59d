/**
 * The zk-lock sample: W processes ("machines") append K numbered lines each to one log file,
 * every line a read-modify-write under one distributed lock; then the file is verified.
 *
 *   npm run sample -- --workers 100 --lines 10
 *   npm run sample -- --no-lock        # the same without the lock: see the corruption it prevents
 *
 * Starts a local ZooKeeper for the run unless ZK_CONNECT is set; forks the workers
 * (sample/worker.ts), waits until all are connected, lets them all go at the same moment, shows
 * progress, checks the log (sample/verify.ts) and prints a summary. Exit status 0 when the log
 * verifies, 1 when not or when the run failed, 2 for bad arguments.
 */
import { execFileSync, fork, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { startZooKeeper, type ZkServer } from '../test/support/zookeeper.js';
import { parseSampleArgs, USAGE, UsageError, type SampleArgs } from './args.js';
import { ENV, isWorkerMessage, type GoMessage, type WorkerMessage } from './messages.js';
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
const OUTPUT_TAIL = 8_192;

interface Worker {
  id: number;
  child: ChildProcess;
  ready: boolean;
  startupMs: number;
  lines: number;
  done?: { waits: number[]; maxRss: number };
  /** A failure the worker reported over IPC. */
  error?: string;
  /** How it exited, e.g. "exit code 0" or "signal SIGKILL"; undefined while it runs. */
  exit?: string;
  /** The end of its stdout + stderr. */
  output: string;
}

const say = (line = '') => console.log(line);
const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const millis = (ms: number) => `${ms.toFixed(1)} ms`;
const megabytes = (bytes: number) => `${Math.round(bytes / 2 ** 20)} MB`;

/** Nearest-rank percentile of ascending values. */
function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

/** The workers, and promises on their state that reject as soon as one of them fails. */
class Fleet {
  readonly workers: Worker[] = [];
  private failure: Error | undefined;
  private readonly checks = new Set<() => void>();

  /** Whatever waits on the fleet now rejects with `error` (the first one wins). */
  fail(error: Error): void {
    this.failure ??= error;
    this.changed();
  }

  changed(): void {
    for (const check of Array.from(this.checks)) check();
  }

  /**
   * Resolves when `condition` holds; rejects after `timeoutMs` with `late()` as the message, and
   * (unless `failFast` is false) as soon as a worker fails.
   */
  until(condition: () => boolean, timeoutMs: number, late: () => string, failFast = true): Promise<void> {
    return new Promise((resolve, reject) => {
      const finish = (error?: Error) => {
        clearTimeout(timer);
        this.checks.delete(check);
        if (error) reject(error);
        else resolve();
      };
      const check = () => {
        if (this.failure && failFast) finish(this.failure);
        else if (condition()) finish();
      };
      const timer = setTimeout(() => finish(new Error(late())), timeoutMs);
      this.checks.add(check);
      check();
    });
  }

  running(): Worker[] {
    return this.workers.filter((w) => w.exit === undefined);
  }
}

/** A status line: rewritten in place on a terminal, printed every `everyMs` otherwise. */
class Progress {
  private readonly timer: NodeJS.Timeout;
  private readonly startedAt = performance.now();
  private readonly tty: boolean = process.stdout.isTTY; // undefined when not a terminal
  private shown = false;
  private stopped = false;

  constructor(
    private readonly text: (elapsedMs: number) => string,
    everyMs: number,
  ) {
    this.timer = setInterval(() => this.render(), this.tty ? 100 : everyMs);
  }

  /** Shows the final state (with `final`) and stops. */
  stop(final = true): void {
    if (this.stopped) return;
    this.stopped = true;
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

const elapsedText = (ms: number) => `${(ms / 1000).toFixed(1).padStart(5)} s`;

let zk: ZkServer | undefined;
let fleet: Fleet | undefined;
let progress: Progress | undefined;
let shuttingDown: Promise<never> | undefined;

/** Stops the workers (SIGTERM, then SIGKILL) and our ZooKeeper, then exits with `code`. Once. */
function shutdown(code: number): Promise<never> {
  shuttingDown ??= (async () => {
    progress?.stop();
    if (fleet) {
      const running = fleet.running();
      for (const w of running) w.child.kill('SIGTERM');
      const gone = () => running.every((w) => w.exit !== undefined);
      await fleet
        .until(gone, 5_000, () => 'workers still running', false)
        .catch(async () => {
          for (const w of fleet!.running()) w.child.kill('SIGKILL');
          await fleet!.until(gone, 2_000, () => 'workers still running', false).catch(() => undefined);
        });
    }
    await zk?.dispose().catch(() => undefined);
    process.exit(code);
  })();
  return shuttingDown;
}

let interrupted = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (interrupted) return;
    interrupted = true;
    progress?.stop(false);
    say(`${signal}: stopping the workers${zk ? ' and the local ZooKeeper' : ''}...`);
    void shutdown(signal === 'SIGINT' ? 130 : 143);
  });
}

function tail(text: string, lines: number): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

function describeWorker(w: Worker): string {
  let text = `worker ${w.id} (pid ${w.child.pid ?? '?'})`;
  if (!w.done) text += ` died (${w.exit ?? 'still running'}) after ${w.lines} lines`;
  else if (w.exit) text += ` exited with ${w.exit}`;
  return w.error ? `${text}: ${w.error}` : text;
}

function forkWorker(id: number, args: SampleArgs, connect: string, log: string): Worker {
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
  const collect = (chunk: Buffer) => {
    worker.output = (worker.output + chunk.toString('utf8')).slice(-OUTPUT_TAIL);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  child.on('message', (message: unknown) => {
    if (!isWorkerMessage(message)) return;
    onMessage(worker, message);
    fleet!.changed();
  });
  child.on('error', (error) => {
    worker.error ??= error.message;
  });
  // 'close', not 'exit': by then its last IPC messages and output have arrived too.
  child.on('close', (code, signal) => {
    worker.exit = signal ? `signal ${signal}` : `exit code ${code}`;
    if (!worker.done && !interrupted) {
      // What it reported says it all; otherwise show what it printed (e.g. a crash).
      const output = !worker.error && worker.output.trim() ? `\n--- its last output:\n${tail(worker.output, 15)}` : '';
      fleet!.fail(new Error(`${describeWorker(worker)}${output}`));
    }
    fleet!.changed();
  });
  return worker;
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

async function main(): Promise<number> {
  let args: SampleArgs;
  let log: string;
  try {
    args = parseSampleArgs(process.argv.slice(2));
    if (args.help) {
      say(USAGE);
      return 0;
    }
    log = prepareLog(args.log);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(`sample: ${error.message}\nRun with --help for the options.`);
    return 2;
  }
  const relative = path.relative(process.cwd(), log);
  const shownLog = relative && !relative.startsWith('..') ? relative : log;
  const expected = args.workers * args.lines;
  const mode = args.noLock ? 'appends WITHOUT the lock' : 'appends, each under the lock /locks/write_lock,';
  say(`zk-lock sample: ${args.workers} workers x ${args.lines} lines = ${expected} ${mode} to ${shownLog}`);

  let connect = process.env[ENV.connect];
  if (connect) {
    say(`ZooKeeper: ${connect} (from ZK_CONNECT)`);
  } else {
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
      return 1;
    }
    connect = zk.connectString;
    say(
      `ZooKeeper: local server on ${connect}, started in ${seconds(performance.now() - started)} (set ZK_CONNECT to use your own)`,
    );
  }

  fleet = new Fleet();
  const workers = fleet.workers;
  const startedForking = performance.now();
  // Loading Nest costs ~0.5 s of CPU per process; a few starting at a time get there as fast
  // as all at once, and each one is connected within seconds instead of all at the very end.
  const atOnce = Math.min(args.workers, START_CONCURRENCY);
  say(
    `Starting ${args.workers} worker processes, ${atOnce} at a time ` +
      '(each a Nest application context with its own ZooKeeper session)...',
  );
  const ready = () => workers.filter((w) => w.ready).length;
  progress = new Progress((ms) => `${elapsedText(ms)}  ${ready()}/${args.workers} workers connected`, 5_000);

  try {
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
      workers.push(forkWorker(id, args, connect, log));
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
    progress = undefined;

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
        const stuck = fleet!.running();
        problems.push(`${stuck.length} workers did not exit within ${seconds(EXIT_TIMEOUT)} after done (killed)`);
        for (const w of stuck) w.child.kill('SIGKILL');
      });
    for (const w of workers) {
      if (w.exit !== undefined && w.exit !== 'exit code 0') problems.push(describeWorker(w));
    }

    const result = verifyLog(fs.readFileSync(log, 'utf8'), { expectedLines: expected, fenced: !args.noLock });
    say();
    if (result.ok) {
      const tokens = args.noLock ? '' : '; fencing tokens strictly increasing';
      say(
        `PASS: ${result.lines} lines verified in ${shownLog}: counters 1..${expected} each exactly once, in order${tokens}.`,
      );
    } else {
      say(`FAIL: ${shownLog} does not verify (${result.lines} lines, ${expected} expected):`);
      for (const problem of result.problems) say(`  - ${problem}`);
    }

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
  } catch (error) {
    if (interrupted) return shutdown(130);
    progress?.stop();
    progress = undefined;
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
