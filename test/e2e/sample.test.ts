/**
 * The showcase sample end to end, as a user runs it: `bash scripts/sample.sh` (which builds
 * sample/ and runs it) with worker processes against a real ZooKeeper started here.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runScript } from '../fixtures/run-script.js';
import { startZooKeeper, type ZkServer } from '../support/index.js';

/** Build (TS7: seconds) + start of the worker processes + the run, on a busy 2-core machine. */
const RUN_TIMEOUT = 150_000;

/** The sample script to its end, against the test's ZooKeeper (its whole process group killed at the deadline). */
const runSample = (args: string[]) =>
  runScript('scripts/sample.sh', args, { env: { ZK_CONNECT: zk.connectString }, timeoutMs: RUN_TIMEOUT - 5_000 });

let zk: ZkServer;
let tmp: string;

beforeAll(async () => {
  // ZooKeeper's default tick (session timeouts up to 40 s): a busy machine must not expire sessions.
  zk = await startZooKeeper({ tickTime: 2_000 });
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nestjs-zk-lock-sample-'));
});

afterAll(async () => {
  await zk?.dispose();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

describe('sample (scripts/sample.sh)', () => {
  it(
    'with the lock: 4 workers x 25 lines give 100 verified lines and exit code 0',
    async () => {
      const log = path.join(tmp, 'locked.log');
      const run = await runSample(['--workers', '4', '--lines', '25', '--log', log]);
      expect(run).toMatchObject({ code: 0 }); // shows the output when not
      expect(run.output).toMatch(/PASS: 100 lines verified/);
      expect(run.output).toMatch(/lock wait: p50 [\d.]+ ms, p99 [\d.]+ ms/);
      expect(run.output).toMatch(/[\d.]+ lock acquisitions\/s/);
      const lines = fs.readFileSync(log, 'utf8').trimEnd().split('\n');
      expect(lines).toHaveLength(100);
      expect(lines.map((line) => Number(line.split(' ')[0]))).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
      expect(new Set(lines.map((line) => /worker=(\d+)/.exec(line)?.[1]))).toEqual(new Set(['1', '2', '3', '4']));
    },
    RUN_TIMEOUT,
  );

  it(
    'without the lock: the verifier finds duplicate or missing counters and the exit code is 1',
    async () => {
      const run = await runSample([
        '--no-lock',
        '--workers',
        '4',
        '--lines',
        '50',
        '--log',
        path.join(tmp, 'unlocked.log'),
      ]);
      expect(run).toMatchObject({ code: 1 });
      expect(run.output).toMatch(/FAIL: .* does not verify/);
      expect(run.output).toMatch(/\d+ (duplicate|missing) counters?/);
      expect(run.output).toMatch(/exactly the corruption the distributed lock prevents/);
    },
    RUN_TIMEOUT,
  );

  it(
    'rejects bad arguments naming the value and the rule (exit code 2)',
    async () => {
      const run = await runSample(['--workers', '0']);
      expect(run).toMatchObject({ code: 2 });
      expect(run.output).toMatch(/--workers "0": must be a whole number from 1 to 200/);
    },
    RUN_TIMEOUT,
  );
});
