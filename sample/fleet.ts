/** The child processes sample/main.ts forks (workers, or app instances), and waiting on their state. */
import type { ChildProcess } from 'node:child_process';
import { tail } from './report.js';

/** How much of a child's stdout + stderr is kept. */
const OUTPUT_TAIL = 8_192;

export interface Member {
  /** 1-based. */
  readonly id: number;
  readonly child: ChildProcess;
  /** A failure it reported over IPC, or a failure to spawn it. */
  error?: string;
  /** How it exited, e.g. "exit code 0" or "signal SIGKILL"; undefined while it runs. */
  exit?: string;
  /** The end of its stdout + stderr. */
  output: string;
}

export interface MemberEvents {
  /** An IPC message from the child (unchecked); the fleet's waits are re-checked afterwards. */
  message(message: unknown): void;
  /** It has exited (`exit` is set): the error that fails the fleet when this was not expected, else undefined. */
  closed(): Error | undefined;
}

/** "\n--- its last output:\n..." when the member printed something and reported no error itself; else "". */
export function lastOutput(member: Member, lines = 15): string {
  return !member.error && member.output.trim() ? `\n--- its last output:\n${tail(member.output, lines)}` : '';
}

/** Child processes, and promises on their state that reject as soon as one of them fails. */
export class Fleet<T extends Member> {
  /** Every fleet of this process: a signal stops them all. */
  static readonly all = new Set<Fleet<Member>>();

  readonly members: T[] = [];
  /** Set by stop(): members exiting now is expected. */
  stopping = false;
  private failure: Error | undefined;
  private readonly checks = new Set<() => void>();
  private readonly failedController = new AbortController();

  constructor() {
    Fleet.all.add(this);
  }

  /** Aborted (with the error as its reason) when the fleet fails. */
  get failed(): AbortSignal {
    return this.failedController.signal;
  }

  /** Whatever waits on the fleet now rejects with `error` (the first one wins). */
  fail(error: Error): void {
    this.failure ??= error;
    if (!this.failedController.signal.aborted) this.failedController.abort(this.failure);
    this.changed();
  }

  changed(): void {
    for (const check of Array.from(this.checks)) check();
  }

  /**
   * Resolves when `condition` holds; rejects after `timeoutMs` with `late()` as the message, and
   * (unless `failFast` is false) as soon as a member fails.
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

  running(): T[] {
    return this.members.filter((m) => m.exit === undefined);
  }

  /** Adds a forked member: keeps the end of its output, records how it exits, and reports both to `events`. */
  adopt(member: T, events: MemberEvents): T {
    this.members.push(member);
    const { child } = member;
    const collect = (chunk: Buffer) => {
      member.output = (member.output + chunk.toString('utf8')).slice(-OUTPUT_TAIL);
    };
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
    child.on('message', (message: unknown) => {
      events.message(message);
      this.changed();
    });
    child.on('error', (error) => {
      member.error ??= error.message;
    });
    // 'close', not 'exit': by then its last IPC messages and output have arrived too.
    child.on('close', (code, signal) => {
      member.exit = signal ? `signal ${signal}` : `exit code ${code}`;
      const error = events.closed();
      if (error) this.fail(error);
      this.changed();
    });
    return member;
  }

  /**
   * Stops the members still running: SIGTERM, then SIGKILL to those still running after
   * `graceMs`. Resolves with the members that had to be killed.
   */
  async stop(graceMs: number): Promise<T[]> {
    this.stopping = true;
    const running = this.running();
    for (const m of running) m.child.kill('SIGTERM');
    const gone = () => running.every((m) => m.exit !== undefined);
    const killed: T[] = [];
    await this.until(gone, graceMs, () => 'still running', false).catch(async () => {
      killed.push(...this.running());
      for (const m of killed) m.child.kill('SIGKILL');
      await this.until(gone, 2_000, () => 'still running', false).catch(() => undefined);
    });
    return killed;
  }
}
