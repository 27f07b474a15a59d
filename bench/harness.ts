/**
 * How workloads are run and counted: warm-up first (at least 200 cycles and 2 s), then the
 * measured part between two snapshots of the server's counters, so that `requests_per_op`
 * covers exactly the counted cycles.
 */
import { LockService, ZkConnectionService, ZooKeeperError, type ZkLockOptions } from '../lib/index.js';
import { delay, nowUs, Samples } from './stats.js';

export const WARMUP_CYCLES = 200;
export const WARMUP_MS = 2_000;
/** A warm-up that has not reached its cycles by then goes on to the measurement anyway. */
export const WARMUP_MAX_MS = 30_000;
/** Sessions connecting at the same time. */
const CONNECT_CONCURRENCY = 32;

/** Warm-up, then `cycles` timed calls of `cycle(measuring)`, between two readings of `counters`. */
export async function runCycles<T>(
  cycles: number,
  cycle: (measuring: boolean) => Promise<void>,
  counters: () => Promise<T>,
): Promise<{ latencies: Samples; elapsedUs: number; before: T; after: T }> {
  const warmStart = Date.now();
  for (let done = 0; done < WARMUP_CYCLES || Date.now() - warmStart < WARMUP_MS; done++) await cycle(false);
  const latencies = new Samples();
  const before = await counters();
  const start = nowUs();
  for (let i = 0; i < cycles; i++) {
    const t0 = nowUs();
    await cycle(true);
    latencies.push(nowUs() - t0);
  }
  const elapsedUs = nowUs() - start;
  const after = await counters();
  return { latencies, elapsedUs, before, after };
}

/** Cycles per block of {@link runInterleaved}: tens of milliseconds, far shorter than the machine's drifts. */
const BLOCK_CYCLES = 50;

/** What {@link runInterleaved} measured of one of its workloads. */
export interface InterleavedRun {
  latencies: Samples;
  /** Sum of the workload's blocks. */
  elapsedUs: number;
  /** Server packets received during the workload's blocks. */
  requests: number;
}

/**
 * Several cycle workloads (floor and w1) measured in one run: each warms up on its own (at least
 * 200 cycles and 2 s), then they take turns in blocks of 50 cycles, `cycles` each in all, the
 * order of each round reversed from the last (A B, B A, A B...). A slow moment of a shared machine
 * then hits all of them alike, so their ratio holds even when the lone times drift. `packets` is
 * read at every block boundary, so each workload's requests are exactly those of its own blocks.
 */
export async function runInterleaved(
  cycles: number,
  workloads: ((measuring: boolean) => Promise<void>)[],
  packets: () => Promise<number>,
  /** Per workload, something to do before each cycle that is not measured (idle's pause). */
  pauses: ((() => Promise<void>) | undefined)[] = [],
): Promise<InterleavedRun[]> {
  for (const cycle of workloads) {
    const warmStart = Date.now();
    for (let done = 0; done < WARMUP_CYCLES || Date.now() - warmStart < WARMUP_MS; done++) await cycle(false);
  }
  const runs = workloads.map((): InterleavedRun => ({ latencies: new Samples(), elapsedUs: 0, requests: 0 }));
  let reading = await packets();
  for (let round = 0; round * BLOCK_CYCLES < cycles; round++) {
    const size = Math.min(BLOCK_CYCLES, cycles - round * BLOCK_CYCLES);
    const order = workloads.map((_, i) => i);
    if (round % 2 === 1) order.reverse();
    for (const w of order) {
      const run = runs[w];
      const start = nowUs();
      let paused = 0;
      for (let i = 0; i < size; i++) {
        const pause = pauses[w];
        if (pause) {
          const p0 = nowUs();
          await pause();
          paused += nowUs() - p0;
        }
        const t0 = nowUs();
        await workloads[w](true);
        run.latencies.push(nowUs() - t0);
      }
      run.elapsedUs += nowUs() - start - paused;
      const next = await packets();
      run.requests += next - reading;
      reading = next;
    }
  }
  return runs;
}

type Phase = 'warmup' | 'pause' | 'measure' | 'stop';

/**
 * Runs `loops` concurrent loops of `iteration(i, measuring)`: a warm-up (at least 200 iterations in
 * all, and `loops`, or 2 s; and `warmedUp()`), then every loop parks after its current iteration; once all are
 * parked the counters are read, all loops start again together for `seconds`, then each finishes
 * the iteration it is in (a waiter in the lock's queue gets the lock and releases it) and stops.
 * The measured time runs from the start to the last loop's end, so every counted iteration is
 * counted whole, and no request falls outside the two readings.
 */
export async function runTimed<T>(options: {
  loops: number;
  seconds: number;
  iteration: (loop: number, measuring: boolean) => Promise<void>;
  counters: () => Promise<T>;
  warmedUp?: () => boolean;
  /** Called as the measured part starts (after the first reading of the counters). */
  onMeasure?: () => void;
}): Promise<{ elapsedUs: number; before: T; after: T }> {
  const { loops, seconds, iteration, counters, warmedUp = () => true, onMeasure } = options;
  let phase: Phase = 'warmup';
  let warmIterations = 0;
  let parked = 0;
  let live = loops;
  let failure: { error: unknown } | undefined;

  let allParked!: () => void;
  const parkedAll = new Promise<void>((resolve) => (allParked = resolve));
  let resume!: () => void;
  const resumed = new Promise<void>((resolve) => (resume = resolve));
  let fail!: (error: unknown) => void;
  const failed = new Promise<never>((_, reject) => (fail = reject));
  failed.catch(() => undefined);
  const checkParked = () => {
    if (parked >= live) allParked();
  };

  const loop = async (i: number): Promise<void> => {
    try {
      for (;;) {
        if (phase === 'pause') {
          parked += 1;
          checkParked();
          await resumed;
        }
        if (phase === 'stop') return;
        const measuring = phase === 'measure';
        await iteration(i, measuring);
        if (!measuring) warmIterations += 1;
      }
    } catch (error) {
      failure ??= { error };
      phase = 'stop';
      resume();
      fail(error);
    } finally {
      live -= 1;
      checkParked();
    }
  };

  const done = Promise.all(Array.from({ length: loops }, (_, i) => loop(i)));
  try {
    const warmStart = Date.now();
    const warm = async () => {
      for (;;) {
        const elapsed = Date.now() - warmStart;
        // Warm: at least 200 iterations or 2 s (and every loop at least once).
        const enough = warmIterations >= Math.max(WARMUP_CYCLES, loops) || elapsed >= WARMUP_MS;
        if (enough && warmedUp()) return;
        if (elapsed > WARMUP_MAX_MS) return;
        await delay(10);
      }
    };
    await Promise.race([warm(), failed]);
    phase = 'pause';
    await Promise.race([parkedAll, failed]);
    const before = await counters();
    phase = 'measure';
    onMeasure?.();
    const start = nowUs();
    resume();
    await Promise.race([delay(seconds * 1_000), failed]);
    phase = 'stop';
    await done;
    const elapsedUs = nowUs() - start;
    if (failure) throw failure.error;
    const after = await counters();
    return { elapsedUs, before, after };
  } finally {
    phase = 'stop';
    resume();
    await done;
  }
}

/** One ZkConnectionService (its own session) and a LockService on it. */
export interface Session {
  connection: ZkConnectionService;
  locks: LockService;
}

/** Connects `count` sessions (a few at a time). */
export async function openSessions(
  connectionString: string,
  count: number,
  options: Omit<ZkLockOptions, 'connectionString'> = {},
): Promise<Session[]> {
  const sessions: Session[] = [];
  try {
    for (let first = 0; first < count; first += CONNECT_CONCURRENCY) {
      const batch = Array.from({ length: Math.min(CONNECT_CONCURRENCY, count - first) }, async () => {
        const connection = new ZkConnectionService({ connectionString, ...options });
        sessions.push({ connection, locks: new LockService(connection) });
        await connection.connect();
      });
      await Promise.all(batch);
    }
  } catch (error) {
    await closeSessions(sessions);
    throw error;
  }
  return sessions;
}

/** Closes the sessions (their ephemeral nodes go at once). */
export async function closeSessions(sessions: Session[]): Promise<void> {
  await Promise.all(sessions.map((session) => session.connection.close()));
}

/** Watch notifications received over all sessions so far. */
export function notifications(sessions: Session[]): number {
  return sessions.reduce((sum, session) => sum + session.connection.stats().notifications, 0);
}

/**
 * Deletes `path` and every persistent node below it that is empty once its own children are gone
 * (lock directories are containers the server reclaims, but not at once, and not on a server
 * without containers). Lock nodes (ephemeral) and the directories that still hold one stay. Resolves with the number of
 * nodes deleted.
 */
export async function removeEmptyTree(connection: ZkConnectionService, path: string): Promise<number> {
  let children: string[];
  try {
    const { children: names, stat } = await connection.getChildren(path);
    if (stat.ephemeralOwner !== 0n) return 0;
    children = names;
  } catch (error) {
    if (ZooKeeperError.is(error, 'NO_NODE')) return 0;
    throw error;
  }
  let removed = 0;
  for (let i = 0; i < children.length; i += 64) {
    const counts = await Promise.all(
      children.slice(i, i + 64).map((child) => removeEmptyTree(connection, `${path}/${child}`)),
    );
    removed += counts.reduce((a, b) => a + b, 0);
  }
  try {
    await connection.remove(path);
    removed += 1;
  } catch (error) {
    if (!ZooKeeperError.is(error, 'NOT_EMPTY', 'NO_NODE')) throw error;
  }
  return removed;
}
