/**
 * The chaos run (`npm run chaos`): the promise of a lock is that it holds when things break.
 *
 * Starts a 3-server ZooKeeper ensemble (tickTime 200 ms), one TcpProxy per worker and member,
 * and W worker processes (chaos/worker.ts) that loop on a read-modify-write under
 * /locks/write_lock against the fenced store served here over their IPC channels
 * (chaos/fenced-store.ts). Meanwhile chaos/faults.ts injects faults from a seeded PRNG. At the
 * end: faults stop, everything is restored, every worker must write again, the workers stop, and
 * the checks run (counters, tokens, progress, orphan nodes, clean exits). See chaos/README.md.
 */
import { execFileSync, fork, type ChildProcess } from 'node:child_process';
import { randomInt } from 'node:crypto';
import * as fs from 'node:fs';
import { hostname } from 'node:os';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Logger } from '@nestjs/common';
import { LockService, ZkConnectionService, ZooKeeperError } from '../lib/index.js';
import { LOCK_PATH } from '../sample/log-file.js';
import { verifyLog } from '../sample/verify.js';
import { TcpProxy } from '../test/support/proxy.js';
import { startEnsemble, type ZkEnsemble } from '../test/support/zookeeper.js';
import { parseChaosArgs, USAGE, UsageError, type ChaosArgs } from './args.js';
import { FencedStore, type Refusal } from './fenced-store.js';
import { FAULT_KINDS, FAULT_TEXT, FaultInjector, startMember, type FaultKind, type FaultTarget } from './faults.js';
import { ENV, isWorkerMessage, type LockStyle, type MainMessage, type WorkerMessage } from './messages.js';
import { Prng } from './prng.js';

// This file runs as chaos/dist/chaos/main.js.
const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const WORKER_SCRIPT = fileURLToPath(new URL('./worker.js', import.meta.url));
const DEFAULT_LOG = path.join(REPO_ROOT, 'chaos', 'lock.log');
const SESSION_TIMEOUTS = [2_000, 2_500, 3_000, 3_500, 4_000];
/** The ensemble's largest session timeout (20 ticks of 200 ms): a dead session is gone after it. */
const MAX_SESSION_TIMEOUT = 4_000;
const READY_TIMEOUT = 90_000;
/** After the faults: how long every worker process has to get an accepted write. */
const DRAIN_TIMEOUT = 90_000;
const STOP_TIMEOUT = 30_000;
/** After the workers exited: how long lock nodes may linger (sessions of killed workers expire). */
const ORPHAN_TIMEOUT = MAX_SESSION_TIMEOUT + 20_000;
const HOST = hostname() || 'unknown';

const say = (line = '') => process.stdout.write(`${line}\n`);
const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
let runStart = Date.now();
/** One line of the run's timeline, with the time since the start. */
const event = (text: string) => say(`${secs(Date.now() - runStart).padStart(8)}  ${text}`);

/** One process of a worker slot. */
interface Incarnation {
  /** 1-based, per slot. */
  n: number;
  child: ChildProcess;
  pid: number;
  ready: boolean;
  session?: { id: Buffer; password: Buffer; timeout: number };
  accepted: number;
  /** How it exited, e.g. "exit code 0" or "signal SIGKILL"; undefined while it runs. */
  exit?: string;
  exited: Promise<void>;
  killedOnPurpose: boolean;
  stopRequested: boolean;
  /** It said `stopped` (closed its context) before exiting. */
  stoppedCleanly: boolean;
  /** The end of its output, for crash reports. */
  tail: string;
}

/** What became of the write of a holder SIGSTOPped between its read and its write. */
type PauseOutcome =
  | 'refused by the store'
  | 'caught by the signal'
  | 'accepted: nobody took the lock meanwhile'
  | 'the stop came after the write'
  | 'failed otherwise';

interface Pause {
  workerId: number;
  token: string;
  durationMs: number;
  /** The session timeout of the paused worker. */
  sessionTimeout: number;
  stoppedAt: number;
  resumedAt?: number;
  outcome?: PauseOutcome;
  /** With `failed otherwise`: how. */
  detail?: string;
}

const pauses: Pause[] = [];

class Slot implements FaultTarget {
  readonly incarnations: Incarnation[] = [];
  readonly errors = new Map<string, number>();
  stopped = false;
  lastFault?: { kind: FaultKind; endedAt: number };
  /** The last SIGSTOP of this worker while holding the lock. */
  paused?: Pause;

  constructor(
    readonly id: number,
    readonly proxies: TcpProxy[],
    readonly requestedTimeout: number,
    readonly style: LockStyle,
    private readonly spawner: (slot: Slot) => void,
  ) {}

  get current(): Incarnation | undefined {
    const last = this.incarnations.at(-1);
    return last && last.exit === undefined ? last : undefined;
  }

  get accepted(): number {
    return this.incarnations.reduce((sum, inc) => sum + inc.accepted, 0);
  }

  pid(): number | undefined {
    return this.current?.pid;
  }

  sessionTimeout(): number {
    return this.current?.session?.timeout ?? this.requestedTimeout;
  }

  credentials(): { id: Buffer; password: Buffer } | undefined {
    const session = this.current?.session;
    return session && { id: session.id, password: session.password };
  }

  async kill(): Promise<void> {
    const inc = this.current;
    if (!inc) return;
    inc.killedOnPurpose = true;
    inc.child.kill('SIGKILL');
    await inc.exited;
  }

  respawn(): void {
    this.spawner(this);
  }

  pausedHolding(token: string, durationMs: number): void {
    this.paused = {
      workerId: this.id,
      token,
      durationMs,
      sessionTimeout: this.sessionTimeout(),
      stoppedAt: Date.now(),
    };
    pauses.push(this.paused);
  }

  resumed(): void {
    if (this.paused) this.paused.resumedAt = Date.now();
  }

  /** Records what became of the paused write, the first time something happens to its token. */
  settlePause(token: string | undefined, outcome: PauseOutcome, detail?: string): void {
    const pause = this.paused;
    if (!pause || pause.outcome || token !== pause.token) return;
    pause.outcome = outcome;
    pause.detail = detail;
    if (outcome === 'accepted: nobody took the lock meanwhile') pause.detail = whyNobodyTookIt(pause);
    event(
      `pause   worker ${this.id}: its paused write (token ${token}): ${outcome}${pause.detail ? ` (${pause.detail})` : ''}`,
    );
  }

  /** Why a write or read of this worker may have been refused, said when it happens. */
  causeOfRefusal(token: string): string {
    if (this.paused?.token === token) return `its holder was SIGSTOPped for ${secs(this.paused.durationMs)}`;
    const fault = this.lastFault;
    if (fault && Date.now() - fault.endedAt < 10_000) {
      return `${secs(Date.now() - fault.endedAt)} after a ${fault.kind} of this worker`;
    }
    return 'NO recent fault on this worker';
  }
}

/**
 * Why a holder paused for longer than its session timeout could still write (nobody else read
 * meanwhile): the pause was cut short; or a member fault during it (a new leader restarts every
 * session's timeout); or a fault of another worker (the next in line, dead or cut off, keeps its
 * node at the head of the queue until its own session ends); or none known.
 */
function whyNobodyTookIt(pause: Pause): string {
  const resumedAt = pause.resumedAt ?? Date.now();
  if (resumedAt - pause.stoppedAt < pause.sessionTimeout) {
    return `paused ${secs(resumedAt - pause.stoppedAt)} only (the end of the run), under its session timeout`;
  }
  const during = injector?.faultsBetween(pause.stoppedAt, resumedAt) ?? [];
  const member = during.filter((f) => f.workerId === undefined).map((f) => f.kind);
  if (member.length > 0)
    return `a ${member.join(' and a ')} during the pause: the new leader restarts session timeouts`;
  const others = during.filter((f) => f.workerId !== undefined && f.workerId !== pause.workerId);
  if (others.length > 0) {
    return `${others.map((f) => `a ${f.kind} of worker ${f.workerId}`).join(', ')} during the pause: the next in line was down`;
  }
  return 'NO other fault during the pause';
}

/** The cause of each refusal, found when it happened. */
const refusalCauses = new Map<Refusal, string>();

// ---- the run's state (module level: the signal and exit handlers need it) ----

let ensemble: ZkEnsemble | undefined;
const allProxies: TcpProxy[] = [];
const slots: Slot[] = [];
let injector: FaultInjector | undefined;
/** Set once the faults are over: an unexpected worker exit is not followed by a new process any more. */
let ending = false;
const problems: string[] = [];
const yieldTakers = new Set<(worker: FaultTarget, token: string) => boolean>();
let holder: Slot | undefined;

/** Every child still running, SIGCONTed and SIGKILLed (synchronously: also from the exit hook). */
function killChildren(): void {
  for (const slot of slots) {
    for (const inc of slot.incarnations) {
      if (inc.exit !== undefined) continue;
      try {
        process.kill(inc.pid, 'SIGCONT');
        process.kill(inc.pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  }
}
process.on('exit', killChildren);

let interrupted = false;
/** The run failed: the workers are killed, that is no crash of theirs. */
let aborting = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (interrupted) return;
    interrupted = true;
    say(`\n${signal}: stopping the workers and the ensemble...`);
    injector?.stop();
    killChildren();
    void Promise.allSettled([ensemble?.stop(), ...allProxies.map((p) => p.close())]).then(() =>
      process.exit(signal === 'SIGINT' ? 130 : 143),
    );
  });
}

/** Polls `condition` every 100 ms; true when it held before `timeoutMs`. */
async function until(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() >= deadline) return false;
    await sleep(100);
  }
  return true;
}

function reply(inc: Incarnation, message: MainMessage): void {
  if (inc.child.connected) inc.child.send(message, () => undefined);
}

function onWorkerMessage(slot: Slot, inc: Incarnation, message: WorkerMessage, store: FencedStore): void {
  const writer = { workerId: slot.id, pid: inc.pid, host: HOST };
  switch (message.type) {
    case 'ready':
      inc.ready = true;
      if (inc.n > 1) event(`worker  ${slot.id}: new process ${inc.pid} (#${inc.n}) connected`);
      return;
    case 'session':
      inc.session = {
        id: Buffer.from(message.id, 'hex'),
        password: Buffer.from(message.password, 'hex'),
        timeout: message.timeout,
      };
      return;
    case 'acquired':
      holder = slot;
      return;
    case 'read': {
      const result = store.read(writer, BigInt(message.token));
      if (!result.ok) {
        refusalCauses.set(store.refused.at(-1)!, slot.causeOfRefusal(message.token));
        event(`STORE   refused a read by worker ${slot.id} (pid ${inc.pid}): ${result.reason}`);
      }
      reply(inc, { type: 'read-reply', req: message.req, ...result });
      return;
    }
    case 'yielding':
      for (const take of yieldTakers) if (take(slot, message.token)) yieldTakers.delete(take);
      return;
    case 'write': {
      const result = store.write(writer, BigInt(message.token), message.counter);
      if (result.ok) inc.accepted += 1;
      else {
        refusalCauses.set(store.refused.at(-1)!, slot.causeOfRefusal(message.token));
        event(
          `STORE   refused the write of ${message.counter} by worker ${slot.id} (pid ${inc.pid}): ${result.reason}`,
        );
      }
      slot.settlePause(
        message.token,
        slot.stopped
          ? 'the stop came after the write'
          : result.ok
            ? 'accepted: nobody took the lock meanwhile'
            : 'refused by the store',
      );
      reply(inc, { type: 'write-reply', req: message.req, ...result });
      return;
    }
    case 'error':
      slot.errors.set(message.kind, (slot.errors.get(message.kind) ?? 0) + 1);
      if (message.kind.startsWith('LockLostError'))
        slot.settlePause(message.token, 'caught by the signal', message.kind);
      else slot.settlePause(message.token, 'failed otherwise', message.kind);
      event(`w${slot.id}      ${message.kind}: ${message.message.slice(0, 160)}`);
      return;
    case 'stopped':
      inc.stoppedCleanly = true;
      return;
  }
}

/** Forks a process for `slot`, writing its output to `output` (prefixed) and serving its store requests. */
function spawnWorker(slot: Slot, store: FencedStore, output: fs.WriteStream, seed: number): void {
  const connect = slot.proxies.map((proxy) => proxy.connectString).join(',');
  const child = fork(WORKER_SCRIPT, [], {
    env: {
      ...process.env,
      [ENV.connect]: connect,
      [ENV.workerId]: String(slot.id),
      [ENV.sessionTimeout]: String(slot.requestedTimeout),
      [ENV.style]: slot.style,
      [ENV.seed]: String(seed),
      NO_COLOR: '1', // Nest's log lines, plain in the workers' log
    },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    serialization: 'json',
  });
  const inc: Incarnation = {
    n: slot.incarnations.length + 1,
    child,
    pid: child.pid ?? -1,
    ready: false,
    accepted: 0,
    exited: Promise.resolve(),
    killedOnPurpose: false,
    stopRequested: false,
    stoppedCleanly: false,
    tail: '',
  };
  inc.exited = new Promise((resolve) => {
    // 'close', not 'exit': by then its last IPC messages and output have arrived too.
    child.once('close', (code, signal) => {
      inc.exit = signal ? `signal ${signal}` : `exit code ${code}`;
      resolve();
      if (inc.killedOnPurpose || inc.stopRequested || interrupted || aborting) return;
      const what = `worker ${slot.id} process ${inc.pid} (#${inc.n}) exited unexpectedly (${inc.exit})`;
      problems.push(`${what}; its last output:\n${inc.tail.trimEnd()}`);
      event(`CRASH   ${what}`);
      if (!ending) setTimeout(() => slot.respawn(), 500);
    });
  });
  slot.incarnations.push(inc);
  let partial = '';
  const collect = (chunk: Buffer) => {
    const text = chunk.toString('utf8');
    inc.tail = (inc.tail + text).slice(-4_096);
    const lines = (partial + text).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) output.write(`[w${slot.id} ${inc.pid}] ${line}\n`);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  child.on('error', (error) => problems.push(`worker ${slot.id}: could not start a process: ${error.message}`));
  child.on('message', (message: unknown) => {
    if (isWorkerMessage(message)) onWorkerMessage(slot, inc, message, store);
  });
}

function zooKeeperClasspath(): void {
  // test/support finds scripts/zookeeper.sh relative to its own file, which is not where the
  // compiled copy in chaos/dist/ lives: tell it the classpath (scripts/chaos.sh does too).
  process.env['ZK_CLASSPATH'] ||= execFileSync('bash', [path.join(REPO_ROOT, 'scripts', 'zookeeper.sh'), 'classpath'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  }).trim();
}

/** The children of the lock directory as seen through `connectionString`, polled until empty or the deadline. */
async function lockNodesLeft(connectionString: string, deadline: number): Promise<{ left: string[]; info?: string }> {
  const connection = new ZkConnectionService({ connectionString, sessionTimeout: MAX_SESSION_TIMEOUT });
  await connection.connect();
  try {
    for (;;) {
      let left: string[];
      try {
        left = (await connection.getChildren(LOCK_PATH)).children;
      } catch (error) {
        if (!(error instanceof ZooKeeperError && error.zkCode === 'NO_NODE')) throw error;
        left = [];
      }
      if (left.length === 0) return { left };
      if (Date.now() >= deadline) {
        const info = await new LockService(connection).inspect(LOCK_PATH).catch(() => undefined);
        return { left, info: info && JSON.stringify(info) };
      }
      await sleep(200);
    }
  } finally {
    await connection.close();
  }
}

function describeRefusal(refusal: Refusal, faultsStartedAt: number): string {
  const what =
    refusal.op === 'write'
      ? `write of ${refusal.counter} by worker ${refusal.workerId}`
      : `read by worker ${refusal.workerId}`;
  return (
    `${what} (pid ${refusal.pid}) at ${secs(refusal.at - faultsStartedAt)} into the faults, token ${refusal.token}: ` +
    `${refusal.reason} [${refusalCauses.get(refusal) ?? '?'}]`
  );
}

async function run(args: ChaosArgs): Promise<number> {
  runStart = Date.now();
  const seed = args.seed ?? randomInt(2 ** 32);
  const prng = new Prng(seed);
  const logFile = args.log === undefined ? DEFAULT_LOG : path.resolve(args.log);
  if (!fs.existsSync(path.dirname(logFile))) throw new UsageError(`--log ${args.log}: its directory does not exist`);
  const workersLogFile = logFile.replace(/(\.log)?$/, '.workers.log');
  const shown = (file: string) => path.relative(process.cwd(), file) || file;
  say(
    `zk-lock chaos run: seed ${seed} (repeat the schedule with --seed ${seed}), ${secs(args.durationMs)} of faults, ` +
      `${args.workers} workers`,
  );
  say(`  store log: ${shown(logFile)}; workers' own output: ${shown(workersLogFile)}`);
  Logger.overrideLogger(['error']); // the library's connection warnings of the orphan check: not here

  const store = new FencedStore(logFile);
  const output = fs.createWriteStream(workersLogFile);

  zooKeeperClasspath();
  const startedEnsemble = Date.now();
  ensemble = await startEnsemble({ tickTime: 200 });
  event(`ensemble of 3 members up in ${secs(Date.now() - startedEnsemble)}: ${ensemble.connectString}`);

  for (let id = 1; id <= args.workers; id++) {
    const proxies = await Promise.all(
      ensemble.servers.map((server) => TcpProxy.start({ host: server.host, port: server.port })),
    );
    allProxies.push(...proxies);
    const style: LockStyle = id % 2 === 1 ? 'decorator' : 'withLock';
    const slot = new Slot(id, proxies, prng.pick(SESSION_TIMEOUTS), style, (s) =>
      spawnWorker(s, store, output, prng.int(0, 2 ** 32 - 1)),
    );
    slots.push(slot);
    slot.respawn();
  }
  const allReady = await until(() => slots.every((slot) => slot.current?.ready), READY_TIMEOUT);
  if (!allReady) {
    const late = slots.filter((slot) => !slot.current?.ready).map((slot) => slot.id);
    throw new Error(`workers ${late.join(', ')} not connected within ${secs(READY_TIMEOUT)}`);
  }
  for (const slot of slots) {
    event(
      `worker  ${slot.id}: pid ${slot.pid()}, locks with ${slot.style === 'decorator' ? '@DistributedLock' : 'withLock'}, ` +
        `session timeout ${slot.sessionTimeout()} ms, via proxies ${slot.proxies.map((p) => p.port).join(',')}`,
    );
  }

  say(`\nFaults for ${secs(args.durationMs)}, one every 1-3 s, drawn from:`);
  for (const kind of args.kinds) say(`  ${kind.padEnd(17)} ${FAULT_TEXT[kind]}`);
  say();
  const faultsStartedAt = Date.now();
  injector = new FaultInjector(
    {
      ensemble,
      workers: slots,
      log: event,
      onYielding: (take) => {
        yieldTakers.add(take);
        return { cancel: () => yieldTakers.delete(take) };
      },
    },
    prng,
    args.kinds,
  );
  const status = setInterval(() => {
    const up = slots.filter((slot) => slot.current?.ready).length;
    const active = [...injector!.active].join(', ') || 'none';
    event(
      `status  ${store.accepted} accepted, ${store.refused.length} refused, ${injector!.total} faults ` +
        `(under way: ${active}), ${up}/${slots.length} workers up, last holder w${holder?.id ?? '-'}`,
    );
  }, 10_000);
  try {
    await injector.run(args.durationMs);
  } finally {
    clearInterval(status);
  }
  const faultsMs = Date.now() - faultsStartedAt;

  // ---- the end: restore everything, let every worker write again, stop them ----
  ending = true;
  event('faults stopped; restoring every proxy, member and worker');
  for (const proxy of allProxies) proxy.restore();
  for (const slot of slots) {
    const pid = slot.pid();
    if (slot.stopped && pid !== undefined) process.kill(pid, 'SIGCONT');
  }
  for (const server of ensemble.servers) if (!server.isRunning()) await startMember(server);
  await ensemble.waitForQuorum(60_000);
  for (const slot of slots) if (!slot.current) slot.respawn();
  // Recovery: every worker must write again after the faults (a process that lost its session,
  // or a new one, included) before it is stopped.
  const drainStart = Date.now();
  const before = new Map(slots.map((slot) => [slot, slot.current]));
  const baseline = new Map(slots.map((slot) => [slot, slot.current?.accepted ?? 0]));
  const wroteAgain = (slot: Slot) => {
    const inc = slot.current;
    if (!inc) return false;
    return inc !== before.get(slot) ? inc.accepted > 0 : inc.accepted > baseline.get(slot)!;
  };
  const drained = await until(() => slots.every(wroteAgain), DRAIN_TIMEOUT);
  const notAgain = slots.filter((slot) => !wroteAgain(slot));
  event(
    drained
      ? `every worker has written again after the faults (within ${secs(Date.now() - drainStart)}); stopping the workers`
      : `workers ${notAgain.map((slot) => slot.id).join(', ')} did not write again within ${secs(DRAIN_TIMEOUT)}; stopping the workers`,
  );
  for (const slot of slots) {
    const inc = slot.current;
    if (!inc) continue;
    inc.stopRequested = true;
    reply(inc, { type: 'stop' });
  }
  const stoppedInTime = await until(() => slots.every((slot) => !slot.current), STOP_TIMEOUT);
  if (!stoppedInTime) {
    for (const slot of slots) {
      const inc = slot.current;
      if (!inc) continue;
      problems.push(`worker ${slot.id} process ${inc.pid} did not exit within ${secs(STOP_TIMEOUT)} of stop (killed)`);
      inc.child.kill('SIGKILL');
      await inc.exited;
    }
  }
  const workersGoneAt = Date.now();
  event('workers stopped; looking for lock nodes left on the ensemble');

  // ---- orphans: on the ensemble, and on every member (they must agree) ----
  const orphanDeadline = workersGoneAt + ORPHAN_TIMEOUT;
  const orphans = await lockNodesLeft(ensemble.connectString, orphanDeadline);
  const orphansAfter = Date.now() - workersGoneAt;
  const perMember = await Promise.all(
    ensemble.servers.map((server) => lockNodesLeft(server.connectString, Math.max(orphanDeadline, Date.now() + 2_000))),
  );
  output.end();

  // ---- the verdict ----
  const text = fs.readFileSync(logFile, 'utf8');
  const verdict = verifyLog(text, { expectedLines: store.accepted, fenced: true });
  const checks: { name: string; ok: boolean; text: string }[] = [];
  const counterProblems = verdict.problems.filter((p) => !p.includes('fencing token'));
  checks.push({
    name: 'counters',
    ok: counterProblems.length === 0,
    text:
      `${store.accepted} accepted writes: counters 1..${store.accepted} ` +
      `(${verdict.duplicates.length} duplicates, ${verdict.missing.length} missing, ${verdict.torn} torn lines)` +
      (counterProblems.length > 0 ? `: ${counterProblems.join('; ')}` : ', each exactly once, in order'),
  });
  checks.push({
    name: 'tokens',
    ok: verdict.tokenViolations === 0,
    text: `fencing tokens of the accepted writes strictly increasing (${verdict.tokenViolations} violations)`,
  });
  const idle = slots.filter((slot) => slot.accepted === 0 || (slot.incarnations.at(-1)?.accepted ?? 0) === 0);
  checks.push({
    name: 'progress',
    ok: idle.length === 0 && notAgain.length === 0,
    text:
      (notAgain.length === 0
        ? 'every worker wrote again after the faults; '
        : `NOT WRITTEN AGAIN after the faults: ${notAgain.map((slot) => `w${slot.id}`).join(', ')}; `) +
      'accepted writes per worker (per process): ' +
      slots
        .map((slot) => `w${slot.id} ${slot.accepted} (${slot.incarnations.map((inc) => inc.accepted).join('+')})`)
        .join(', ') +
      (idle.length > 0 ? `; NO PROGRESS: ${idle.map((slot) => `w${slot.id}`).join(', ')}` : ''),
  });
  const memberLeft = perMember.flatMap((m, i) => (m.left.length > 0 ? [`member ${i + 1}: ${m.left.join(' ')}`] : []));
  checks.push({
    name: 'orphans',
    ok: orphans.left.length === 0 && memberLeft.length === 0,
    text:
      orphans.left.length === 0 && memberLeft.length === 0
        ? `no node left under ${LOCK_PATH}, on any member (empty ${secs(orphansAfter)} after the workers exited)`
        : `${orphans.left.length} nodes left under ${LOCK_PATH} ${secs(orphansAfter)} after the workers exited: ` +
          `${orphans.left.join(' ')} ${orphans.info ?? ''} ${memberLeft.join('; ')}`,
  });
  const unclean = slots.flatMap((slot) =>
    slot.incarnations
      .filter((inc) => !inc.killedOnPurpose && !inc.stoppedCleanly)
      .map((inc) => `w${slot.id} ${inc.pid}`),
  );
  checks.push({
    name: 'workers',
    ok: problems.length === 0 && unclean.length === 0,
    text:
      problems.length === 0 && unclean.length === 0
        ? 'no worker process crashed; every one not killed on purpose stopped cleanly'
        : `${problems.length} problems; not stopped cleanly: ${unclean.join(', ') || 'none'}`,
  });
  const total = injector.total;
  checks.push({ name: 'faults', ok: total > 0, text: `${total} faults injected` });

  // ---- the summary ----
  say('\n=== chaos summary ===');
  say(`seed ${seed}, ${args.workers} workers, faults for ${secs(faultsMs)}, run time ${secs(Date.now() - runStart)}`);
  const kinds = FAULT_KINDS.filter((kind) => injector!.injected[kind] > 0).length;
  say(`faults injected: ${total} of ${kinds} kinds`);
  for (const kind of FAULT_KINDS) say(`  ${kind.padEnd(17)} ${String(injector.injected[kind]).padStart(4)}`);
  if (injector.skipped.length > 0) {
    const byKind = new Map<string, number>();
    for (const s of injector.skipped) byKind.set(s.kind, (byKind.get(s.kind) ?? 0) + 1);
    say(
      `  skipped: ${[...byKind].map(([kind, n]) => `${kind} ${n}`).join(', ')} (drawn, but no target at that moment)`,
    );
  }
  if (pauses.length > 0) {
    const outcomes = new Map<string, number>();
    for (const pause of pauses) {
      let outcome: string = pause.outcome ?? 'no write yet when the run ended';
      if (pause.outcome === 'accepted: nobody took the lock meanwhile') {
        const detail = pause.detail ?? '';
        outcome = detail.startsWith('paused')
          ? 'accepted: cut short by the end of the run'
          : detail.endsWith('restarts session timeouts')
            ? 'accepted: a member fault restarted the session timers'
            : detail.endsWith('was down')
              ? 'accepted: another worker under a fault held up the queue'
              : 'accepted: NO other fault during the pause';
      }
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
    }
    say(
      `  what became of the SIGSTOPped holders' writes: ${[...outcomes].map(([outcome, n]) => `${outcome} ${n}`).join(', ')}`,
    );
  }
  say(`accepted writes: ${store.accepted}`);
  const refusedWrites = store.refused.filter((r) => r.op === 'write');
  const refusedReads = store.refused.filter((r) => r.op === 'read');
  say(`rejected stale writes: ${refusedWrites.length}`);
  for (const refusal of refusedWrites.slice(0, 50)) say(`  ${describeRefusal(refusal, faultsStartedAt)}`);
  if (refusedWrites.length > 50) say(`  ... and ${refusedWrites.length - 50} more`);
  say(`rejected stale reads: ${refusedReads.length}`);
  for (const refusal of refusedReads.slice(0, 20)) say(`  ${describeRefusal(refusal, faultsStartedAt)}`);
  const errorCounts = new Map<string, number>();
  for (const slot of slots)
    for (const [kind, n] of slot.errors) errorCounts.set(kind, (errorCounts.get(kind) ?? 0) + n);
  say(
    `worker errors (each iteration that failed, survived): ${
      [...errorCounts]
        .toSorted((a, b) => b[1] - a[1])
        .map(([kind, n]) => `${kind} ${n}`)
        .join(', ') || 'none'
    }`,
  );
  say(`worker processes: ${slots.map((slot) => `w${slot.id} ${slot.incarnations.length}`).join(', ')}`);
  for (const problem of problems) say(`problem: ${problem}`);
  for (const check of checks) say(`CHECK ${check.name}: ${check.ok ? 'PASS' : 'FAIL'} ${check.text}`);
  const ok = checks.every((check) => check.ok);
  say(`RESULT: ${ok ? 'PASS' : 'FAIL'}`);

  await Promise.all(allProxies.map((proxy) => proxy.close()));
  await ensemble.stop();
  return ok ? 0 : 1;
}

async function main(): Promise<number> {
  let args: ChaosArgs;
  try {
    args = parseChaosArgs(process.argv.slice(2));
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`chaos: ${error.message}\nRun with --help for the options.\n`);
    return 2;
  }
  if (args.help) {
    say(USAGE);
    return 0;
  }
  try {
    return await run(args);
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`chaos: ${error.message}\n`);
      return 2;
    }
    process.stderr.write(`\nchaos: the run failed: ${(error as Error).stack ?? String(error)}\n`);
    aborting = true;
    injector?.stop();
    killChildren();
    await Promise.allSettled([ensemble?.stop(), ...allProxies.map((p) => p.close())]);
    return 1;
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`chaos: unexpected failure: ${String(error)}\n`);
    process.exit(1);
  },
);
