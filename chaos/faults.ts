/**
 * The fault injector of the chaos run: every 1-3 s (seeded PRNG) it starts one fault, which
 * undoes itself after a while. The kinds are dealt from a shuffled deck, so that every kind runs
 * within each round of draws (a kind drawn with no target at that moment goes back into the
 * deck). Faults run side by side, with two rules: at most one ensemble member is down at a time
 * (the quorum is waited for after each member fault), and a worker is the target of at most one
 * fault at a time. The targeted faults (notify-cut, ping-cut) are in targeted-faults.ts.
 */
import type { TcpProxy } from '../test/support/proxy.js';
import type { ZkLockOptions } from '../lib/index.js';
import type { ZkEnsemble } from '../test/support/zookeeper.js';
import { expireSession, pause, startMember } from './fault-tools.js';
import type { Prng } from './prng.js';
import { PATHS } from './messages.js';
import type { Pacing } from './pacer.js';
import { cutBeforePing, pacedNotifyCut, type Cut, type Targetable } from './targeted-faults.js';

export const FAULT_KINDS = [
  'follower-kill',
  'leader-kill',
  'worker-cut',
  'worker-partition',
  'session-expire',
  'holder-sigstop',
  'worker-kill',
  'notify-cut',
  'ping-cut',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export const FAULT_TEXT: Record<FaultKind, string> = {
  'follower-kill': 'kill -9 a non-leader member, restart it',
  'leader-kill': 'kill -9 the leader, restart it',
  'worker-cut': "reset a worker's connections, refuse new ones briefly",
  'worker-partition': "blackhole a worker's proxies for longer than its session timeout",
  'session-expire': "expire a worker's session (resume it elsewhere and close it)",
  'holder-sigstop': 'SIGSTOP the lock holder between its read and its write, longer than its session timeout',
  'worker-kill': 'kill -9 a worker process, start a new one',
  'notify-cut':
    "silence a worker queued behind main's own hold of the counter lock, release it (a notification to the silent worker), then cut it off both ways past its session timeout",
  'ping-cut': "drop a (holding) worker's ping and cut it off both ways past its session timeout",
};

export interface FaultWindow {
  kind: FaultKind;
  /** The worker it hit (worker faults). */
  workerId?: number;
  /** Its process then. */
  pid?: number;
  /** The session (hex) of that process when the fault began. */
  session?: string;
  /** ms since epoch. */
  start: number;
  end?: number;
  /** The same on process.hrtime.bigint() (the workers' belief clock). */
  startNs: bigint;
  endNs?: bigint;
  /** Drawn, but it turned out there was nothing to do (see FaultInjector.skipped). */
  skipped?: boolean;
}

/** A worker slot as the injector sees it (chaos/main.ts implements it). */
export interface FaultTarget extends Targetable {
  readonly id: number;
  /** Its proxies, one per ensemble member. */
  readonly proxies: readonly TcpProxy[];
  /** Pid of its running process, undefined between processes. */
  pid(): number | undefined;
  /** Its session timeout: the granted one when known, else the requested one. */
  sessionTimeout(): number;
  /** Credentials of its current session, undefined when it has none. */
  credentials(): { id: Buffer; password: Buffer } | undefined;
  /** Its current session's id (hex), when known. */
  sessionHex(): string | undefined;
  /** SIGSTOPped right now (so that the end of the run, or an exit, can SIGCONT it). */
  stopped: boolean;
  /** When its last fault ended (ms since epoch) and what it was, to explain a refused write. */
  lastFault?: { kind: FaultKind; endedAt: number };
  /** It was SIGSTOPped holding the lock with `token`, between its read and its write: main follows what becomes of that write. */
  pausedHolding(token: string, durationMs: number): void;
  /** The SIGCONT after pausedHolding(). */
  resumed(): void;
  /** SIGKILLs its process (marked as killed on purpose) and resolves when it has exited. */
  kill(): Promise<void>;
  /** Forks a new process for the slot. */
  respawn(): void;
}

export interface World {
  ensemble: ZkEnsemble;
  /** With --tls: how another client reaches the ensemble (to expire a worker's session). */
  tls?: ZkLockOptions['tls'];
  workers: readonly FaultTarget[];
  /** Main's own hand in the read/write lock, for notify-cut (chaos/pacer.ts). */
  pacer: Pacing;
  /** A line of the run's timeline. */
  log(text: string): void;
  /**
   * Calls `take` for each worker that announces it has read the counter and is about to write
   * (it holds the lock), until `take` returns true; `cancel()` stops that.
   */
  onYielding(take: (worker: FaultTarget, token: string) => boolean): { cancel(): void };
}

export class FaultInjector {
  readonly injected = Object.fromEntries(FAULT_KINDS.map((kind) => [kind, 0])) as Record<FaultKind, number>;
  /** Faults drawn but not injected, with why (e.g. no holder reached its write in time). */
  readonly skipped: { kind: FaultKind; why: string }[] = [];
  /** Faults under way, for the status line. */
  readonly active = new Set<string>();
  private memberFault = false;
  /** A notify-cut is under way (main holds, or is taking, its lock: chaos/pacer.ts). */
  private pacing = false;
  /**
   * Every fault injected, from its start to its undoing (`end` unset while under way; member
   * faults end when the quorum is back), with the worker it hit.
   */
  readonly windows: FaultWindow[] = [];
  private readonly busy = new Set<number>();
  private readonly running = new Set<Promise<void>>();
  private readonly ending = new AbortController();
  private failure: Error | undefined;
  /** The kinds still to deal in this round (shuffled); refilled when empty. */
  private deck: FaultKind[] = [];

  constructor(
    private readonly world: World,
    private readonly prng: Prng,
    /** The kinds to draw from (default all). */
    private readonly kinds: readonly FaultKind[] = FAULT_KINDS,
  ) {}

  /** The faults under way at some time between `from` and `to` (ms since epoch). */
  faultsBetween(from: number, to: number): FaultWindow[] {
    return this.windows.filter((f) => f.start <= to && (f.end ?? Infinity) >= from);
  }

  get total(): number {
    return Object.values(this.injected).reduce((a, b) => a + b, 0);
  }

  /** The kinds asked for that never ran. */
  get neverRan(): FaultKind[] {
    return this.kinds.filter((kind) => this.injected[kind] === 0);
  }

  /** Injects faults for `durationMs`, then stops, lets the faults under way undo themselves, and resolves. */
  async run(durationMs: number): Promise<void> {
    const end = Date.now() + durationMs;
    for (;;) {
      await pause(Math.min(this.prng.between(1_000, 3_000), Math.max(0, end - Date.now())), this.ending.signal);
      if (Date.now() >= end || this.ending.signal.aborted) break;
      this.launch();
    }
    this.ending.abort();
    await Promise.allSettled(this.running);
    if (this.failure) throw this.failure;
  }

  /** Stops early: the faults under way are undone at once. */
  stop(): void {
    this.ending.abort();
  }

  /** Deals the next kind that is possible now from the deck, and starts it. */
  private launch(): void {
    if (this.deck.length === 0) this.deck = this.shuffled(this.kinds);
    const index = this.deck.findIndex((kind) => this.possible(kind));
    if (index < 0) return;
    const [kind] = this.deck.splice(index, 1);
    const fault = this.inject(kind).catch((error: unknown) => {
      // A fault that cannot be undone (a member that does not come back) ends the run.
      this.failure ??= new Error(`${kind}: ${(error as Error).message}`);
      this.ending.abort();
    });
    this.running.add(fault);
    void fault.finally(() => this.running.delete(fault));
  }

  private shuffled(kinds: readonly FaultKind[]): FaultKind[] {
    const deck = [...kinds];
    for (let i = deck.length - 1; i > 0; i -= 1) {
      const j = this.prng.int(0, i);
      [deck[i], deck[j]] = [deck[j], deck[i]];
    }
    return deck;
  }

  private possible(kind: FaultKind): boolean {
    switch (kind) {
      case 'follower-kill':
      case 'leader-kill':
        return !this.memberFault;
      case 'notify-cut':
        return !this.pacing && this.free().length > 0; // (one at a time: main holds one lock)
      case 'holder-sigstop':
      case 'ping-cut':
        return this.free().length > 0;
      case 'session-expire':
        return this.free().some((w) => w.credentials() !== undefined);
      default:
        return this.free().some((w) => w.pid() !== undefined);
    }
  }

  private free(): FaultTarget[] {
    return this.world.workers.filter((w) => !this.busy.has(w.id));
  }

  private async inject(kind: FaultKind): Promise<void> {
    switch (kind) {
      case 'follower-kill':
      case 'leader-kill':
        return this.member(kind);
      case 'holder-sigstop':
        return this.sigstopHolder();
      case 'notify-cut':
      case 'ping-cut':
        return this.cutOnPacket(kind);
      case 'session-expire': {
        const target = this.prng.pick(this.free().filter((w) => w.credentials() !== undefined));
        return this.onWorker(kind, target, () => this.expire(target));
      }
      default: {
        const target = this.prng.pick(this.free().filter((w) => w.pid() !== undefined));
        if (kind === 'worker-cut') return this.onWorker(kind, target, () => this.cut(target));
        if (kind === 'worker-partition') return this.onWorker(kind, target, () => this.partition(target));
        return this.onWorker(kind, target, () => this.killWorker(target));
      }
    }
  }

  /** A new window of `kind` on `target` (or a member fault), from now. */
  private open(kind: FaultKind, target?: FaultTarget): FaultWindow {
    const window: FaultWindow = {
      kind,
      workerId: target?.id,
      pid: target?.pid(),
      session: target?.sessionHex(),
      start: Date.now(),
      startNs: process.hrtime.bigint(),
    };
    this.windows.push(window);
    return window;
  }

  private close(window: FaultWindow): void {
    window.end = Date.now();
    window.endNs = process.hrtime.bigint();
  }

  /** Runs a fault on one worker, which no other fault touches meanwhile. */
  private async onWorker(kind: FaultKind, target: FaultTarget, body: () => Promise<string | undefined>): Promise<void> {
    this.busy.add(target.id);
    const label = `${kind} w${target.id}`;
    this.active.add(label);
    const window = this.open(kind, target);
    try {
      const skipped = await body();
      if (skipped) {
        window.skipped = true;
        this.skip(kind, `worker ${target.id}: ${skipped}`);
      }
    } finally {
      this.close(window);
      target.lastFault = { kind, endedAt: Date.now() };
      this.active.delete(label);
      this.busy.delete(target.id);
    }
  }

  /** A fault drawn but not injected: said, and dealt again later. */
  private skip(kind: FaultKind, why: string): void {
    this.skipped.push({ kind, why });
    this.deck.push(kind);
    this.world.log(`skip    ${kind}: ${why}`);
  }

  private count(kind: FaultKind, text: string): void {
    this.injected[kind] += 1;
    this.world.log(`FAULT   #${this.total} ${kind}: ${text}`);
  }

  private async member(kind: 'follower-kill' | 'leader-kill'): Promise<void> {
    this.memberFault = true;
    const { ensemble } = this.world;
    try {
      const leader = await ensemble.leaderIndex();
      let index: number;
      if (kind === 'leader-kill') {
        index = leader;
        if (index < 0) return this.skip(kind, 'no leader right now (an election is going on)');
      } else {
        const followers = ensemble.servers
          .map((_, i) => i)
          .filter((i) => i !== leader && ensemble.servers[i].isRunning());
        if (followers.length === 0) return this.skip(kind, 'no follower running');
        index = this.prng.pick(followers);
      }
      const server = ensemble.servers[index];
      const label = `${kind} m${index + 1}`;
      this.active.add(label);
      try {
        const down = this.prng.between(500, 2_000);
        const window = this.open(kind);
        await server.kill();
        this.count(
          kind,
          `member ${index + 1} (${server.connectString}) killed, restart in ${(down / 1000).toFixed(1)} s`,
        );
        await pause(down, this.ending.signal);
        const started = Date.now();
        await startMember(server);
        await ensemble.waitForQuorum(60_000);
        this.close(window);
        const newLeader = await ensemble.leaderIndex();
        this.world.log(
          `undo    ${kind}: member ${index + 1} back, quorum in ${((Date.now() - started) / 1000).toFixed(1)} s, leader is member ${newLeader + 1}`,
        );
      } finally {
        this.active.delete(label);
      }
    } finally {
      this.memberFault = false;
    }
  }

  private async cut(target: FaultTarget): Promise<string | undefined> {
    const refuseFor = this.prng.between(100, 800);
    for (const proxy of target.proxies) {
      proxy.refuse();
      proxy.reset();
    }
    this.count(
      'worker-cut',
      `worker ${target.id}: connections reset, reconnects refused for ${Math.round(refuseFor)} ms`,
    );
    await pause(refuseFor, this.ending.signal);
    for (const proxy of target.proxies) proxy.restore();
    return undefined;
  }

  private async partition(target: FaultTarget): Promise<string | undefined> {
    const timeout = target.sessionTimeout();
    const duration = timeout + this.prng.between(500, 2_000);
    for (const proxy of target.proxies) proxy.blackhole();
    this.count(
      'worker-partition',
      `worker ${target.id}: all its packets dropped for ${(duration / 1000).toFixed(1)} s (session timeout ${timeout} ms)`,
    );
    await pause(duration, this.ending.signal);
    for (const proxy of target.proxies) proxy.restore();
    this.world.log(`undo    worker-partition: worker ${target.id} reconnected`);
    return undefined;
  }

  private async expire(target: FaultTarget): Promise<string | undefined> {
    const credentials = target.credentials();
    if (!credentials) return 'no session right now';
    // While another client takes the session over, the worker must not win it back.
    for (const proxy of target.proxies) proxy.refuse();
    try {
      const outcome = await expireSession(this.world.ensemble.connectString, credentials, this.world.tls);
      if (outcome !== 'closed') return `its session 0x${credentials.id.toString('hex')}: ${outcome}`;
      this.count(
        'session-expire',
        `worker ${target.id}: session 0x${credentials.id.toString('hex')} closed by another client`,
      );
    } finally {
      for (const proxy of target.proxies) proxy.restore();
    }
    return undefined;
  }

  private async killWorker(target: FaultTarget): Promise<string | undefined> {
    const pid = target.pid();
    if (pid === undefined) return 'no process right now';
    await target.kill();
    const down = this.prng.between(300, 1_500);
    this.count('worker-kill', `worker ${target.id}: pid ${pid} killed, a new process in ${(down / 1000).toFixed(1)} s`);
    await pause(down, this.ending.signal);
    target.respawn();
    return undefined;
  }

  /**
   * notify-cut / ping-cut (targeted-faults.ts): waits for the packet (a ping: up to 10 s, the first
   * 6 s for a worker that holds a lock; a notification: paced by main, see pacedNotifyCut), cuts
   * that worker off both ways for its session timeout + 0.5-2 s, then restores.
   */
  private async cutOnPacket(kind: 'notify-cut' | 'ping-cut'): Promise<void> {
    const waiting = `${kind} (waiting for a ${kind === 'ping-cut' ? 'ping' : 'watcher'})`;
    this.active.add(waiting);
    let window: FaultWindow | undefined;
    const onCut = (target: FaultTarget) => {
      this.busy.add(target.id);
      window = this.open(kind, target);
    };
    const cut = kind === 'ping-cut' ? await this.pingCut(onCut) : await this.notifyCut(onCut);
    this.active.delete(waiting);
    if (typeof cut === 'string' || !window) return this.skip(kind, typeof cut === 'string' ? cut : 'no cut');
    const { target } = cut;
    const label = `${kind} w${target.id}`;
    this.active.add(label);
    try {
      const timeout = target.sessionTimeout();
      const duration = timeout + this.prng.between(500, 2_000);
      this.count(
        kind,
        `worker ${target.id} cut off both ways ${kind === 'ping-cut' ? 'as it sent a ping (dropped)' : 'right after a notification reached it'}, ` +
          `${Math.round(cut.sinceLastUp)} ms after its last packet to the server, holding ${cut.held.join(', ') || 'nothing'}, ` +
          `for ${(duration / 1000).toFixed(1)} s (session timeout ${timeout} ms)`,
      );
      await pause(duration, this.ending.signal);
    } finally {
      for (const proxy of target.proxies) proxy.restore();
      this.close(window);
      target.lastFault = { kind, endedAt: Date.now() };
      this.active.delete(label);
      this.busy.delete(target.id);
    }
    this.world.log(`undo    ${kind}: worker ${target.id} reconnected`);
  }

  private async pingCut(onCut: (target: FaultTarget) => void): Promise<Cut<FaultTarget> | string> {
    const cut = await cutBeforePing({
      candidates: () => this.free(),
      preferMs: 6_000,
      waitMs: 10_000,
      signal: this.ending.signal,
      onCut,
    });
    return cut ?? (this.ending.signal.aborted ? 'the faults ended before a ping' : 'no ping within 10 s');
  }

  /**
   * notify-cut on a worker that watches main's node of the counter lock (chaos/pacer.ts): a worker
   * that waits for the counter while it holds the read/write lock (`nested`, or a `longRead` of its
   * other loop) is the case of issue 11 item 1 (a holder waiting behind another lock).
   */
  private async notifyCut(onCut: (target: FaultTarget) => void): Promise<Cut<FaultTarget> | string> {
    this.pacing = true;
    try {
      return await this.pacedNotifyCut(onCut);
    } finally {
      this.pacing = false;
    }
  }

  private pacedNotifyCut(onCut: (target: FaultTarget) => void): Promise<Cut<FaultTarget> | string> {
    return pacedNotifyCut({
      pacer: this.world.pacer,
      path: PATHS.counter,
      candidates: () => this.free(),
      prng: this.prng,
      signal: this.ending.signal,
      claim: (target) => {
        this.busy.add(target.id);
        return { release: () => this.busy.delete(target.id) };
      },
      onCut,
    });
  }

  /** Waits (up to 3 s) for a free worker to announce it has read the counter, and stops it right there. */
  private async sigstopHolder(): Promise<void> {
    const kind = 'holder-sigstop';
    let stopped: { target: FaultTarget; pid: number; token: string; window: FaultWindow } | undefined;
    const label = `${kind} (waiting for a holder)`;
    this.active.add(label);
    await new Promise<void>((resolve) => {
      const finish = () => {
        clearTimeout(timer);
        subscription.cancel();
        this.ending.signal.removeEventListener('abort', finish);
        resolve();
      };
      const timer = setTimeout(finish, 3_000);
      this.ending.signal.addEventListener('abort', finish, { once: true });
      const subscription = this.world.onYielding((target, token) => {
        const pid = target.pid();
        if (this.busy.has(target.id) || pid === undefined) return false;
        // At once, in the message handler: the worker is in its 20-50 ms yield before the write.
        const window = this.open(kind, target);
        process.kill(pid, 'SIGSTOP');
        target.stopped = true;
        this.busy.add(target.id);
        stopped = { target, pid, token, window };
        finish();
        return true;
      });
    });
    this.active.delete(label);
    if (!stopped) return this.skip(kind, 'no holder reached its write within 3 s');
    const { target, pid, token, window } = stopped;
    const label2 = `${kind} w${target.id}`;
    this.active.add(label2);
    try {
      const timeout = target.sessionTimeout();
      const duration = timeout + this.prng.between(500, 2_000);
      target.pausedHolding(token, duration);
      this.count(
        kind,
        `worker ${target.id} (pid ${pid}) stopped after reading the counter, for ${(duration / 1000).toFixed(1)} s (session timeout ${timeout} ms)`,
      );
      await pause(duration, this.ending.signal);
    } finally {
      try {
        process.kill(pid, 'SIGCONT');
      } catch {
        // gone meanwhile
      }
      target.stopped = false;
      this.close(window);
      target.resumed();
      target.lastFault = { kind, endedAt: Date.now() };
      this.active.delete(label2);
      this.busy.delete(target.id);
    }
    this.world.log(`undo    ${kind}: worker ${target.id} continued (SIGCONT)`);
  }
}
