/**
 * Belief intervals (pure; chaos/main.ts feeds them, test/unit/verify-log.test.ts tests them).
 *
 * A holder's belief runs from the moment its code acts as the holder to the earlier of its own
 * release and its signal aborting, as the worker measured them on process.hrtime.bigint() (the
 * system-wide CLOCK_MONOTONIC on Linux: one clock for all processes). The lock's promise: no
 * two beliefs of one lock overlap (a read/write lock: no writer with anyone; a semaphore of N:
 * never more than N at once). The fenced store is a second line; this is the first.
 *
 * What no lock can promise, and so is not held against it (the belief is clipped):
 * - a process that is paused (SIGSTOP) checks nothing: the beliefs it held in the session
 *   alive at the pause end at the pause (its writes are the fenced store's to refuse);
 * - a session ended from outside (another client closed it) is unknown to its holder until
 *   it next talks to a server: its beliefs in that session end when the close began;
 * - a killed process believes nothing once dead: its open beliefs end at the kill.
 */

export type BeliefMode = 'write' | 'read' | 'lease';

export interface Belief {
  /** Worker slot and process. */
  worker: number;
  pid: number;
  /** Unique per process. */
  id: number;
  path: string;
  mode: BeliefMode;
  /** The operation that took it (e.g. `decorator`, `nested`). */
  op: string;
  token: string;
  /** The session (hex) the process had when the belief started. */
  session?: string;
  /** hrtime ns. */
  start: bigint;
  /** hrtime ns; undefined while open. */
  end?: bigint;
  how?: 'released' | 'lost' | 'process ended';
  /** Set by {@link clip}: the belief counts only up to `at`. */
  clipped?: { at: bigint; why: string };
}

/** What a lock path admits at once. */
export type PathRule = { kind: 'exclusive' } | { kind: 'read-write' } | { kind: 'semaphore'; leases: number };

export interface Overlap {
  path: string;
  /** The belief that started while the others were held. */
  later: Belief;
  /** The beliefs it conflicts with. */
  earlier: Belief[];
  /** How long they overlapped (ns): from the later start to the first of their ends. */
  ns: bigint;
  what: string;
}

/** The end that counts: the earlier of its end (or `until`, when open) and its clip. */
export function effectiveEnd(belief: Belief, until: bigint): bigint {
  const end = belief.end ?? until;
  return belief.clipped && belief.clipped.at < end ? belief.clipped.at : end;
}

/** Clips `belief` at `at` (not before its start), keeping the earliest clip. */
export function clip(belief: Belief, at: bigint, why: string): void {
  const point = at < belief.start ? belief.start : at;
  if (belief.end !== undefined && belief.end <= point) return;
  if (!belief.clipped || point < belief.clipped.at) belief.clipped = { at: point, why };
}

/**
 * Every conflict between beliefs of one path, by `rules` (exclusive when a path has none).
 * Open beliefs count as held until `until`. Intervals that only touch do not overlap.
 */
export function findOverlaps(beliefs: readonly Belief[], rules: Record<string, PathRule>, until: bigint): Overlap[] {
  const byPath = new Map<string, Belief[]>();
  for (const belief of beliefs) {
    if (effectiveEnd(belief, until) <= belief.start) continue; // nothing held
    byPath.set(belief.path, [...(byPath.get(belief.path) ?? []), belief]);
  }
  const overlaps: Overlap[] = [];
  for (const [path, list] of byPath) {
    const rule = rules[path] ?? { kind: 'exclusive' };
    const ordered = list.toSorted((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
    const active: Belief[] = [];
    for (const later of ordered) {
      // Those that ended at or before this start are over.
      for (let i = active.length - 1; i >= 0; i -= 1) {
        if (effectiveEnd(active[i], until) <= later.start) active.splice(i, 1);
      }
      const conflicting = conflicts(rule, later, active);
      if (conflicting.length > 0) {
        const firstEnd = [later, ...conflicting].map((b) => effectiveEnd(b, until)).reduce((a, b) => (a < b ? a : b));
        overlaps.push({
          path,
          later,
          earlier: conflicting,
          ns: firstEnd - later.start,
          what:
            rule.kind === 'semaphore'
              ? `${active.length + 1} holders of a ${rule.leases}-lease semaphore`
              : `${later.mode} while ${conflicting.map((b) => b.mode).join(', ')} held`,
        });
      }
      active.push(later);
    }
  }
  return overlaps;
}

function conflicts(rule: PathRule, later: Belief, active: readonly Belief[]): Belief[] {
  switch (rule.kind) {
    case 'exclusive':
      return [...active];
    case 'read-write':
      return later.mode === 'read' ? active.filter((b) => b.mode !== 'read') : [...active];
    default:
      return active.length >= rule.leases ? [...active] : [];
  }
}

/** "w2 pid 123 #45 nested token ...: 12.3-45.6 s (released)", times in s since `origin`. */
export function describeBelief(belief: Belief, origin: bigint, until: bigint): string {
  const at = (ns: bigint) => (Number(ns - origin) / 1e9).toFixed(3);
  const end = effectiveEnd(belief, until);
  return (
    `w${belief.worker} pid ${belief.pid} ${belief.mode} by ${belief.op} (token ${belief.token}` +
    `${belief.session ? `, session 0x${belief.session}` : ''}): ${at(belief.start)}-${at(end)} s ` +
    `(${belief.end === undefined ? 'still open' : belief.how}${belief.clipped ? `; clipped: ${belief.clipped.why}` : ''})`
  );
}
