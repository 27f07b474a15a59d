/**
 * Workloads for the lock kinds beyond the exclusive lock (measured as w2 is):
 *
 * - `rw`: read/write lock, 8 reader sessions + 2 writer sessions on one path;
 * - `sem`: a semaphore of 3 leases, 10 sessions;
 * - `multi`: multi-locks, 4 sessions each taking 2 of 4 paths with `acquireAll`.
 *
 * Every session is made with `heldLockWatchDelay: Infinity` (as in w2), so holders never watch
 * their own nodes and every watch notification counted is a waiter being woken. Each loop runs
 * acquire -> critical section -> release for `--seconds` after its warm-up (see runTimed).
 */
import { LockAbortedError } from '../lib/index.js';
import { closeSessions, notifications, openSessions, runTimed, WARMUP_MAX_MS, type Session } from './harness.js';
import { delay, nowUs, round, Samples } from './stats.js';
import { BENCH_ROOT, perOp, perSecond, type BenchContext } from './context.js';

export interface RwLine {
  workload: 'rw';
  /** Sessions: RW_READERS readers + RW_WRITERS writers. */
  clients: number;
  acquisitions: number;
  reads: number;
  writes: number;
  per_s: number;
  wait_p50_us: number;
  wait_p99_us: number;
  /** A reader inside with a writer, or two writers inside: must be 0. */
  overlaps: number;
  /** Most readers inside the critical section at once: must be at least 2 (readers share). */
  max_readers_inside: number;
  watch_events_per_acq: number;
  /** Notifications per acquisition that was woken at least once (1: never woken in vain). */
  wakeups_per_waiter_woken: number;
  requests_per_op: number;
}

export interface SemLine {
  workload: 'sem';
  clients: number;
  leases: number;
  /** How long each holder stays inside, in ms (SEM_HOLD_MS): the throughput's ceiling is leases * 1000 / hold_ms. */
  hold_ms: number;
  acquisitions: number;
  per_s: number;
  wait_p50_us: number;
  wait_p99_us: number;
  /** Entries into the critical section with `leases` holders already inside: must be 0. */
  overlaps: number;
  /** Most holders inside at once: must be exactly `leases`. */
  max_inside: number;
  watch_events_per_acq: number;
  requests_per_op: number;
}

export interface MultiLine {
  workload: 'multi';
  clients: number;
  /** Lock paths the sessions share; each acquisition takes 2 of them. */
  paths: number;
  acquisitions: number;
  per_s: number;
  wait_p50_us: number;
  wait_p99_us: number;
  /** Entries into a path's critical section with another holder of that path inside, summed over the paths: must be 0. */
  overlaps: number;
  /** Sessions that had not finished their loop by the workload's deadline: must be 0. */
  deadlocks: number;
  watch_events_per_acq: number;
  requests_per_op: number;
}

export type KindsLine = RwLine | SemLine | MultiLine;

export const RW_READERS = 8;
export const RW_WRITERS = 2;
export const SEM_LEASES = 3;
export const SEM_CLIENTS = 10;
export const MULTI_CLIENTS = 4;
export const MULTI_PATHS = 4;
/**
 * How long a semaphore holder stays inside (a timer, so at least this long). Long enough that the
 * leases are the bottleneck, as they are where a semaphore is used: with a one-tick critical
 * section the holders would hardly ever be inside together (each lease is handed out through the
 * inner lock, a few round trips apart), and with 2 ms the inner lock's serial hand-off still
 * limits the throughput, so that a contender mostly finds a lease free when it gets there.
 */
export const SEM_HOLD_MS = 10;
/** multi: how long after the measured part's end every loop must have finished. */
const MULTI_GRACE_MS = 10_000;

/** One turn of the event loop: a critical section others could interleave with. */
const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

const sessionOptions = { heldLockWatchDelay: Infinity } as const;

const waitPercentiles = (waits: Samples) => {
  const [p50, p99] = waits.percentiles(50, 99);
  return { wait_p50_us: p50, wait_p99_us: p99 };
};

const counters = (ctx: BenchContext, sessions: Session[]) => async () => ({
  packets: await ctx.server.packets(),
  notifications: notifications(sessions),
});

// ---- rw ----

/**
 * 8 reader sessions and 2 writer sessions on one path, each looping acquire(mode) -> one event
 * loop turn inside -> release. Notifications are also counted per acquisition (the session's
 * count before and after its acquire: a session has one acquire in flight, and nothing else of
 * it watches), which gives the acquisitions that were woken at least once.
 */
export async function rw(ctx: BenchContext): Promise<RwLine> {
  const path = `${BENCH_ROOT}/rw`;
  const clients = RW_READERS + RW_WRITERS;
  const sessions = await openSessions(ctx.server.connectString, clients, sessionOptions);
  try {
    const state = { readers: 0, writers: 0, overlaps: 0, maxReaders: 0 };
    const readersMeet = gathering(2);
    const waits = new Samples();
    const perKind = {
      read: { count: 0, waits: new Samples(), notifications: 0, woken: 0 },
      write: { count: 0, waits: new Samples(), notifications: 0, woken: 0 },
    };
    const run = await runTimed({
      loops: clients,
      seconds: ctx.args.seconds,
      iteration: async (i, measuring) => {
        const mode = i < RW_READERS ? 'read' : 'write';
        const { connection, locks } = sessions[i];
        if (mode === 'write') await readersMeet.met; // writers join once two readers were seen together
        const heard = connection.stats().notifications;
        const asked = nowUs();
        const lock = await locks.acquire(path, { mode });
        const waited = nowUs() - asked;
        const woken = connection.stats().notifications - heard;
        if (mode === 'read') {
          if (state.writers > 0) state.overlaps += 1;
          state.readers += 1;
          state.maxReaders = Math.max(state.maxReaders, state.readers);
          await readersMeet.arrive();
        } else {
          if (state.writers > 0 || state.readers > 0) state.overlaps += 1;
          state.writers += 1;
        }
        await tick();
        if (mode === 'read') state.readers -= 1;
        else state.writers -= 1;
        await lock.release();
        if (measuring) {
          const kind = perKind[mode];
          waits.push(waited);
          kind.waits.push(waited);
          kind.count += 1;
          kind.notifications += woken;
          if (woken > 0) kind.woken += 1;
        }
      },
      counters: counters(ctx, sessions),
    });
    const { read, write } = perKind;
    const acquisitions = read.count + write.count;
    for (const [name, kind] of Object.entries(perKind)) {
      const [p50, p99] = kind.waits.percentiles(50, 99);
      ctx.note(
        `rw ${name}s: ${kind.count} acquisitions, wait p50 ${p50} us, p99 ${p99} us; ` +
          `${kind.notifications} notifications, ${kind.woken} acquisitions woken at least once`,
      );
    }
    const woken = read.woken + write.woken;
    return {
      workload: 'rw',
      clients,
      acquisitions,
      reads: read.count,
      writes: write.count,
      per_s: perSecond(acquisitions, run.elapsedUs),
      ...waitPercentiles(waits),
      // Counted over the whole run, warm-up included.
      overlaps: state.overlaps,
      max_readers_inside: state.maxReaders,
      watch_events_per_acq: perOp(run.after.notifications - run.before.notifications, acquisitions),
      wakeups_per_waiter_woken: round(woken > 0 ? (read.notifications + write.notifications) / woken : 0, 3),
      requests_per_op: perOp(run.after.packets - run.before.packets, acquisitions),
    };
  } finally {
    await closeSessions(sessions);
  }
}

/**
 * The first `count` callers wait for each other (up to 5 s), later callers pass at once: so that
 * "N holders at once" (max_readers_inside, max_inside) is shown however loaded the machine is,
 * instead of depending on acquisitions landing within one hold. A lock that admits fewer than N
 * keeps them from meeting, and the max-inside count still shows it. Costs the run's first
 * acquisitions a moment, nothing after.
 */
function gathering(count: number): { arrive(): Promise<void>; met: Promise<void> } {
  let arrived = 0;
  let meet!: () => void;
  const met = new Promise<void>((resolve) => (meet = resolve));
  const arrive = async () => {
    if (arrived >= count) return;
    arrived += 1;
    if (arrived === count) return meet();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([met, new Promise<void>((resolve) => (timer = setTimeout(resolve, 5_000)))]);
    clearTimeout(timer);
  };
  return { arrive, met };
}

// ---- sem ----

/**
 * 10 sessions on a semaphore of 3 leases, each looping acquire -> SEM_HOLD_MS inside -> release.
 * Notifications are also counted per acquisition, as in rw: at most one inner-lock hand-off, plus
 * one per lease released while the contender holds the inner lock and waits (none when a lease is
 * free as it gets there, two when two leases go before it has listed them again).
 */
export async function sem(ctx: BenchContext): Promise<SemLine> {
  const path = `${BENCH_ROOT}/sem`;
  const sessions = await openSessions(ctx.server.connectString, SEM_CLIENTS, sessionOptions);
  try {
    const state = { inside: 0, overlaps: 0, maxInside: 0 };
    const holdersMeet = gathering(SEM_LEASES);
    const waits = new Samples();
    /** Measured acquisitions by notifications received during their acquire: 0, 1, 2, 3 or more. */
    const wokenTimes = [0, 0, 0, 0];
    const run = await runTimed({
      loops: SEM_CLIENTS,
      seconds: ctx.args.seconds,
      iteration: async (i, measuring) => {
        const { connection, locks } = sessions[i];
        const heard = connection.stats().notifications;
        const asked = nowUs();
        const lease = await locks.acquire(path, { leases: SEM_LEASES });
        const waited = nowUs() - asked;
        const woken = connection.stats().notifications - heard;
        if (state.inside >= SEM_LEASES) state.overlaps += 1;
        state.inside += 1;
        state.maxInside = Math.max(state.maxInside, state.inside);
        await holdersMeet.arrive();
        await delay(SEM_HOLD_MS);
        state.inside -= 1;
        await lease.release();
        if (measuring) {
          waits.push(waited);
          wokenTimes[Math.min(woken, wokenTimes.length - 1)] += 1;
        }
      },
      counters: counters(ctx, sessions),
    });
    const acquisitions = waits.length;
    ctx.note(
      `sem: of ${acquisitions} acquisitions, ${wokenTimes[0]} were woken 0 times, ${wokenTimes[1]} once, ` +
        `${wokenTimes[2]} twice, ${wokenTimes[3]} 3 or more times`,
    );
    return {
      workload: 'sem',
      clients: SEM_CLIENTS,
      leases: SEM_LEASES,
      hold_ms: SEM_HOLD_MS,
      acquisitions,
      per_s: perSecond(acquisitions, run.elapsedUs),
      ...waitPercentiles(waits),
      // Counted over the whole run, warm-up included.
      overlaps: state.overlaps,
      max_inside: state.maxInside,
      watch_events_per_acq: perOp(run.after.notifications - run.before.notifications, acquisitions),
      requests_per_op: perOp(run.after.packets - run.before.packets, acquisitions),
    };
  } finally {
    await closeSessions(sessions);
  }
}

// ---- multi ----

/**
 * 4 sessions on 4 paths; each acquisition takes a random pair of them, given in random order,
 * with `acquireAll` (no timeout), spends one event loop turn inside, and releases. Deadlock
 * check: every wait is aborted at the workload's deadline (10 s after the measured part ends; in
 * the warm-up, 10 s after its longest allowed duration); a loop caught waiting then counts as a
 * deadlock (after the measured part) or fails the workload (in the warm-up).
 */
export async function multi(ctx: BenchContext): Promise<MultiLine> {
  const paths = Array.from({ length: MULTI_PATHS }, (_, p) => `${BENCH_ROOT}/multi/${p}`);
  const sessions = await openSessions(ctx.server.connectString, MULTI_CLIENTS, sessionOptions);
  const deadline = new AbortController();
  let timer = setTimeout(() => deadline.abort(), WARMUP_MAX_MS + MULTI_GRACE_MS);
  try {
    const inside = paths.map(() => 0);
    const state = { overlaps: 0 };
    const stuck = new Set<number>();
    const waits = new Samples();
    const run = await runTimed({
      loops: MULTI_CLIENTS,
      seconds: ctx.args.seconds,
      iteration: async (i, measuring) => {
        const first = Math.floor(Math.random() * MULTI_PATHS);
        const other = Math.floor(Math.random() * (MULTI_PATHS - 1));
        const pair = [first, other >= first ? other + 1 : other];
        const asked = nowUs();
        let locks;
        try {
          locks = await sessions[i].locks.acquireAll(
            pair.map((p) => paths[p]),
            { timeout: Infinity, signal: deadline.signal },
          );
        } catch (error) {
          if (!(error instanceof LockAbortedError) || !deadline.signal.aborted) throw error;
          if (!measuring) {
            throw new Error(
              `multi: session ${i} still waiting for ${pair.map((p) => paths[p]).join(' and ')} at the warm-up's deadline (deadlock?)`,
              {
                cause: error,
              },
            );
          }
          stuck.add(i);
          return;
        }
        const waited = nowUs() - asked;
        for (const p of pair) {
          if (inside[p] > 0) state.overlaps += 1;
          inside[p] += 1;
        }
        await tick();
        for (const p of pair) inside[p] -= 1;
        await locks.release();
        if (measuring) waits.push(waited);
      },
      counters: counters(ctx, sessions),
      onMeasure: () => {
        clearTimeout(timer);
        timer = setTimeout(() => deadline.abort(), ctx.args.seconds * 1_000 + MULTI_GRACE_MS);
      },
    });
    if (stuck.size > 0) ctx.note(`multi: session(s) ${[...stuck].join(', ')} still waiting at the deadline`);
    const acquisitions = waits.length;
    return {
      workload: 'multi',
      clients: MULTI_CLIENTS,
      paths: MULTI_PATHS,
      acquisitions,
      per_s: perSecond(acquisitions, run.elapsedUs),
      ...waitPercentiles(waits),
      // Counted over the whole run, warm-up included.
      overlaps: state.overlaps,
      deadlocks: stuck.size,
      watch_events_per_acq: perOp(run.after.notifications - run.before.notifications, acquisitions),
      requests_per_op: perOp(run.after.packets - run.before.packets, acquisitions),
    };
  } finally {
    clearTimeout(timer);
    await closeSessions(sessions);
  }
}
