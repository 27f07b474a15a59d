/**
 * The benchmark end to end, tiny: `bash scripts/bench.sh` (which builds bench/ and runs it)
 * against a ZooKeeper started here. Checks what the output is made of (the field names docs/benchmarks.md describes
 * plus requests_per_op), mutual exclusion and the request count of an uncontended cycle; never
 * times (timing targets live in the benchmark, not in tests).
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KindsLine } from '../../bench/kinds.js';
import type { LeaderLine } from '../../bench/leader-lines.js';
import { failures } from '../../bench/report.js';
import { startZooKeeper, type ZkServer } from '../support/index.js';

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** Build (TS7: seconds) + up to five workloads with their 2 s warm-ups, on a busy 2-core machine. */
const RUN_TIMEOUT = 120_000;

/** The fields per workload that docs/benchmarks.md describes, plus requests_per_op on every one. */
const FIELDS: Record<string, string[]> = {
  floor: ['workload', 'cycles', 'p50_us', 'p99_us', 'per_s', 'requests_per_op'],
  w1: ['workload', 'cycles', 'p50_us', 'p99_us', 'per_s', 'requests_per_op'],
  w2: [
    'workload',
    'clients',
    'acquisitions',
    'per_s',
    'wait_p50_us',
    'wait_p99_us',
    'overlaps',
    'watch_events_per_acq',
    'requests_per_op',
  ],
  mem: [
    'workload',
    'cycles',
    'heap_start_bytes',
    'heap_end_bytes',
    'server_watches_after',
    'leftover_nodes',
    'requests_per_op',
  ],
  // The lock kinds.
  rw: [
    'workload',
    'clients',
    'acquisitions',
    'reads',
    'writes',
    'per_s',
    'wait_p50_us',
    'wait_p99_us',
    'overlaps',
    'max_readers_inside',
    'watch_events_per_acq',
    'wakeups_per_waiter_woken',
    'requests_per_op',
  ],
  sem: [
    'workload',
    'clients',
    'leases',
    'hold_ms',
    'acquisitions',
    'per_s',
    'wait_p50_us',
    'wait_p99_us',
    'overlaps',
    'max_inside',
    'watch_events_per_acq',
    'requests_per_op',
  ],
  multi: [
    'workload',
    'clients',
    'paths',
    'acquisitions',
    'per_s',
    'wait_p50_us',
    'wait_p99_us',
    'overlaps',
    'deadlocks',
    'watch_events_per_acq',
    'requests_per_op',
  ],
  // Scheduled jobs and leader elections: one line per point.
  'leader clean': [
    'workload',
    'point',
    'instances',
    'handovers',
    'p50_ms',
    'p99_ms',
    'max_ms',
    'session_timeout_ms',
    'ttl_lease_bound_ms',
    'overlaps',
    'requests_per_op',
  ],
  'leader crash': [
    'workload',
    'point',
    'instances',
    'handovers',
    'p50_ms',
    'p99_ms',
    'max_ms',
    'session_timeout_ms',
    'p50_ratio',
    'max_ratio',
    'ttl_lease_bound_ms',
    'overlaps',
    'requests_per_op',
  ],
  'leader skip': ['workload', 'point', 'instances', 'skipped_ticks', 'runs', 'requests_per_op'],
};

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

let zk: ZkServer;
let tmp: string;

/** Runs the bench script to its end (or kills its process group at the deadline). */
function runBench(args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['scripts/bench.sh', ...args], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true, // its own process group: the deadline kills node too
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const deadline = setTimeout(() => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
      reject(new Error(`bench.sh ${args.join(' ')} still running after ${RUN_TIMEOUT} ms:\n${stderr}`));
    }, RUN_TIMEOUT - 5_000);
    child.on('error', (error) => {
      clearTimeout(deadline);
      reject(error);
    });
    child.on('close', (code) => {
      clearTimeout(deadline);
      resolve({ code, stdout, stderr });
    });
  });
}

beforeAll(async () => {
  // ZooKeeper's default tick, as the benchmark's own server: a busy machine must not expire sessions.
  zk = await startZooKeeper({ tickTime: 2_000 });
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nestjs-zk-lock-bench-'));
});

afterAll(async () => {
  await zk?.dispose();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

describe('benchmark (scripts/bench.sh)', () => {
  it(
    'prints one JSON line per workload point with exactly the documented fields, no overlaps, 3 requests per w1 cycle',
    async () => {
      const jsonFile = path.join(tmp, 'out.jsonl');
      const svgFile = path.join(tmp, 'chart.svg');
      const run = await runBench([
        '--connect',
        zk.connectString,
        '--workload',
        'floor,w1,nest,idle,w2,w2c,mem',
        '--clients',
        '2',
        '--seconds',
        '1',
        '--cycles',
        '50',
        '--mem-cycles',
        '200',
        '--json',
        jsonFile,
        '--svg',
        svgFile,
      ]);
      expect(run).toMatchObject({ code: 0 }); // shows the output when not

      const text = run.stdout.trimEnd().split('\n');
      const lines = text.map((line) => JSON.parse(line) as Record<string, unknown>);
      expect(lines.map((line) => line['workload'])).toEqual(['floor', 'w1', 'nest', 'idle', 'w2', 'w2c', 'mem']);
      expect(lines.map((line) => Object.keys(line))).toEqual([
        FIELDS.floor,
        FIELDS.w1,
        FIELDS.w1,
        FIELDS.w1,
        FIELDS.w2,
        FIELDS.w2,
        FIELDS.mem,
      ]);
      const notNumbers = lines.flatMap((line) =>
        Object.entries(line)
          .filter(([key, value]) => key !== 'workload' && !Number.isFinite(value))
          .map(([key, value]) => `${String(line['workload'])}.${key}: ${String(value)}`),
      );
      expect(notNumbers).toEqual([]);
      const [floor, w1, nest, idle, w2, w2c, mem] = lines;
      expect(floor).toMatchObject({ cycles: 50 });
      expect(w1).toMatchObject({ cycles: 50 });
      expect(w1['requests_per_op']).toBeGreaterThanOrEqual(3);
      expect(w1['requests_per_op']).toBeLessThanOrEqual(3.2);
      expect(nest).toMatchObject({ cycles: 50 });
      expect(nest['requests_per_op']).toBeGreaterThanOrEqual(3); // the decorator adds no request
      expect(nest['requests_per_op']).toBeLessThanOrEqual(3.2);
      expect(idle).toMatchObject({ workload: 'idle', cycles: 50 });
      expect(idle['requests_per_op']).toBeGreaterThanOrEqual(3);
      expect(w2).toMatchObject({ clients: 2, overlaps: 0 });
      expect(w2c).toMatchObject({ workload: 'w2c', clients: 2, overlaps: 0 });
      expect(w2['acquisitions']).toBeGreaterThan(0);
      expect(mem).toMatchObject({ cycles: 200, leftover_nodes: 0, server_watches_after: 0 });

      // --json writes the same lines; the table, ratios and chart go elsewhere.
      expect(fs.readFileSync(jsonFile, 'utf8').trimEnd().split('\n')).toEqual(text);
      expect(run.stderr).toMatch(/w1\.p50_us \/ floor\.p50_us\s+\d/);
      expect(run.stderr).toMatch(/nest\.p50_us \/ w1\.p50_us\s+\d/);
      expect(fs.readFileSync(svgFile, 'utf8')).toMatch(/^<svg [^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
    },
    RUN_TIMEOUT,
  );

  it(
    'w3 over many keys: the server reclaims every lock directory (containers), none is left',
    async () => {
      const run = await runBench([
        '--connect',
        zk.connectString,
        '--workload',
        'w3',
        '--clients',
        '2',
        '--keys',
        '40',
        '--seconds',
        '1',
        '--no-svg',
      ]);
      expect(run).toMatchObject({ code: 0 }); // shows the output when not
      const lines = run.stdout
        .trimEnd()
        .split('\n')
        .map((line) => JSON.parse(line) as Record<string, unknown>);
      expect(lines.at(-1)).toMatchObject({ workload: 'w3', keys: 40, leftover_dirs: 0 });
      expect(lines.at(-1)?.['reclaim_ms']).toBeLessThan(30_000);
      expect(run.stderr).toMatch(/every lock directory reclaimed by the server within \d+ ms/);
    },
    RUN_TIMEOUT,
  );

  it(
    'rw, sem and multi: their fields, no overlaps, readers together, exactly 3 semaphore holders at most, no deadlock',
    async () => {
      const run = await runBench([
        '--connect',
        zk.connectString,
        '--workload',
        'rw,sem,multi',
        '--seconds',
        '1',
        '--no-svg',
      ]);
      expect(run).toMatchObject({ code: 0 }); // shows the output when not
      expect(run.stderr).not.toMatch(/FAIL/);

      const lines = run.stdout
        .trimEnd()
        .split('\n')
        .map((line) => JSON.parse(line) as Record<string, unknown>);
      expect(lines.map((line) => line['workload'])).toEqual(['rw', 'sem', 'multi']);
      expect(lines.map((line) => Object.keys(line))).toEqual([FIELDS.rw, FIELDS.sem, FIELDS.multi]);
      const notNumbers = lines.flatMap((line) =>
        Object.entries(line)
          .filter(([key, value]) => key !== 'workload' && !Number.isFinite(value))
          .map(([key, value]) => `${String(line['workload'])}.${key}: ${String(value)}`),
      );
      expect(notNumbers).toEqual([]);
      const [rw, sem, multi] = lines;
      expect(rw).toMatchObject({ clients: 10, overlaps: 0 });
      expect(rw['max_readers_inside']).toBeGreaterThanOrEqual(2);
      expect(rw['reads']).toBeGreaterThan(0);
      expect(rw['writes']).toBeGreaterThan(0);
      expect(Number(rw['reads']) + Number(rw['writes'])).toBe(rw['acquisitions']);
      expect(sem).toMatchObject({ clients: 10, leases: 3, overlaps: 0, max_inside: 3 });
      expect(sem['acquisitions']).toBeGreaterThan(0);
      expect(multi).toMatchObject({ clients: 4, paths: 4, overlaps: 0, deadlocks: 0 });
      expect(multi['acquisitions']).toBeGreaterThan(0);
    },
    RUN_TIMEOUT,
  );

  it(
    'leader: its fields, one line per point, no two leaders at once, no run and no request for a skipped tick, the TTL comparison',
    async () => {
      const svgFile = path.join(tmp, 'leader.svg');
      const run = await runBench([
        '--connect',
        zk.connectString,
        '--workload',
        'leader',
        '--handovers',
        '3',
        '--crashes',
        '1',
        '--svg',
        svgFile,
      ]);
      expect(run).toMatchObject({ code: 0 }); // shows the output when not
      expect(run.stderr).not.toMatch(/FAIL/);
      const lines = run.stdout
        .trimEnd()
        .split('\n')
        .map((line) => JSON.parse(line) as Record<string, unknown>);
      expect(lines.map((line) => `${String(line['workload'])} ${String(line['point'])}`)).toEqual([
        'leader clean',
        'leader crash',
        'leader skip',
      ]);
      expect(lines.map((line) => Object.keys(line))).toEqual([
        FIELDS['leader clean'],
        FIELDS['leader crash'],
        FIELDS['leader skip'],
      ]);
      const notNumbers = lines.flatMap((line) =>
        Object.entries(line)
          .filter(([key, value]) => key !== 'workload' && key !== 'point' && !Number.isFinite(value))
          .map(([key, value]) => `${String(line['point'])}.${key}: ${String(value)}`),
      );
      expect(notNumbers).toEqual([]);
      const [clean, crash, skip] = lines;
      // The server grants the 4 s asked for (tickTime 2000); the TTL lease's bounds are computed from it.
      expect(clean).toMatchObject({ instances: 3, handovers: 3, overlaps: 0, session_timeout_ms: 4000 });
      expect(clean['ttl_lease_bound_ms']).toBe(1333.3);
      expect(crash).toMatchObject({ instances: 3, handovers: 1, overlaps: 0, session_timeout_ms: 4000 });
      expect(crash['ttl_lease_bound_ms']).toBe(5333.3);
      expect(crash['max_ratio']).toBe(Math.round((Number(crash['max_ms']) / 4000) * 1000) / 1000);
      expect(skip).toMatchObject({ instances: 3, skipped_ticks: 1000, runs: 0, requests_per_op: 0 });
      expect(run.stderr).toMatch(/Leader handover against a TTL lease of the same settings \(computed, not built/);
      expect(run.stderr).toMatch(/leader requests per skipped tick\s+0 /);
      expect(fs.readFileSync(svgFile, 'utf8')).toMatch(/Leader handover vs a TTL lease/);
    },
    RUN_TIMEOUT,
  );

  it('fails the run (exit code 1) on two leaders at once, or a skipped tick that ran or made a request', () => {
    const clean: LeaderLine = {
      workload: 'leader',
      point: 'clean',
      instances: 3,
      handovers: 3,
      p50_ms: 3,
      p99_ms: 7,
      max_ms: 7,
      session_timeout_ms: 4000,
      ttl_lease_bound_ms: 1333.3,
      overlaps: 0,
      requests_per_op: 4,
    };
    const skip: LeaderLine = {
      workload: 'leader',
      point: 'skip',
      instances: 3,
      skipped_ticks: 1000,
      runs: 0,
      requests_per_op: 0,
    };
    expect(failures([clean, skip])).toEqual([]);
    expect(failures([{ ...clean, overlaps: 1 }])).toEqual(['leader: 1 clean handover(s) with two leaders at once']);
    expect(failures([{ ...skip, runs: 2, requests_per_op: 0.002 }])).toEqual([
      'leader: 2 run(s) on instances that do not hold the job',
      'leader: 0.002 requests per skipped tick (must be 0)',
    ]);
  });

  it('fails the run (exit code 1) on each broken invariant of the lock kinds', () => {
    const rw: KindsLine = {
      workload: 'rw',
      clients: 10,
      acquisitions: 10,
      reads: 8,
      writes: 2,
      per_s: 1,
      wait_p50_us: 1,
      wait_p99_us: 1,
      overlaps: 0,
      max_readers_inside: 2,
      watch_events_per_acq: 1,
      wakeups_per_waiter_woken: 1,
      requests_per_op: 5,
    };
    const sem: KindsLine = {
      workload: 'sem',
      clients: 10,
      leases: 3,
      hold_ms: 10,
      acquisitions: 10,
      per_s: 1,
      wait_p50_us: 1,
      wait_p99_us: 1,
      overlaps: 0,
      max_inside: 3,
      watch_events_per_acq: 1,
      requests_per_op: 10,
    };
    const multi: KindsLine = {
      workload: 'multi',
      clients: 4,
      paths: 4,
      acquisitions: 10,
      per_s: 1,
      wait_p50_us: 1,
      wait_p99_us: 1,
      overlaps: 0,
      deadlocks: 0,
      watch_events_per_acq: 1,
      requests_per_op: 8,
    };
    expect(failures([rw, sem, multi])).toEqual([]);
    expect(failures([{ ...rw, overlaps: 1 }])).toEqual(['1 overlap(s) in rw (a reader with a writer, or two writers)']);
    expect(failures([{ ...rw, max_readers_inside: 1 }])).toEqual([
      'rw: at most 1 reader(s) inside at once (readers must share the lock)',
    ]);
    expect(failures([{ ...sem, overlaps: 2, max_inside: 4 }])).toEqual([
      'sem: 4 holders inside at once (2 time(s) more than 3 leases)',
    ]);
    expect(failures([{ ...sem, max_inside: 2 }])).toEqual(['sem: never more than 2 of 3 leases held at once']);
    expect(failures([{ ...multi, overlaps: 1, deadlocks: 2 }])).toEqual([
      '1 overlap(s) on a path in multi',
      'multi: 2 session(s) still waiting at the deadline',
    ]);
  });

  it(
    'rejects a bad argument naming the value and the rule (exit code 2)',
    async () => {
      const run = await runBench(['--connect', zk.connectString, '--workload', 'w9']);
      expect(run).toMatchObject({ code: 2, stdout: '' });
      expect(run.stderr).toMatch(
        /--workload "w9": must be one of floor, w1, nest, idle, w2, w2c, w3, mem, http, rw, sem, multi, leader/,
      );
    },
    RUN_TIMEOUT,
  );
});
