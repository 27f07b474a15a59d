/**
 * The sample's jobs mode end to end, as a user runs it: `bash scripts/sample.sh --jobs` (which
 * builds sample/ and runs it): three Nest app processes with a @Cron job every second under
 * @OnOneInstance + @WithoutOverlapping and a @LeaderElection provider, against a real ZooKeeper
 * started here; the job's holder is SIGKILLed, the next one stopped; the sample's verdict checked.
 * Plus its verifier on made-up runs, so that a tick run twice is known to fail it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyJobs, type LeaderTerm, type TickRun } from '../../sample/jobs-verify.js';
import { runScript } from '../fixtures/run-script.js';
import { startZooKeeper, type ZkServer } from '../support/index.js';

/** Build + three app processes + about 15 s of ticks and handovers, on a busy 2-core machine. */
const RUN_TIMEOUT = 150_000;

let zk: ZkServer;

/** The sample script to its end, against the test's ZooKeeper (its whole process group killed at the deadline). */
const runSample = (args: string[]) =>
  runScript('scripts/sample.sh', args, { env: { ZK_CONNECT: zk.connectString }, timeoutMs: RUN_TIMEOUT - 5_000 });

beforeAll(async () => {
  // ZooKeeper's default tick: the sample's 4 s session timeout is granted as asked.
  zk = await startZooKeeper({ tickTime: 2_000 });
});

afterAll(async () => {
  await zk?.dispose();
});

describe('sample --jobs (scripts/sample.sh)', () => {
  it(
    'runs every tick once on the holder, hands the job over after SIGKILL and after a clean stop, and passes (exit code 0)',
    async () => {
      const run = await runSample(['--jobs']);
      expect(run).toMatchObject({ code: 0 }); // shows the output when not
      const { output } = run;
      expect(output).toMatch(
        /PASS: \d+ ticks ran, each exactly once \(a tick is the second it fired\), on instances 1, [23], [23] in turn; fencing tokens strictly increasing; 3 leaders, one at a time, tokens increasing\./,
      );
      // Both handovers, with their measured times.
      expect(output).toMatch(
        /SIGKILL to instance 1: the next tick ran on instance [23] [\d.]+ (s|ms) after it; it took the job [\d.]+ (s|ms) after it \([\d.]+ x the session timeout\)/,
      );
      expect(output).toMatch(/SIGTERM to instance [23]: the next tick ran on instance [23] [\d.]+ (s|ms) after it/);
      expect(output).toMatch(/onLeadershipLost: shutdown/);
      // Who ran each tick: instance 1 first, then the two others; never an error.
      const ticks = [...output.matchAll(/tick (\d\d:\d\d:\d\d) ran on instance (\d)/g)].map((m) => [m[1], m[2]]);
      expect(ticks.length).toBeGreaterThanOrEqual(3 + 3 + 2);
      expect(new Set(ticks.map(([second]) => second)).size).toBe(ticks.length);
      expect(ticks[0][1]).toBe('1');
      expect(new Set(ticks.map(([, instance]) => instance))).toEqual(new Set(['1', '2', '3']));
      expect(output).not.toMatch(/ERROR|Problem:/);
    },
    RUN_TIMEOUT,
  );

  it(
    'rejects the other modes options with --jobs (exit code 2)',
    async () => {
      const run = await runSample(['--jobs', '--workers', '4']);
      expect(run).toMatchObject({ code: 2 });
      expect(run.output).toMatch(/--workers does not apply with --jobs/);
    },
    RUN_TIMEOUT,
  );

  it('its verifier fails a tick run twice, a token that does not grow, a job that comes back, and overlapping leaders', () => {
    const run = (instance: number, second: number, token: number): TickRun => ({
      instance,
      second,
      token: BigInt(token),
    });
    const term = (instance: number, token: number, from: number, to?: number): LeaderTerm => ({
      instance,
      token: BigInt(token),
      from: BigInt(from),
      to: to === undefined ? undefined : BigInt(to),
    });
    const good = [run(1, 100, 10), run(1, 101, 11), run(2, 106, 20), run(3, 108, 30)];
    const terms = [term(1, 5, 0, 10), term(2, 15, 20, 30), term(3, 25, 40)];
    expect(verifyJobs(good, terms)).toEqual({ ok: true, problems: [] });

    const twice = verifyJobs([...good, run(3, 106, 31)], terms);
    expect(twice.ok).toBe(false);
    expect(twice.problems.join('\n')).toMatch(/ran 2 times \(instances 2, 3\)/);
    expect(verifyJobs([run(1, 100, 10), run(2, 101, 9)], []).problems.join('\n')).toMatch(/is not above/);
    expect(verifyJobs([run(1, 100, 10), run(2, 101, 11), run(1, 102, 12)], []).problems.join('\n')).toMatch(
      /instance 1 ran the tick of .* after it had handed the job over/,
    );
    expect(verifyJobs([], [term(1, 5, 0, 25), term(2, 15, 20)]).problems.join('\n')).toMatch(/two leaders at once/);
    expect(verifyJobs([], [term(1, 5, 0), term(2, 15, 20)]).problems.join('\n')).toMatch(/still leading/);
    expect(verifyJobs([], [term(1, 5, 0, 10), term(2, 4, 20)]).problems.join('\n')).toMatch(/not increasing/);
  });
});
