/**
 * `npm run sample -- --jobs`: three instances of the scheduled-jobs app (sample/jobs-app.ts),
 * each its own process with its own ZooKeeper session, run a @Cron job every second under
 * @OnOneInstance + @WithoutOverlapping and a @LeaderElection provider. The sample prints who runs
 * each tick, SIGKILLs the job's holder (which also leads), then stops the next holder cleanly
 * (SIGTERM), times both handovers (from the kill or the stop to the next run on another
 * instance), and verifies that no tick ran twice and that fencing tokens strictly increase
 * (sample/jobs-verify.ts).
 */
import { fork } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Fleet, lastOutput, type Member } from './fleet.js';
import { LEADER_PATH, REPORT_JOB_PATH } from './jobs-app.js';
import { clockTime, verifyJobs, type LeaderTerm, type TickRun } from './jobs-verify.js';
import { ENV, isJobsInstanceMessage, type JobsInstanceMessage } from './messages.js';
import { say, seconds, tail } from './report.js';

const INSTANCE_SCRIPT = fileURLToPath(new URL('./jobs-instance.js', import.meta.url));
/** Up and connected (Nest loaded, session made), first alone, then the two others. */
const READY_TIMEOUT = 60_000;
/** Ticks a holder runs before the sample kills or stops it; the last instance runs fewer. */
const TICKS_PER_HOLDER = 3;
/** A stopped instance gone: the module's shutdownTimeout (10 s) plus closing the session. */
const STOP_TIMEOUT = 15_000;

interface JobsInstance extends Member {
  ready: boolean;
  sessionTimeoutMs: number;
  holdsJob: boolean;
  leads: boolean;
  /** How the sample ended it (its exit is expected then). */
  ended?: 'killed' | 'stopped';
  /** When its exit was seen (hrtime ns). */
  goneAt?: bigint;
  errors: string[];
}

interface Run extends TickRun {
  /** When the run began (hrtime ns). */
  at: bigint;
}

interface Move {
  instance: number;
  holds: boolean;
  at: bigint;
}

const now = () => process.hrtime.bigint();
const msBetween = (from: bigint, to: bigint) => Number(to - from) / 1e6;
/** `12 ms` under a second, `4.41 s` from there. */
const duration = (ms: number) => (ms < 1_000 ? `${ms.toFixed(0)} ms` : seconds(ms));
/**
 * The kill and the stop come half a second after a tick (a tick fires at the start of each
 * second), so that the times shown are neither the best case nor the worst.
 */
const MID_SECOND_MS = 500;

/** What the instances told, and the timeline printed from it. */
class JobsRun {
  readonly fleet = new Fleet<JobsInstance>();
  readonly runs: Run[] = [];
  readonly terms: (LeaderTerm & { reason?: string })[] = [];
  readonly moves: Move[] = [];
  /** Ticks no instance ran, as runs of seconds ("12:00:09-12:00:12"). */
  readonly gaps: string[] = [];
  private readonly started = performance.now();
  private lastSecond: number | undefined;

  constructor(private readonly connect: string) {}

  /** A timeline line: seconds since the start, then the text. */
  line(text: string): void {
    say(`${seconds(performance.now() - this.started).padStart(8)}  ${text}`);
  }

  instance(id: number): JobsInstance {
    return this.fleet.members.find((m) => m.id === id)!;
  }

  start(id: number): JobsInstance {
    const child = fork(INSTANCE_SCRIPT, [], {
      env: { ...process.env, [ENV.connect]: this.connect, [ENV.workerId]: String(id) },
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      serialization: 'json',
    });
    const member: JobsInstance = {
      id,
      child,
      output: '',
      ready: false,
      sessionTimeoutMs: Number.NaN,
      holdsJob: false,
      leads: false,
      errors: [],
    };
    return this.fleet.adopt(member, {
      message: (message) => {
        if (isJobsInstanceMessage(message)) this.onMessage(member, message);
      },
      closed: () => this.onExit(member),
    });
  }

  private onExit(member: JobsInstance): Error | undefined {
    member.goneAt = now();
    // A killed leader's belief ended with its process (an upper bound: it was seen gone).
    for (const term of this.terms) if (term.instance === member.id) term.to ??= member.goneAt;
    if (member.ended || this.fleet.stopping) return undefined;
    const text = `instance ${member.id} (pid ${member.child.pid ?? '?'}) exited (${member.exit})`;
    return new Error(`${member.error ? `${text}: ${member.error}` : text}${lastOutput(member)}`);
  }

  private onMessage(member: JobsInstance, message: JobsInstanceMessage): void {
    const { id } = member;
    switch (message.type) {
      case 'jobs-ready':
        member.ready = true;
        member.sessionTimeoutMs = message.sessionTimeoutMs;
        this.line(
          `instance ${id} (pid ${member.child.pid}) up, ${seconds(message.startupMs)} after its start; ` +
            `session timeout ${seconds(message.sessionTimeoutMs)}`,
        );
        return;
      case 'ran':
        this.ran({ instance: id, second: message.second, token: BigInt(message.token), at: BigInt(message.at) });
        return;
      case 'job-holder':
        member.holdsJob = message.holds;
        this.moves.push({ instance: id, holds: message.holds, at: BigInt(message.at) });
        this.line(
          message.holds
            ? `job: instance ${id} now holds ${REPORT_JOB_PATH} (it runs every tick while it lives)`
            : `job: instance ${id} let go of it (${message.reason ?? '?'})`,
        );
        return;
      case 'leader-acquired':
        member.leads = true;
        this.terms.push({ instance: id, token: BigInt(message.token), from: BigInt(message.at), to: undefined });
        this.line(`leader: instance ${id} leads ${LEADER_PATH} (onLeadershipAcquired, token ${message.token})`);
        return;
      case 'leader-signal': {
        member.leads = false;
        const term = this.terms.findLast((t) => t.instance === id && t.token === BigInt(message.token));
        if (term) term.to = BigInt(message.at);
        return;
      }
      case 'leader-lost': {
        const term = this.terms.findLast((t) => t.instance === id && t.token === BigInt(message.token));
        if (term) term.reason = message.reason;
        this.line(`leader: instance ${id} no longer leads (onLeadershipLost: ${message.reason ?? '?'})`);
        return;
      }
      case 'log':
        if (message.level !== 'warn') member.errors.push(message.message);
        this.line(`[instance ${id}] ${message.level.toUpperCase()} ${tail(message.message, 3)}`);
        return;
      case 'error':
        member.error = message.message;
        return;
    }
  }

  private ran(run: Run): void {
    if (this.lastSecond !== undefined && run.second > this.lastSecond + 1) {
      const [from, to] = [this.lastSecond + 1, run.second - 1];
      const gap = from === to ? clockTime(from) : `${clockTime(from)}-${clockTime(to)}`;
      this.gaps.push(gap);
      this.line(`tick ${gap}: no run (the job was moving; missed ticks are not caught up)`);
    }
    this.lastSecond = Math.max(this.lastSecond ?? run.second, run.second);
    this.runs.push(run);
    this.line(`tick ${clockTime(run.second)} ran on instance ${run.instance} (token ${run.token})`);
  }

  /** Resolves once `holder` ran `count` ticks that began after `since`. */
  async ticksOn(holder: JobsInstance, count: number, since: bigint): Promise<void> {
    const done = () => this.runs.filter((r) => r.instance === holder.id && r.at > since).length;
    await this.fleet.until(
      () => done() >= count,
      count * 1_000 + 15_000,
      () => `instance ${holder.id} ran ${done()} of ${count} ticks within ${seconds(count * 1_000 + 15_000)}`,
    );
  }

  /** The first run on another instance than `from` that began after `since`. */
  async nextRunElsewhere(from: JobsInstance, since: bigint, timeoutMs: number): Promise<Run> {
    const next = () => this.runs.find((r) => r.instance !== from.id && r.at > since);
    await this.fleet.until(
      () => next() !== undefined,
      timeoutMs,
      () => `no tick ran on another instance within ${seconds(timeoutMs)} after instance ${from.id} went`,
    );
    return next()!;
  }

  /** When another instance than `from` took the job after `since` (hrtime), if it did. */
  tookJob(from: JobsInstance, since: bigint): Move | undefined {
    return this.moves.find((m) => m.holds && m.instance !== from.id && m.at > since);
  }

  /** The leadership term another instance than `from` began after `since`, if any. */
  nextLeader(from: JobsInstance, since: bigint): LeaderTerm | undefined {
    return this.terms.find((t) => t.instance !== from.id && t.from > since);
  }

  async waitExit(member: JobsInstance): Promise<void> {
    await this.fleet.until(
      () => member.exit !== undefined,
      STOP_TIMEOUT,
      () => `instance ${member.id} still running ${seconds(STOP_TIMEOUT)} after SIGTERM`,
    );
  }
}

/** One handover: what the sample did to `from`, and when what followed happened (ms after it). */
interface Handover {
  what: string;
  from: JobsInstance;
  run: Run;
  runMs: number;
  tookMs: number | undefined;
  leader?: { instance: number; ms: number };
}

/** Kills (SIGKILL) or stops (SIGTERM) `from`, the job's holder, and times the handover. */
async function handOver(state: JobsRun, from: JobsInstance, how: 'killed' | 'stopped', timeoutMs: number) {
  const wasLeader = from.leads;
  const signal = how === 'killed' ? 'SIGKILL' : 'SIGTERM';
  await new Promise((resolve) => setTimeout(resolve, MID_SECOND_MS));
  state.line(
    `${signal} to instance ${from.id} (pid ${from.child.pid}), which holds the job${wasLeader ? ' and leads' : ''}` +
      (how === 'killed' ? ': its nodes stay until its session expires' : ': it leaves its elections and exits'),
  );
  from.ended = how;
  const at = now();
  from.child.kill(signal);
  const run = await state.nextRunElsewhere(from, at, timeoutMs);
  const took = state.tookJob(from, at);
  const leader = wasLeader ? state.nextLeader(from, at) : undefined;
  const handover: Handover = {
    what: `${signal} to instance ${from.id}`,
    from,
    run,
    runMs: msBetween(at, run.at),
    tookMs: took && msBetween(at, took.at),
    leader: leader && { instance: leader.instance, ms: msBetween(at, leader.from) },
  };
  state.line(
    `handover: the next tick ran on instance ${run.instance} ${duration(handover.runMs)} after the ${signal}` +
      (handover.tookMs === undefined ? '' : ` (it took the job ${duration(handover.tookMs)} after it)`),
  );
  return handover;
}

function describeHandover(h: Handover, sessionTimeoutMs: number): string {
  const versus = (ms: number) =>
    h.from.ended === 'killed' ? ` (${(ms / sessionTimeoutMs).toFixed(2)} x the session timeout)` : '';
  const took = h.tookMs === undefined ? '' : `; it took the job ${duration(h.tookMs)} after it${versus(h.tookMs)}`;
  const leader = h.leader ? `; instance ${h.leader.instance} led ${duration(h.leader.ms)} after it` : '';
  return `  ${h.what}: the next tick ran on instance ${h.run.instance} ${duration(h.runMs)} after it${took}${leader}`;
}

/** Starts instance 1 alone (so that it holds the job and leads), then instances 2 and 3. */
async function startInstances(state: JobsRun): Promise<JobsInstance> {
  const { fleet } = state;
  state.line('starting instance 1 alone, so that it holds the job and leads...');
  const first = state.start(1);
  await fleet.until(
    () => first.ready && first.holdsJob && first.leads,
    READY_TIMEOUT,
    () => `instance 1 not up, holding the job and leading within ${seconds(READY_TIMEOUT)}`,
  );
  state.line('starting instances 2 and 3 (they queue behind instance 1 in both elections)...');
  const others = [state.start(2), state.start(3)];
  const late = () => others.filter((i) => !i.ready).map((i) => i.id);
  await fleet.until(
    () => late().length === 0,
    READY_TIMEOUT,
    () => `instances ${late().join(', ')} not up within ${seconds(READY_TIMEOUT)}`,
  );
  return first;
}

/** Prints the verdict and the handovers; resolves with the exit status. */
function report(state: JobsRun, crash: Handover, clean: Handover, sessionTimeoutMs: number): number {
  const problems: string[] = [];
  for (const member of state.fleet.members) {
    if (member.ended === 'stopped' && member.exit !== 'exit code 0') {
      problems.push(`instance ${member.id} ended with ${member.exit} after SIGTERM`);
    }
    for (const error of member.errors) problems.push(`instance ${member.id} logged an error: ${tail(error, 3)}`);
  }
  const verdict = verifyJobs(state.runs, state.terms);
  const holders = [...new Set(state.runs.toSorted((a, b) => a.second - b.second).map((r) => r.instance))];
  say();
  if (verdict.ok) {
    say(
      `PASS: ${state.runs.length} ticks ran, each exactly once (a tick is the second it fired), on instances ` +
        `${holders.join(', ')} in turn; fencing tokens strictly increasing; ${state.terms.length} leaders, ` +
        'one at a time, tokens increasing.',
    );
  } else {
    say(`FAIL: ${verdict.problems.length} problem(s):`);
    for (const problem of verdict.problems) say(`  - ${problem}`);
  }
  say(`Handovers (session timeout ${seconds(sessionTimeoutMs)}; a tick fires at the start of each second):`);
  say(describeHandover(crash, sessionTimeoutMs));
  say(describeHandover(clean, sessionTimeoutMs));
  if (state.gaps.length > 0) {
    say(`  ticks without a run while the job moved (not caught up): ${state.gaps.join(', ')}`);
  }
  for (const problem of problems) say(`Problem: ${problem}`);
  return verdict.ok && problems.length === 0 ? 0 : 1;
}

/** Runs the jobs mode; resolves with the exit status (0: no tick ran twice, tokens increased). Rejects when the run fails. */
export async function runJobs(connect: string): Promise<number> {
  const state = new JobsRun(connect);
  const first = await startInstances(state);
  const sessionTimeoutMs = first.sessionTimeoutMs;

  // The job's holder (also the leader) crashes; the next one runs a few ticks, then stops cleanly.
  await state.ticksOn(first, TICKS_PER_HOLDER, now());
  const crash = await handOver(state, first, 'killed', sessionTimeoutMs + 30_000);
  const second = state.instance(crash.run.instance);
  await state.ticksOn(second, TICKS_PER_HOLDER, crash.run.at);
  const clean = await handOver(state, second, 'stopped', 30_000);
  await state.waitExit(second);

  // The last one runs a few ticks, then stops too.
  const third = state.instance(clean.run.instance);
  await state.ticksOn(third, TICKS_PER_HOLDER - 1, clean.run.at);
  state.line(`SIGTERM to instance ${third.id}, the last one`);
  third.ended = 'stopped';
  third.child.kill('SIGTERM');
  await state.waitExit(third);
  return report(state, crash, clean, sessionTimeoutMs);
}
