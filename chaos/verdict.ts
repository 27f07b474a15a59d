/**
 * The chaos run's checks and summary (chaos/main.ts calls them once the workers are gone).
 * Each check is one line `CHECK <name>: PASS|FAIL ...`; the run passes when all pass.
 */
import { verifyLog } from '../sample/verify.js';
import {
  clip,
  describeBelief,
  effectiveEnd,
  findOverlaps,
  type Belief,
  type Overlap,
  type PathRule,
} from './beliefs.js';
import type { FencedStore, Refusal } from './fenced-store.js';
import { FAULT_KINDS, type FaultInjector, type FaultKind } from './faults.js';
import { PATHS, SEMAPHORE_LEASES } from './messages.js';
import type { Slot, WorkerPool } from './slots.js';
import { say, secs, timelineOrigin } from './timeline.js';
import { COUNTER_OPS, MAY_BE_BUSY, SIDE_OPS } from './workload.js';

export interface Check {
  name: string;
  ok: boolean;
  text: string;
}

/** What each lock path admits at once. */
export const PATH_RULES: Record<string, PathRule> = {
  [PATHS.counter]: { kind: 'exclusive' },
  [PATHS.multi]: { kind: 'exclusive' },
  [PATHS.rw]: { kind: 'read-write' },
  [PATHS.semaphore]: { kind: 'semaphore', leases: SEMAPHORE_LEASES },
};

/**
 * The errors an iteration may end with under faults: timeouts, losses, outages, a connection
 * lost mid-request, the store refusing a stale token. Anything else is a finding.
 */
const EXPECTED_ERRORS =
  /^(LockTimeoutError|LockLostError\(.*\)|ZkUnavailableError|NotConnectedError|StaleTokenError|ZooKeeperError\((CONNECTION_LOSS|OPERATION_TIMEOUT|SESSION_EXPIRED|SESSION_MOVED|CLOSED)\))$/;

/** Errors the workers reported, by kind, over all slots. */
export function errorCounts(slots: readonly Slot[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const slot of slots) for (const [kind, n] of slot.errors) counts.set(kind, (counts.get(kind) ?? 0) + n);
  return counts;
}

/**
 * Clips the beliefs that no lock can keep (see beliefs.ts): those of a process SIGSTOPped in
 * the session of the pause, those in a session closed from outside, from the fault's start.
 * Returns the number clipped, by reason.
 */
export function clipBeliefs(beliefs: readonly Belief[], injector: FaultInjector): Map<string, number> {
  const clipped = new Map<string, number>();
  for (const window of injector.windows) {
    if (window.skipped || window.workerId === undefined) continue;
    if (window.kind !== 'holder-sigstop' && window.kind !== 'session-expire') continue;
    const why =
      window.kind === 'holder-sigstop'
        ? 'its process was SIGSTOPped in this session (a paused process checks nothing; the store fences it)'
        : 'this session was closed by another client (unknown to the holder until it talks to a server)';
    for (const belief of beliefs) {
      if (belief.worker !== window.workerId || belief.pid !== window.pid) continue;
      if (window.session === undefined || belief.session !== window.session) continue;
      const before = belief.clipped;
      clip(belief, window.startNs, why);
      if (belief.clipped !== before) clipped.set(window.kind, (clipped.get(window.kind) ?? 0) + 1);
    }
  }
  return clipped;
}

/** One overlap, in words, with the faults and stalls of the workers involved around then. */
function describeOverlap(overlap: Overlap, pool: WorkerPool, injector: FaultInjector, until: bigint): string[] {
  const origin = timelineOrigin().ns;
  const lines = [
    `${overlap.path}: ${overlap.what}, for ${(Number(overlap.ns) / 1e6).toFixed(1)} ms`,
    `    later:   ${describeBelief(overlap.later, origin, until)}`,
    ...overlap.earlier.map((b) => `    earlier: ${describeBelief(b, origin, until)}`),
  ];
  const from = overlap.earlier.reduce((a, b) => (b.start < a ? b.start : a), overlap.later.start);
  const to = effectiveEnd(overlap.later, until);
  const workers = new Set([overlap.later, ...overlap.earlier].map((b) => b.worker));
  const at = (ns: bigint) => (Number(ns - origin) / 1e9).toFixed(3);
  for (const window of injector.windows) {
    if (window.startNs > to || (window.endNs ?? until) < from) continue;
    if (window.workerId !== undefined && !workers.has(window.workerId)) continue;
    lines.push(
      `    fault:   ${window.kind}${window.workerId === undefined ? '' : ` of w${window.workerId}`} ${at(window.startNs)}-${window.endNs === undefined ? '...' : at(window.endNs)} s${window.skipped ? ' (skipped)' : ''}`,
    );
  }
  for (const slot of pool.slots) {
    if (!workers.has(slot.id)) continue;
    for (const inc of slot.incarnations) {
      for (const stall of inc.stalls) {
        if (stall.from > to || stall.to < from) continue;
        lines.push(
          `    stall:   w${slot.id} pid ${inc.pid} event loop stopped ${at(stall.from)}-${at(stall.to)} s (${(Number(stall.to - stall.from) / 1e6).toFixed(0)} ms)`,
        );
      }
    }
  }
  return lines;
}

export interface VerdictInput {
  pool: WorkerPool;
  store: FencedStore;
  injector: FaultInjector;
  kinds: readonly FaultKind[];
  logText: string;
  notWrittenAgain: readonly Slot[];
  orphans: { left: string[]; info?: string; memberLeft: string[]; afterMs: number };
  faultsStartedAt: number;
}

export function checksOf(input: VerdictInput): { checks: Check[]; overlaps: Overlap[]; details: string[] } {
  const beliefs = beliefChecks(input);
  const checks = [
    ...logChecks(input),
    beliefs.check,
    refusalCheck(input),
    progressCheck(input),
    workloadCheck(input.pool.slots),
    orphanCheck(input.orphans),
    ...workerChecks(input.pool),
    faultCheck(input),
  ];
  return { checks, overlaps: beliefs.overlaps, details: beliefs.details };
}

/** The store's log: counters 1..N once each, in order; tokens strictly increasing. */
function logChecks({ store, logText }: VerdictInput): Check[] {
  const verdict = verifyLog(logText, { expectedLines: store.accepted, fenced: true });
  const counterProblems = verdict.problems.filter((p) => !p.includes('fencing token'));
  return [
    {
      name: 'counters',
      ok: counterProblems.length === 0,
      text:
        `${store.accepted} accepted writes: counters 1..${store.accepted} ` +
        `(${verdict.duplicates.length} duplicates, ${verdict.missing.length} missing, ${verdict.torn} torn lines)` +
        (counterProblems.length > 0 ? `: ${counterProblems.join('; ')}` : ', each exactly once, in order'),
    },
    {
      name: 'tokens',
      ok: verdict.tokenViolations === 0,
      text: `fencing tokens of the accepted writes strictly increasing (${verdict.tokenViolations} violations)`,
    },
  ];
}

/** No two beliefs of one lock overlap (after the clips no lock can help). */
function beliefChecks({ pool, injector }: VerdictInput): { check: Check; overlaps: Overlap[]; details: string[] } {
  const until = process.hrtime.bigint();
  const clipped = clipBeliefs(pool.beliefs, injector);
  const overlaps = findOverlaps(pool.beliefs, PATH_RULES, until);
  const perPath = Object.keys(PATH_RULES)
    .map((path) => `${path} ${pool.beliefs.filter((b) => b.path === path).length}`)
    .join(', ');
  const clippedText = [...clipped].map(([kind, n]) => `${n} by a ${kind}`).join(', ') || 'none';
  const details = overlaps.slice(0, 20).flatMap((overlap) => describeOverlap(overlap, pool, injector, until));
  if (overlaps.length > 20) details.push(`... and ${overlaps.length - 20} more overlaps`);
  const check = {
    name: 'beliefs',
    ok: overlaps.length === 0 && pool.beliefs.length > 0,
    text:
      `${pool.beliefs.length} belief intervals (${perPath}), ${overlaps.length} overlapping` +
      ` (clipped, as no lock can help: ${clippedText})`,
  };
  return { check, overlaps, details };
}

/** Every refusal by the store is explained by a fault of the worker refused. */
function refusalCheck({ pool, store }: VerdictInput): Check {
  const unexplained = store.refused.filter((r) => (pool.refusalCauses.get(r) ?? 'NO').startsWith('NO'));
  return {
    name: 'refusals',
    ok: unexplained.length === 0,
    text: `${store.refused.length} refused by the store, ${unexplained.length} NOT explained by a fault of that worker`,
  };
}

/** Every worker wrote, and wrote again after the faults. */
function progressCheck({ pool, notWrittenAgain }: VerdictInput): Check {
  const { slots } = pool;
  const idle = slots.filter((slot) => slot.accepted === 0 || (slot.incarnations.at(-1)?.accepted ?? 0) === 0);
  return {
    name: 'progress',
    ok: idle.length === 0 && notWrittenAgain.length === 0,
    text:
      (notWrittenAgain.length === 0
        ? 'every worker wrote again after the faults; '
        : `NOT WRITTEN AGAIN after the faults: ${notWrittenAgain.map((slot) => `w${slot.id}`).join(', ')}; `) +
      'accepted writes per worker (per process): ' +
      slots
        .map((slot) => `w${slot.id} ${slot.accepted} (${slot.incarnations.map((inc) => inc.accepted).join('+')})`)
        .join(', ') +
      (idle.length > 0 ? `; NO PROGRESS: ${idle.map((slot) => `w${slot.id}`).join(', ')}` : ''),
  };
}

/** Every operation of the workload succeeded at least once (those that may be busy: settled at least once). */
function workloadCheck(slots: readonly Slot[]): Check {
  const ops = new Map<string, { ok: number; busy: number; error: number }>();
  for (const slot of slots) {
    for (const [op, c] of slot.ops) {
      const sum = ops.get(op) ?? { ok: 0, busy: 0, error: 0 };
      ops.set(op, { ok: sum.ok + c.ok, busy: sum.busy + c.busy, error: sum.error + c.error });
    }
  }
  const allOps = [...Object.keys(COUNTER_OPS), ...Object.keys(SIDE_OPS)];
  const neverOk = allOps.filter((op) => {
    const c = ops.get(op);
    return (c?.ok ?? 0) + (MAY_BE_BUSY.has(op) ? (c?.busy ?? 0) : 0) === 0;
  });
  const counts = (op: string) => `${op} ${ops.get(op)?.ok ?? 0}/${ops.get(op)?.busy ?? 0}/${ops.get(op)?.error ?? 0}`;
  return {
    name: 'workload',
    ok: neverOk.length === 0,
    text:
      `operations (ok/busy/error): ${allOps.map(counts).join(', ')}` +
      (neverOk.length > 0 ? `; NEVER SUCCEEDED: ${neverOk.join(', ')}` : '') +
      ` (${[...MAY_BE_BUSY].join(', ')}: busy is a lawful outcome)`,
  };
}

function orphanCheck(orphans: VerdictInput['orphans']): Check {
  const clean = orphans.left.length === 0 && orphans.memberLeft.length === 0;
  return {
    name: 'orphans',
    ok: clean,
    text: clean
      ? `no node left under the lock paths, on any member (empty ${secs(orphans.afterMs)} after the workers exited)`
      : `${orphans.left.length} nodes left ${secs(orphans.afterMs)} after the workers exited: ` +
        `${orphans.left.join(' ')} ${orphans.info ?? ''} ${orphans.memberLeft.join('; ')}`,
  };
}

/** No crash, clean stops, no tripwire, only the errors a caller must expect. */
function workerChecks(pool: WorkerPool): Check[] {
  const unclean = pool.slots.flatMap((slot) =>
    slot.incarnations
      .filter((inc) => !inc.killedOnPurpose && !inc.stoppedCleanly)
      .map((inc) => `w${slot.id} ${inc.pid}`),
  );
  const errors = errorCounts(pool.slots);
  const unexpected = [...errors.keys()].filter((kind) => !EXPECTED_ERRORS.test(kind));
  return [
    {
      name: 'workers',
      ok: pool.problems.length === 0 && unclean.length === 0,
      text:
        pool.problems.length === 0 && unclean.length === 0
          ? 'no worker process crashed; every one not killed on purpose stopped cleanly'
          : `${pool.problems.length} problems; not stopped cleanly: ${unclean.join(', ') || 'none'}`,
    },
    {
      name: 'tripwire',
      ok: pool.tripwires.length === 0,
      text:
        pool.tripwires.length === 0
          ? 'no unhandled rejection or uncaught exception in any worker'
          : `${pool.tripwires.length} in the workers: ${pool.tripwires.map((t) => t.split('\n')[0]).join(' | ')}`,
    },
    {
      name: 'errors',
      ok: unexpected.length === 0,
      text:
        unexpected.length === 0
          ? 'every error of an iteration is one a caller must expect under faults (timeouts, losses, outages, refusals)'
          : `UNEXPECTED kinds of error: ${unexpected.map((kind) => `${kind} ${errors.get(kind)}`).join(', ')}`,
    },
  ];
}

/** Every kind of fault asked for ran at least once. */
function faultCheck({ injector, kinds }: VerdictInput): Check {
  const never = injector.neverRan.filter((kind) => kinds.includes(kind));
  return {
    name: 'faults',
    ok: injector.total > 0 && never.length === 0,
    text:
      `${injector.total} faults injected, of ${kinds.length - never.length}/${kinds.length} kinds asked for` +
      (never.length > 0 ? `; NEVER RAN: ${never.join(', ')}` : ''),
  };
}

function describeRefusal(refusal: Refusal, faultsStartedAt: number, cause: string | undefined): string {
  const what =
    refusal.op === 'write'
      ? `write of ${refusal.counter} by worker ${refusal.workerId}`
      : `read by worker ${refusal.workerId}`;
  return (
    `${what} (pid ${refusal.pid}) at ${secs(refusal.at - faultsStartedAt)} into the faults, token ${refusal.token}: ` +
    `${refusal.reason} [${cause ?? '?'}]`
  );
}

/** The summary after the run: faults, pauses, writes, refusals, errors, overlaps, the checks, the result. */
export function printSummary(
  input: VerdictInput & { seed: number; workers: number; faultsMs: number; runMs: number; mutant?: string },
  result: { checks: Check[]; details: string[] },
): boolean {
  const { pool, store, injector } = input;
  say('\n=== chaos summary ===');
  say(
    `seed ${input.seed}, ${input.workers} workers, faults for ${secs(input.faultsMs)}, run time ${secs(input.runMs)}` +
      (input.mutant ? `, MUTANT ${input.mutant} in every worker` : ''),
  );
  const kinds = FAULT_KINDS.filter((kind) => injector.injected[kind] > 0).length;
  say(`faults injected: ${injector.total} of ${kinds} kinds`);
  for (const kind of FAULT_KINDS) say(`  ${kind.padEnd(17)} ${String(injector.injected[kind]).padStart(4)}`);
  if (injector.skipped.length > 0) {
    const byKind = new Map<string, number>();
    for (const s of injector.skipped) byKind.set(s.kind, (byKind.get(s.kind) ?? 0) + 1);
    say(
      `  skipped: ${[...byKind].map(([kind, n]) => `${kind} ${n}`).join(', ')} (drawn, but no target at that moment; dealt again)`,
    );
  }
  if (pool.pauses.length > 0) say(`  what became of the SIGSTOPped holders' writes: ${pauseOutcomes(pool)}`);
  say(`accepted writes: ${store.accepted}`);
  const refusedWrites = store.refused.filter((r) => r.op === 'write');
  const refusedReads = store.refused.filter((r) => r.op === 'read');
  const show = (refusal: Refusal) =>
    say(`  ${describeRefusal(refusal, input.faultsStartedAt, pool.refusalCauses.get(refusal))}`);
  say(`rejected stale writes: ${refusedWrites.length}`);
  refusedWrites.slice(0, 50).forEach(show);
  if (refusedWrites.length > 50) say(`  ... and ${refusedWrites.length - 50} more`);
  say(`rejected stale reads: ${refusedReads.length}`);
  refusedReads.slice(0, 20).forEach(show);
  const errors = [...errorCounts(pool.slots)].toSorted((a, b) => b[1] - a[1]);
  say(
    `worker errors (each iteration that failed, survived): ${errors.map(([kind, n]) => `${kind} ${n}`).join(', ') || 'none'}`,
  );
  say(`worker processes: ${pool.slots.map((slot) => `w${slot.id} ${slot.incarnations.length}`).join(', ')}`);
  const stalls = pool.slots.flatMap((slot) => slot.incarnations.flatMap((inc) => inc.stalls));
  if (stalls.length > 0) {
    const longest = stalls.reduce((a, s) => (s.to - s.from > a ? s.to - s.from : a), 0n);
    say(
      `event-loop stalls of 150 ms or more in the workers: ${stalls.length}, longest ${Number(longest / 1_000_000n)} ms`,
    );
  }
  if (result.details.length > 0) {
    say('OVERLAPPING BELIEFS (times in s since the start of the run):');
    for (const line of result.details) say(`  ${line}`);
  }
  for (const problem of pool.problems) say(`problem: ${problem}`);
  for (const tripwire of pool.tripwires) say(`tripwire: ${tripwire}`);
  for (const check of result.checks) say(`CHECK ${check.name}: ${check.ok ? 'PASS' : 'FAIL'} ${check.text}`);
  const ok = result.checks.every((check) => check.ok);
  say(`RESULT: ${ok ? 'PASS' : 'FAIL'}`);
  return ok;
}

function pauseOutcomes(pool: WorkerPool): string {
  const outcomes = new Map<string, number>();
  for (const pause of pool.pauses) {
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
  return [...outcomes].map(([outcome, n]) => `${outcome} ${n}`).join(', ');
}
