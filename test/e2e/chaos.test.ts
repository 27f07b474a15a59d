/**
 * The chaos run end to end, as a user runs it: `bash scripts/chaos.sh` (which builds chaos/ and
 * runs it), with a fixed seed. On the real lock, 30 s of every kind of fault (members and the
 * leader killed, workers cut off, partitioned, expired, SIGSTOPped while holding the lock,
 * killed, cut right after a notification, cut at a ping) pass every check. With the
 * no-exclusion mutant (test/mutants/port-mutants.ts) in every worker, the run fails: the
 * harness can tell a broken lock from a working one. Each run starts its own 3-server
 * ensemble; its logs go to a temp dir. See chaos/README.md.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runScript } from '../fixtures/run-script.js';

/** Build + ensemble + workers + the faults + recovery and checks, on a busy 2-core machine. */
const RUN_TIMEOUT = 180_000;
const SEED = '20260101';

/** Every check the run makes, in the order of its summary. */
const CHECKS = [
  'counters',
  'tokens',
  'beliefs',
  'refusals',
  'progress',
  'workload',
  'orphans',
  'workers',
  'tripwire',
  'errors',
  'faults',
];

let tmp: string;

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nestjs-zk-lock-chaos-'));
});

afterAll(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

function chaos(args: string[], log: string) {
  return runScript('scripts/chaos.sh', [...args, '--log', log], { timeoutMs: RUN_TIMEOUT - 10_000 });
}

/** The summary, in the test's output (the whole output is in the failure message of toMatchObject). */
function summaryOf(output: string): string {
  const summary = output.slice(output.indexOf('=== chaos summary ==='));
  console.log(summary);
  return summary;
}

describe('chaos run (scripts/chaos.sh)', () => {
  it(
    'the real lock: 30 s of every kind of fault, no overlapping beliefs, every check passes, exit code 0',
    async () => {
      const log = path.join(tmp, 'lock.log');
      const run = await chaos(['--seconds', '30', '--seed', SEED], log);
      const summary = summaryOf(run.output);
      expect(run).toMatchObject({ code: 0 }); // shows the output when not
      expect(run.output).toContain(`seed ${SEED}`);
      for (const check of CHECKS) expect(summary).toMatch(new RegExp(`^CHECK ${check}: PASS`, 'm'));
      expect(summary).toMatch(
        /CHECK counters: PASS \d+ accepted writes: counters 1\.\.\d+ \(0 duplicates, 0 missing, 0 torn lines\)/,
      );
      expect(summary).toMatch(/CHECK beliefs: PASS \d+ belief intervals .*, 0 overlapping/);
      expect(summary).toMatch(/CHECK refusals: PASS \d+ refused by the store, 0 NOT explained/);
      expect(summary).toMatch(/CHECK faults: PASS \d+ faults injected, of 9\/9 kinds asked for/);
      expect(summary).toMatch(/RESULT: PASS/);
      const beliefs = Number(/CHECK beliefs: PASS (\d+) belief intervals/.exec(summary)?.[1]);
      expect(beliefs).toBeGreaterThan(100);

      // The log itself, independently of the run's own verdict.
      const accepted = Number(/accepted writes: (\d+)/.exec(summary)?.[1]);
      expect(accepted).toBeGreaterThan(0);
      const lines = fs.readFileSync(log, 'utf8').trimEnd().split('\n');
      expect(lines).toHaveLength(accepted);
      expect(lines.map((line) => Number(line.split(' ')[0]))).toEqual(
        Array.from({ length: accepted }, (_, i) => i + 1),
      );
      const tokens = lines.map((line) => BigInt(/token=(\d+)/.exec(line)![1]));
      expect(tokens.every((token, i) => i === 0 || token > tokens[i - 1])).toBe(true);
    },
    RUN_TIMEOUT,
  );

  it(
    'the no-exclusion mutant in every worker: overlapping beliefs and unexplained refusals fail the run, exit code 1',
    async () => {
      const log = path.join(tmp, 'mutant.log');
      const run = await chaos(
        ['--seconds', '10', '--seed', SEED, '--only', 'worker-cut,worker-kill', '--mutant', 'no-exclusion'],
        log,
      );
      const summary = summaryOf(run.output);
      expect(run).toMatchObject({ code: 1 });
      expect(run.output).toMatch(/MUTANT no-exclusion in every worker .*: this run must FAIL/);
      expect(summary).toMatch(/CHECK beliefs: FAIL \d+ belief intervals .*, [1-9]\d* overlapping/);
      expect(summary).toMatch(/OVERLAPPING BELIEFS/);
      expect(summary).toMatch(/CHECK refusals: FAIL \d+ refused by the store, [1-9]\d* NOT explained/);
      // The fenced store alone would not have told: its log is still 1..N with growing tokens.
      expect(summary).toMatch(/CHECK counters: PASS/);
      expect(summary).toMatch(/RESULT: FAIL/);
    },
    RUN_TIMEOUT,
  );
});
