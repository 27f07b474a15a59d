/**
 * Scheduled jobs and leader elections in three Nest apps in three OS processes, real ZooKeeper,
 * real @nestjs/schedule (ticks fired through SchedulerRegistry's own cron jobs): every tick runs
 * once, on the holder; handover after a clean shutdown and after SIGKILL, measured; leadership
 * belief intervals on process.hrtime (one monotonic clock for the machine's processes).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { startZooKeeper, waitFor, type ZkServer } from '../support/index.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BUILD = fileURLToPath(new URL('../.build', import.meta.url));
const MAIN = `${BUILD}/test/fixtures/jobs-app-main.js`;
/** The apps' session timeout (jobs-app.ts), and the tick interval the SIGKILL test simulates. */
const SESSION_TIMEOUT_MS = 2_000;
const TICK_MS = 200;

let server: ZkServer;
const children: ChildProcess[] = [];

/** One app process and what it printed. */
interface App {
  name: string;
  child: ChildProcess;
  lines: string[];
  exited: Promise<number | null>;
  /** performance.now() when each line arrived. */
  times: number[];
  send(command: string): void;
}

/** Compiles the child's entry (jobs-app-main.ts) to test/.build, as the global setup does for the locked app. */
function compileMain(): void {
  mkdirSync(BUILD, { recursive: true });
  const config = `${BUILD}/jobs-tsconfig.json`;
  writeFileSync(
    config,
    JSON.stringify({
      extends: '../fixtures/tsconfig.json',
      compilerOptions: { rootDir: '../..', outDir: '.' },
      include: ['../fixtures/jobs-app-main.ts', '../../lib/**/*.d.ts'],
    }),
  );
  execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', config], { cwd: ROOT, stdio: 'inherit' });
}

function startApp(name: string): App {
  const child = spawn(process.execPath, [MAIN, server.connectString, name], { stdio: ['pipe', 'pipe', 'inherit'] });
  children.push(child);
  const lines: string[] = [];
  const times: number[] = [];
  let buffered = '';
  child.stdout.on('data', (chunk: Buffer) => {
    buffered += chunk.toString();
    const parts = buffered.split('\n');
    buffered = parts.pop()!;
    for (const part of parts) {
      lines.push(part);
      times.push(performance.now());
    }
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  onTestFailed(() => console.log(`--- app ${name} printed:\n${lines.join('\n')}`));
  return { name, child, lines, times, exited, send: (command) => child.stdin.write(`${command}\n`) };
}

async function startApps(): Promise<App[]> {
  const apps = ['a', 'b', 'c'].map(startApp);
  await waitFor(() => apps.every((app) => app.lines.includes('ready')), { timeout: 20_000, message: 'apps ready' });
  return apps;
}

/** Parsed JSON records of `kind` that `app` printed. */
function records<T = Record<string, string>>(app: App, kind: string): T[] {
  return app.lines
    .filter((line) => line.startsWith(`${kind} `))
    .map((line) => JSON.parse(line.slice(kind.length + 1)) as T);
}

/** The apps whose latest leadership event for `path` says they lead. */
function leading(apps: App[], path: string): App[] {
  return apps.filter((app) =>
    app.lines
      .findLast(
        (line) =>
          line.startsWith('event ') && line.includes(`"path":"${path}"`) && line.includes('"type":"leadership-'),
      )
      ?.includes('"type":"leadership-acquired"'),
  );
}

/** The app that leads `path`, once one does (the tests' assertions, not this wait, fail on a broken lock). */
async function holderOf(apps: App[], path: string, timeout = 10_000): Promise<App> {
  return waitFor(() => leading(apps, path)[0], { timeout, message: `a leader of ${path}` });
}

/** Fires tick `tick` of `job` on every app and waits until each has done it. */
async function tickAll(apps: App[], job: string, tick: number): Promise<void> {
  for (const app of apps) app.send(`tick ${job} ${tick}`);
  await waitFor(() => apps.every((app) => app.lines.includes(`ticked ${job} ${tick}`)), {
    message: `tick ${tick} of ${job} done`,
  });
}

const runs = (apps: App[], job: string) =>
  apps
    .flatMap((app) => records<{ job: string; app: string; tick: number; token: string }>(app, 'ran'))
    .filter((run) => run.job === job)
    .toSorted((x, y) => x.tick - y.tick);

function strictlyIncreasing(values: bigint[]): boolean {
  return values.every((value, i) => i === 0 || value > values[i - 1]);
}

const STICKY = '/zk-lock/jobs/ReportJobs.sticky';
const LEADER = '/jobs-test/leader';

beforeAll(async () => {
  compileMain();
  server = await startZooKeeper();
}, 120_000);
afterEach(() => {
  for (const child of children.splice(0)) child.kill('SIGKILL');
});
afterAll(async () => {
  await server?.dispose();
});

describe('three apps in three processes', () => {
  it('every tick runs once, on the holder; after a clean shutdown and after SIGKILL of the holder, the next one runs them', async () => {
    const apps = await startApps();
    const first = await holderOf(apps, STICKY);
    for (let tick = 1; tick <= 5; tick += 1) await tickAll(apps, 'sticky', tick);
    expect(runs(apps, 'sticky').map((run) => [run.tick, run.app])).toEqual([1, 2, 3, 4, 5].map((t) => [t, first.name]));

    // Clean shutdown of the holder.
    const left = apps.filter((app) => app !== first);
    const closing = performance.now();
    first.send('close');
    const second = await holderOf(left, STICKY);
    const tookAt =
      second.times[second.lines.findLastIndex((l) => l.includes('"type":"leadership-acquired"') && l.includes(STICKY))];
    await tickAll(left, 'sticky', 6);
    const cleanRun = performance.now() - closing;
    expect(await first.exited).toBe(0); // and it exits on its own
    const cleanHandover = tookAt - closing;

    // SIGKILL of the new holder: ticks every TICK_MS on the survivors until one runs.
    const [third] = left.filter((app) => app !== second);
    const killedAt = performance.now();
    second.child.kill('SIGKILL');
    let tick = 7;
    const firstRunAfterKill = await waitFor(
      async () => {
        await tickAll([third], 'sticky', tick);
        tick += 1;
        return runs([third], 'sticky')[0];
      },
      { timeout: 15_000, interval: TICK_MS, message: 'a run after the kill' },
    );
    const crashRun = performance.now() - killedAt;
    console.log(
      `processes: clean handover ${cleanHandover.toFixed(1)} ms (the next tick ran ${cleanRun.toFixed(1)} ms after "close"); ` +
        `after SIGKILL the first tick ran ${crashRun.toFixed(1)} ms after the kill (session timeout ${SESSION_TIMEOUT_MS} ms, ticks every ${TICK_MS} ms)`,
    );
    const all = runs(apps, 'sticky');
    expect(all.map((run) => run.tick)).toEqual([1, 2, 3, 4, 5, 6, firstRunAfterKill.tick]); // each tick at most once
    expect(all.filter((run) => run.tick === 6).map((run) => run.app)).toEqual([second.name]);
    expect(strictlyIncreasing(all.map((run) => BigInt(run.token)))).toBe(true);
    // Documented bounds (loose for a loaded machine): one notification after a clean shutdown;
    // the server's expiry of the session (its timeout, checked every tickTime) plus one tick after a crash.
    expect(cleanHandover).toBeLessThan(2_000);
    expect(crashRun).toBeLessThan(SESSION_TIMEOUT_MS + TICK_MS + 2_000);
    for (const app of apps) expect(app.lines.filter((line) => line.startsWith('log error'))).toEqual([]);
  }, 40_000);

  it('leadership: exactly one leader; a new one after its shutdown and after its crash; beliefs never overlap', async () => {
    const apps = await startApps();
    const first = await holderOf(apps, LEADER);
    await waitFor(() => records(first, 'acquired').length === 1, { message: 'onLeadershipAcquired' });
    expect(apps.map((app) => records(app, 'acquired').length).toSorted((x, y) => x - y)).toEqual([0, 0, 1]);
    first.send('close');
    expect(await first.exited).toBe(0);
    const left = apps.filter((app) => app !== first);
    const second = await holderOf(left, LEADER);
    await waitFor(() => records(second, 'acquired').length === 1, { message: 'the second leader told' });
    expect(records(first, 'lost')).toEqual([{ app: first.name, reason: 'shutdown', aborted: true }]);
    second.child.kill('SIGKILL');
    await second.exited;
    const killed = process.hrtime.bigint(); // the killed process's belief ended before this
    const [third] = left.filter((app) => app !== second);
    await waitFor(() => records(third, 'acquired').length === 1, { timeout: 15_000, message: 'the third leader' });
    const terms = [
      ...records<{ app: string; acquired: string }>(first, 'signal').map((t) => ({
        ...t,
        lost: BigInt((t as { lost?: string }).lost!),
      })),
      ...records<{ app: string; acquired: string }>(second, 'acquired').map((t) => ({ ...t, lost: killed })),
      ...records<{ app: string; acquired: string }>(third, 'acquired').map((t) => ({ ...t, lost: undefined })),
    ]
      .map((t) => ({ ...t, acquired: BigInt(t.acquired) }))
      .toSorted((x, y) => (x.acquired < y.acquired ? -1 : 1));
    expect(terms.map((t) => t.app)).toEqual([first.name, second.name, third.name]);
    for (let i = 1; i < terms.length; i += 1) expect(terms[i].acquired).toBeGreaterThan(terms[i - 1].lost!);
    const tokens = [first, second, third].map((app) => BigInt(records<{ token: string }>(app, 'acquired')[0].token));
    expect(strictlyIncreasing(tokens)).toBe(true);
  }, 40_000);
});
