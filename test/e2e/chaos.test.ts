/**
 * The chaos run end to end, as a user runs it: `bash scripts/chaos.sh` (which builds chaos/ and
 * runs it) for 60 s of faults with a fixed seed: members and the leader killed, workers cut off,
 * partitioned, expired, SIGSTOPped while holding the lock, killed. It starts its own 3-server
 * ensemble; its log goes to a temp dir. See chaos/README.md.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runScript } from '../fixtures/run-script.js';

/** Build + ensemble + workers + 60 s of faults + recovery and checks, on a busy 2-core machine. */
const RUN_TIMEOUT = 240_000;
const SEED = '20260101';

let tmp: string;

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'zk-lock-chaos-'));
});

afterAll(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

describe('chaos run (scripts/chaos.sh)', () => {
  it(
    '60 s of faults: no duplicate or missing counter, tokens strictly increasing, faults of 4+ kinds, exit code 0',
    async () => {
      const log = path.join(tmp, 'lock.log');
      const run = await runScript('scripts/chaos.sh', ['--seconds', '60', '--seed', SEED, '--log', log], {
        timeoutMs: RUN_TIMEOUT - 10_000,
      });
      // The summary, in the test's output (the whole output when it failed, below).
      const summary = run.output.slice(run.output.indexOf('=== chaos summary ==='));
      console.log(summary);
      expect(run).toMatchObject({ code: 0 }); // shows the output when not
      expect(run.output).toContain(`seed ${SEED}`);
      expect(run.output).toMatch(
        /CHECK counters: PASS \d+ accepted writes: counters 1\.\.\d+ \(0 duplicates, 0 missing, 0 torn lines\)/,
      );
      expect(run.output).toMatch(/CHECK tokens: PASS .*\(0 violations\)/);
      expect(run.output).toMatch(/CHECK progress: PASS every worker wrote again after the faults/);
      expect(run.output).toMatch(/CHECK orphans: PASS/);
      expect(run.output).toMatch(/RESULT: PASS/);

      // The summary's fault table: "  <kind>   <count>" per kind.
      const kinds = [...summary.matchAll(/^ {2}([a-z-]+) +(\d+)$/gm)].filter(([, , count]) => Number(count) > 0);
      expect(
        kinds.length,
        `fault kinds injected: ${kinds.map(([line]) => line.trim()).join(', ')}`,
      ).toBeGreaterThanOrEqual(4);
      const accepted = Number(/accepted writes: (\d+)/.exec(run.output)?.[1]);
      expect(accepted).toBeGreaterThan(0);

      // The log itself, independently of the run's own verdict.
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
});
