/**
 * The sample's HTTP mode end to end, as a user runs it: `bash scripts/sample.sh --http` (which
 * builds sample/ and runs it): two Nest HTTP app processes against a real ZooKeeper started here,
 * requests over real HTTP, the log verified.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runScript } from '../fixtures/run-script.js';
import { startZooKeeper, type ZkServer } from '../support/index.js';

/** Build (TS7: seconds) + start of the two app processes + the requests, on a busy 2-core machine. */
const RUN_TIMEOUT = 150_000;

/** The sample script to its end, against the test's ZooKeeper (its whole process group killed at the deadline). */
const runSample = (args: string[]) =>
  runScript('scripts/sample.sh', args, { env: { ZK_CONNECT: zk.connectString }, timeoutMs: RUN_TIMEOUT - 5_000 });

let zk: ZkServer;
let tmp: string;

// The same runner as test/e2e/sample.test.ts (a shared helper would live in test/support/).

beforeAll(async () => {
  // ZooKeeper's default tick (session timeouts up to 40 s): a busy machine must not expire sessions.
  zk = await startZooKeeper({ tickTime: 2_000 });
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nestjs-zk-lock-sample-http-'));
});

afterAll(async () => {
  await zk?.dispose();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

describe('sample --http (scripts/sample.sh)', () => {
  it(
    'with the lock: 60 requests over two app instances give 60 verified lines and exit code 0',
    async () => {
      const log = path.join(tmp, 'locked.log');
      const run = await runSample(['--http', '--requests', '60', '--concurrency', '8', '--log', log]);
      expect(run).toMatchObject({ code: 0 }); // shows the output when not
      expect(run.output).toMatch(
        /PASS: 60 lines verified .*: counters 1\.\.60 each exactly once, in order; fencing tokens strictly increasing/,
      );
      expect(run.output).toMatch(/60 requests \(30 \+ 30 per instance, 8 at a time\) in [\d.]+ s: [\d.]+ requests\/s/);
      expect(run.output).toMatch(/latency: p50 [\d.]+ ms, p99 [\d.]+ ms/);
      expect(run.output).toMatch(/app instances stopped gracefully/);
      const lines = fs.readFileSync(log, 'utf8').trimEnd().split('\n');
      expect(lines.map((line) => Number(line.split(' ')[0]))).toEqual(Array.from({ length: 60 }, (_, i) => i + 1));
      // Both instances (two processes) wrote, each under the lock.
      expect(new Set(lines.map((line) => /worker=(\d+)/.exec(line)?.[1]))).toEqual(new Set(['1', '2']));
      expect(new Set(lines.map((line) => /pid=(\d+)/.exec(line)?.[1])).size).toBe(2);
      expect(lines.every((line) => /token=\d+$/.test(line))).toBe(true);
    },
    RUN_TIMEOUT,
  );

  it(
    'without the lock: the verifier finds duplicate or missing counters and the exit code is 1',
    async () => {
      const log = path.join(tmp, 'unlocked.log');
      const run = await runSample(['--http', '--no-lock', '--requests', '60', '--concurrency', '8', '--log', log]);
      expect(run).toMatchObject({ code: 1 });
      expect(run.output).toMatch(/FAIL: .* does not verify/);
      expect(run.output).toMatch(/\d+ (duplicate|missing) counters?/);
      expect(run.output).toMatch(/exactly the corruption the distributed lock prevents/);
      // Every request was answered: the corruption is in the file, not in failed requests.
      expect(run.output).toMatch(/\(60 answered\)/);
    },
    RUN_TIMEOUT,
  );

  it(
    'rejects options of the other mode (exit code 2)',
    async () => {
      const run = await runSample(['--http', '--workers', '4']);
      expect(run).toMatchObject({ code: 2 });
      expect(run.output).toMatch(/--workers does not apply with --http/);
    },
    RUN_TIMEOUT,
  );
});
