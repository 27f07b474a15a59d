/**
 * The worker side of chaos/main.ts: worker slots (one per worker id, a process at a time), the
 * processes forked for them, and what they report over IPC: store requests (served from the
 * fenced store), belief intervals, stalls, operation outcomes, errors, tripwires.
 */
import { fork, type ChildProcess } from 'node:child_process';
import type * as fs from 'node:fs';
import { hostname } from 'node:os';
import type { TcpProxy } from '../test/support/proxy.js';
import type { Belief } from './beliefs.js';
import type { FencedStore, Refusal } from './fenced-store.js';
import type { FaultInjector, FaultKind, FaultTarget } from './faults.js';
import {
  ENV,
  isWorkerMessage,
  type LockStyle,
  type MainMessage,
  type TlsFiles,
  type WorkerMessage,
} from './messages.js';
import { event, secs } from './timeline.js';
import { LONG_HOLDS } from './workload.js';

const HOST = hostname() || 'unknown';

/** One process of a worker slot. */
export interface Incarnation {
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
  /** hrtime of the SIGKILL we sent, if we did. */
  killedAtNs?: bigint;
  stopRequested: boolean;
  /** It said `stopped` (closed its context) before exiting. */
  stoppedCleanly: boolean;
  /** The end of its output, for crash reports. */
  tail: string;
  /** Its beliefs not ended yet, by id. */
  open: Map<number, Belief>;
  /** Stretches in which its event loop did not run (hrtime ns). */
  stalls: { from: bigint; to: bigint }[];
}

/** What became of the write of a holder SIGSTOPped between its read and its write. */
export type PauseOutcome =
  | 'refused by the store'
  | 'caught by the signal'
  | 'accepted: nobody took the lock meanwhile'
  | 'the stop came after the write'
  | 'failed otherwise';

export interface Pause {
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

/** Counts per operation and outcome. */
export type OpCounts = Map<string, { ok: number; busy: number; error: number }>;

export class Slot implements FaultTarget {
  readonly incarnations: Incarnation[] = [];
  /** Errors of its iterations, by kind. */
  readonly errors = new Map<string, number>();
  readonly ops: OpCounts = new Map();
  stopped = false;
  lastFault?: { kind: FaultKind; endedAt: number };
  /** The last SIGSTOP of this worker while holding the lock. */
  paused?: Pause;

  constructor(
    readonly id: number,
    readonly proxies: TcpProxy[],
    readonly requestedTimeout: number,
    readonly style: LockStyle,
    private readonly pool: WorkerPool,
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

  sessionHex(): string | undefined {
    return this.current?.session?.id.toString('hex');
  }

  holding(): string[] {
    return [...(this.current?.open.values() ?? [])].map((belief) => `${belief.path} (${belief.op})`);
  }

  holdsLong(): boolean {
    return [...(this.current?.open.values() ?? [])].some((belief) => LONG_HOLDS.has(belief.op));
  }

  async kill(): Promise<void> {
    const inc = this.current;
    if (!inc) return;
    inc.killedOnPurpose = true;
    inc.killedAtNs = process.hrtime.bigint();
    inc.child.kill('SIGKILL');
    await inc.exited;
  }

  respawn(): void {
    this.pool.spawn(this);
  }

  pausedHolding(token: string, durationMs: number): void {
    this.paused = {
      workerId: this.id,
      token,
      durationMs,
      sessionTimeout: this.sessionTimeout(),
      stoppedAt: Date.now(),
    };
    this.pool.pauses.push(this.paused);
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
    if (outcome === 'accepted: nobody took the lock meanwhile') pause.detail = this.pool.whyNobodyTookIt(pause);
    event(
      `pause   worker ${this.id}: its paused write (token ${token}): ${outcome}${pause.detail ? ` (${pause.detail})` : ''}`,
    );
  }

  /** Why a write or read of this worker may have been refused, said when it happens ('NO ...' when nothing explains it). */
  causeOfRefusal(token: string): string {
    if (this.paused?.token === token) return `its holder was SIGSTOPped for ${secs(this.paused.durationMs)}`;
    const now = Date.now();
    const faults = (this.pool.injector?.faultsBetween(now - 10_000, now) ?? []).filter((f) => f.workerId === this.id);
    const fault = faults.at(-1);
    if (fault) {
      return fault.end === undefined
        ? `during a ${fault.kind} of this worker`
        : `${secs(now - fault.end)} after a ${fault.kind} of this worker`;
    }
    return 'NO recent fault on this worker';
  }
}

export interface PoolOptions {
  workerScript: string;
  store: FencedStore;
  /** The workers' own output goes here, one line per line, prefixed. */
  output: fs.WriteStream;
  /** A new seed for each process. */
  seed: () => number;
  mutant: string | undefined;
  /** With --tls: the certificate files every worker reads at each connection. */
  tls?: TlsFiles;
}

/** The worker processes of the run and what they report. */
export class WorkerPool {
  readonly slots: Slot[] = [];
  /** Every belief reported, in the order they started. */
  readonly beliefs: Belief[] = [];
  readonly pauses: Pause[] = [];
  /** The cause of each refusal, found when it happened. */
  readonly refusalCauses = new Map<Refusal, string>();
  /** Crashes, tripwires, workers that did not stop: each fails the run. */
  readonly problems: string[] = [];
  readonly tripwires: string[] = [];
  readonly yieldTakers = new Set<(worker: FaultTarget, token: string) => boolean>();
  injector: FaultInjector | undefined;
  holder: Slot | undefined;
  /** Set once the faults are over: an unexpected worker exit is not followed by a new process any more. */
  ending = false;
  /** Set when the run is stopped or aborted: exits are no crashes then. */
  quiet = false;

  constructor(private readonly options: PoolOptions) {}

  add(id: number, proxies: TcpProxy[], sessionTimeout: number, style: LockStyle): Slot {
    const slot = new Slot(id, proxies, sessionTimeout, style, this);
    this.slots.push(slot);
    return slot;
  }

  /** Every child still running, SIGCONTed and SIGKILLed (synchronously: also from the exit hook). */
  killAll(): void {
    for (const slot of this.slots) {
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

  /** Forks a process for `slot`, writing its output (prefixed) and serving its requests. */
  spawn(slot: Slot): void {
    const connect = slot.proxies.map((proxy) => proxy.connectString).join(',');
    const child = fork(this.options.workerScript, [], {
      env: {
        ...process.env,
        [ENV.connect]: connect,
        [ENV.workerId]: String(slot.id),
        [ENV.sessionTimeout]: String(slot.requestedTimeout),
        [ENV.style]: slot.style,
        [ENV.seed]: String(this.options.seed()),
        [ENV.mutant]: this.options.mutant ?? '',
        [ENV.tls]: this.options.tls ? JSON.stringify(this.options.tls) : '',
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
      open: new Map(),
      stalls: [],
    };
    inc.exited = new Promise((resolve) => {
      // 'close', not 'exit': by then its last IPC messages and output have arrived too.
      child.once('close', (code, signal) => {
        inc.exit = signal ? `signal ${signal}` : `exit code ${code}`;
        this.ended(slot, inc);
        resolve();
      });
    });
    slot.incarnations.push(inc);
    let partial = '';
    const collect = (chunk: Buffer) => {
      const text = chunk.toString('utf8');
      inc.tail = (inc.tail + text).slice(-4_096);
      const lines = (partial + text).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) this.options.output.write(`[w${slot.id} ${inc.pid}] ${line}\n`);
    };
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
    child.on('error', (error) => this.problems.push(`worker ${slot.id}: could not start a process: ${error.message}`));
    child.on('message', (message: unknown) => {
      if (isWorkerMessage(message)) this.onMessage(slot, inc, message);
    });
  }

  /** A process is gone: its open beliefs end (at our SIGKILL, or now); an exit nobody asked for is a crash. */
  private ended(slot: Slot, inc: Incarnation): void {
    const at = inc.killedAtNs ?? process.hrtime.bigint();
    for (const belief of inc.open.values()) {
      belief.end = at;
      belief.how = 'process ended';
    }
    inc.open.clear();
    if (inc.killedOnPurpose || inc.stopRequested || this.quiet) return;
    const what = `worker ${slot.id} process ${inc.pid} (#${inc.n}) exited unexpectedly (${inc.exit})`;
    this.problems.push(`${what}; its last output:\n${inc.tail.trimEnd()}`);
    event(`CRASH   ${what}`);
    if (!this.ending) setTimeout(() => slot.respawn(), 500);
  }

  reply(inc: Incarnation, message: MainMessage): void {
    if (inc.child.connected) inc.child.send(message, () => undefined);
  }

  private onMessage(slot: Slot, inc: Incarnation, message: WorkerMessage): void {
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
        this.holder = slot;
        return;
      case 'read':
      case 'write':
        return this.serveStore(slot, inc, message);
      case 'yielding':
        for (const take of this.yieldTakers) if (take(slot, message.token)) this.yieldTakers.delete(take);
        return;
      case 'hold': {
        const belief: Belief = {
          worker: slot.id,
          pid: inc.pid,
          id: message.id,
          path: message.path,
          mode: message.mode,
          op: message.op,
          token: message.token,
          session: message.session,
          start: BigInt(message.at),
        };
        this.beliefs.push(belief);
        inc.open.set(message.id, belief);
        return;
      }
      case 'unhold': {
        const belief = inc.open.get(message.id);
        inc.open.delete(message.id);
        if (belief) {
          belief.end = BigInt(message.at);
          belief.how = message.how;
        }
        return;
      }
      case 'stall':
        inc.stalls.push({ from: BigInt(message.from), to: BigInt(message.to) });
        return;
      case 'op': {
        const counts = slot.ops.get(message.op) ?? { ok: 0, busy: 0, error: 0 };
        counts[message.outcome] += 1;
        slot.ops.set(message.op, counts);
        return;
      }
      case 'error':
        slot.errors.set(message.kind, (slot.errors.get(message.kind) ?? 0) + 1);
        if (message.kind.startsWith('LockLostError'))
          slot.settlePause(message.token, 'caught by the signal', message.kind);
        else slot.settlePause(message.token, 'failed otherwise', message.kind);
        event(`w${slot.id}      ${message.op}: ${message.kind}: ${message.message.slice(0, 160)}`);
        return;
      case 'tripwire':
        this.tripwires.push(`worker ${slot.id} (pid ${inc.pid}): ${message.line}`);
        event(`TRIPWIRE worker ${slot.id} (pid ${inc.pid}): ${message.line.split('\n')[0]}`);
        return;
      case 'stopped':
        inc.stoppedCleanly = true;
        return;
    }
  }

  private serveStore(slot: Slot, inc: Incarnation, message: WorkerMessage & { type: 'read' | 'write' }): void {
    const { store } = this.options;
    const writer = { workerId: slot.id, pid: inc.pid, host: HOST };
    if (message.type === 'read') {
      const result = store.read(writer, BigInt(message.token));
      if (!result.ok) {
        this.refusalCauses.set(store.refused.at(-1)!, slot.causeOfRefusal(message.token));
        event(`STORE   refused a read by worker ${slot.id} (pid ${inc.pid}): ${result.reason}`);
      }
      this.reply(inc, { type: 'read-reply', req: message.req, ...result });
      return;
    }
    const result = store.write(writer, BigInt(message.token), message.counter);
    if (result.ok) inc.accepted += 1;
    else {
      this.refusalCauses.set(store.refused.at(-1)!, slot.causeOfRefusal(message.token));
      event(`STORE   refused the write of ${message.counter} by worker ${slot.id} (pid ${inc.pid}): ${result.reason}`);
    }
    slot.settlePause(
      message.token,
      slot.stopped
        ? 'the stop came after the write'
        : result.ok
          ? 'accepted: nobody took the lock meanwhile'
          : 'refused by the store',
    );
    this.reply(inc, { type: 'write-reply', req: message.req, ...result });
  }

  /**
   * Why a holder paused for longer than its session timeout could still write (nobody else read
   * meanwhile): the pause was cut short; or a member fault during it (a new leader restarts every
   * session's timeout); or a fault of another worker (the next in line, dead or cut off, keeps its
   * node at the head of the queue until its own session ends); or none known.
   */
  whyNobodyTookIt(pause: Pause): string {
    const resumedAt = pause.resumedAt ?? Date.now();
    if (resumedAt - pause.stoppedAt < pause.sessionTimeout) {
      return `paused ${secs(resumedAt - pause.stoppedAt)} only (the end of the run), under its session timeout`;
    }
    const during = this.injector?.faultsBetween(pause.stoppedAt, resumedAt) ?? [];
    const member = during.filter((f) => f.workerId === undefined).map((f) => f.kind);
    if (member.length > 0)
      return `a ${member.join(' and a ')} during the pause: the new leader restarts session timeouts`;
    const others = during.filter((f) => f.workerId !== undefined && f.workerId !== pause.workerId);
    if (others.length > 0) {
      return `${others.map((f) => `a ${f.kind} of worker ${f.workerId}`).join(', ')} during the pause: the next in line was down`;
    }
    return 'NO other fault during the pause';
  }
}
