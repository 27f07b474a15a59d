/**
 * The harness's own hand in a lock queue, for notify-cut (faults.ts, targeted-faults.ts): main
 * takes a lock itself (the counter's), the workers queue behind its node and the first of them
 * watches it, and main releases it at a moment of its choosing. The release is a watch
 * notification to that watcher, sent exactly when the fault needs one (during its silence).
 *
 * Before the pacer, notify-cut silenced a worker and hoped that some notification would reach it
 * in the right window; on a loaded machine that often took longer than a 30 s run, and the run
 * failed with "NEVER RAN: notify-cut".
 *
 * Main's hold is a belief like a worker's (worker 0, op `harness`), checked with theirs: while main
 * holds the lock, no worker may believe it holds it.
 */
import { LockService, ZkConnectionService, type ZkLockOptions } from '../lib/index.js';
import { fourLetter } from '../test/support/four-letter.js';
import type { ZkEnsemble } from '../test/support/zookeeper.js';
import type { Belief } from './beliefs.js';

/** A lock main holds. */
export interface PacerHold {
  /** Full path of main's lock node: what the queue behind it watches. */
  readonly node: string;
  /** Deletes the node (the notification); later calls return the same promise. */
  release(): Promise<void>;
}

/** What notify-cut needs of the pacer (faults.ts). */
export interface Pacing {
  /** The (exclusive) lock of `path` within `timeoutMs`, or undefined (busy, an outage, `signal` aborted). */
  hold(path: string, timeoutMs: number, signal: AbortSignal): Promise<PacerHold | undefined>;
  /** The sessions watching `node` on any member (`wchp`), as numbers. */
  watchers(node: string): Promise<Set<bigint>>;
}

export class Pacer implements Pacing {
  private held = 0;

  private constructor(
    private readonly connection: ZkConnectionService,
    private readonly locks: LockService,
    private readonly ensemble: ZkEnsemble,
    private readonly record: (belief: Belief) => void,
  ) {}

  /** Connects to the ensemble directly (no proxy: no worker fault touches main). */
  static async start(
    ensemble: ZkEnsemble,
    tls: ZkLockOptions['tls'],
    record: (belief: Belief) => void,
  ): Promise<Pacer> {
    const connection = new ZkConnectionService({
      connectionString: ensemble.connectString,
      sessionTimeout: 4_000,
      tls,
    });
    await connection.connect();
    return new Pacer(connection, new LockService(connection), ensemble, record);
  }

  async hold(path: string, timeoutMs: number, signal: AbortSignal): Promise<PacerHold | undefined> {
    let handle;
    try {
      handle = await this.locks.acquire(path, { timeout: timeoutMs, signal });
    } catch {
      return undefined; // busy past the timeout, an outage, or the run ending: notify-cut skips
    }
    const belief: Belief = {
      worker: 0,
      pid: process.pid,
      id: ++this.held,
      path,
      mode: 'write',
      op: 'harness',
      token: handle.fencingToken.toString(),
      start: process.hrtime.bigint(),
    };
    this.record(belief);
    const end = (how: 'released' | 'lost') => {
      if (belief.end !== undefined) return;
      belief.end = process.hrtime.bigint();
      belief.how = how;
    };
    const onLost = () => end('lost');
    handle.signal.addEventListener('abort', onLost, { once: true });
    let released: Promise<void> | undefined;
    return {
      node: handle.node,
      release: () => {
        if (released) return released;
        end('released'); // main stops acting as the holder before the node goes
        handle.signal.removeEventListener('abort', onLost);
        released = handle.release().catch(() => undefined); // (a lost lock: its node is gone already)
        return released;
      },
    };
  }

  async watchers(node: string): Promise<Set<bigint>> {
    const answers = await Promise.all(
      this.ensemble.servers.map((server) => fourLetter(server, 'wchp', 2_000).catch(() => '')), // (a member down)
    );
    const sessions = new Set<bigint>();
    for (const answer of answers) {
      let path: string | undefined;
      for (const line of answer.split('\n')) {
        if (line.startsWith('/')) path = line.trim();
        const session = path === node ? /^\s+(0x[0-9a-f]+)/i.exec(line)?.[1] : undefined;
        if (session) sessions.add(BigInt(session));
      }
    }
    return sessions;
  }

  async close(): Promise<void> {
    await this.connection.close();
  }
}
