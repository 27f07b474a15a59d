/**
 * The showcase sample end to end, as a user runs it: `bash scripts/sample.sh` (which builds
 * sample/ and runs it) with worker processes against a real ZooKeeper started here.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startZooKeeper, type ZkServer } from '../support/index.js';

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** Build (TS7: seconds) + start of the worker processes + the run, on a busy 2-core machine. */
const RUN_TIMEOUT = 150_000;

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  output: string;
}

let zk: ZkServer;
let tmp: string;

/** Runs the sample script to its end (or kills its whole process group at the deadline). */
function runSample(args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['scripts/sample.sh', ...args], {
      cwd: REPO_ROOT,
      env: { ...process.env, ZK_CONNECT: zk.connectString },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true, // its own process group: the deadline kills the workers too
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const deadline = setTimeout(() => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
      reject(new Error(`sample.sh ${args.join(' ')} still running after ${RUN_TIMEOUT} ms:\n${output}`));
    }, RUN_TIMEOUT - 5_000);
    child.on('error', (error) => {
      clearTimeout(deadline);
      reject(error);
    });
    child.on('close', (code, signal) => {
      clearTimeout(deadline);
      resolve({ code, signal, output });
    });
  });
}

beforeAll(async () => {
  // ZooKeeper's default tick (session timeouts up to 40 s): a busy machine must not expire sessions.
  zk = await startZooKeeper({ tickTime: 2_000 });
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'zk-lock-sample-'));
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
