/**
 * The verdict of `npm run sample -- --jobs` (pure): no tick ran twice, fencing tokens strictly
 * increase, and no two @LeaderElection leaders believed they led at the same time.
 */

/** One run of the @Cron job. */
export interface TickRun {
  instance: number;
  /** The second the tick fired (Unix time): the tick's identity, the same on every instance. */
  second: number;
  token: bigint;
}

/** One leadership term of the @LeaderElection provider, on the machine's monotonic clock (ns). */
export interface LeaderTerm {
  instance: number;
  token: bigint;
  /** onLeadershipAcquired was called. */
  from: bigint;
  /** Its signal aborted (or, for a killed instance, its process was seen gone); undefined: still leading. */
  to: bigint | undefined;
}

export interface JobsVerdict {
  ok: boolean;
  problems: string[];
}

/** `12:34:56`, the local time of a Unix second. */
export function clockTime(second: number): string {
  return new Date(second * 1000).toTimeString().slice(0, 8);
}

/**
 * Each tick ran at most once anywhere; in the order of the ticks, tokens strictly increase; and
 * the job is sticky: an instance that handed it over never runs it again.
 */
export function verifyTickRuns(runs: TickRun[]): string[] {
  const problems: string[] = [];
  const bySecond = new Map<number, TickRun[]>();
  for (const run of runs) bySecond.set(run.second, [...(bySecond.get(run.second) ?? []), run]);
  for (const [second, same] of bySecond) {
    if (same.length > 1) {
      problems.push(
        `the tick of ${clockTime(second)} ran ${same.length} times (instances ${same.map((r) => r.instance).join(', ')})`,
      );
    }
  }
  const ordered = runs.toSorted((a, b) => a.second - b.second);
  const handedOver = new Set<number>();
  for (let i = 1; i < ordered.length; i += 1) {
    const [before, run] = [ordered[i - 1], ordered[i]];
    if (run.instance !== before.instance) handedOver.add(before.instance);
    if (handedOver.has(run.instance)) {
      problems.push(
        `instance ${run.instance} ran the tick of ${clockTime(run.second)} after it had handed the job over`,
      );
    }
    if (run.token <= before.token) {
      problems.push(
        `the token of the tick of ${clockTime(run.second)} on instance ${run.instance} (${run.token}) is not above ` +
          `the one of ${clockTime(before.second)} on instance ${before.instance} (${before.token})`,
      );
    }
  }
  return problems;
}

/** Leaders' terms never overlap (each began after the one before ended); their tokens strictly increase. */
export function verifyLeaderTerms(terms: LeaderTerm[]): string[] {
  const problems: string[] = [];
  const ordered = terms.toSorted((a, b) => (a.from < b.from ? -1 : a.from > b.from ? 1 : 0));
  for (let i = 1; i < ordered.length; i += 1) {
    const [before, term] = [ordered[i - 1], ordered[i]];
    if (before.to === undefined || before.to >= term.from) {
      const overlap = before.to === undefined ? 'still leading' : `${Number(before.to - term.from) / 1e6} ms more`;
      problems.push(
        `two leaders at once: instance ${term.instance} began leading while instance ${before.instance} believed it led (${overlap})`,
      );
    }
    if (term.token <= before.token) {
      problems.push(
        `leader tokens not increasing: instance ${term.instance} got ${term.token} after instance ${before.instance}'s ${before.token}`,
      );
    }
  }
  return problems;
}

export function verifyJobs(runs: TickRun[], terms: LeaderTerm[]): JobsVerdict {
  const problems = [...verifyTickRuns(runs), ...verifyLeaderTerms(terms)];
  return { ok: problems.length === 0, problems };
}
