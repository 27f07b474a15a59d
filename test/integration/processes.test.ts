/**
 * The library in separate OS processes (built dist/, as an application loads it): a killed holder,
 * processes that must exit on their own after giving up, and mutual exclusion across processes.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { closeLockClients, lockClient } from '../fixtures/lock-clients.js';
import { startZooKeeper, waitFor, watchCount, type ZkServer } from '../support/index.js';

const script = fileURLToPath(new URL('../fixtures/lock-process.mjs', import.meta.url));
let server: ZkServer;
const children: ChildProcess[] = [];

interface Run {
  child: ChildProcess;
  lines: string[];
  exited: Promise<number | null>;
}

function run(...args: string[]): Run {
  const child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  const lines: string[] = [];
  let buffered = '';
  child.stdout.on('data', (chunk: Buffer) => {
    buffered += chunk.toString();
    const parts = buffered.split('\n');
    buffered = parts.pop()!;
    lines.push(...parts);
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, lines, exited };
}

beforeAll(async () => {
  server = await startZooKeeper();
});
afterEach(async () => {
  for (const child of children.splice(0)) child.kill('SIGKILL');
  await closeLockClients();
});
afterAll(async () => {
  await server?.dispose();
});

describe('a holder process killed with SIGKILL', () => {
  it('a waiter in another process acquires within the session timeout + 2 s', async () => {
    const holder = run('hold', server.connectString, '/locks/killed');
    await waitFor(() => holder.lines.some((line) => line.startsWith('acquired')), { message: 'holder acquired' });
    const { locks } = await lockClient(server.connectString);
    const waiting = locks.acquire('/locks/killed', { timeout: 10_000 });
    const killedAt = Date.now();
    holder.child.kill('SIGKILL');
    const handle = await waiting;
    expect(Date.now() - killedAt).toBeLessThan(2_000 + 2_000);
    const token = BigInt(holder.lines.find((line) => line.startsWith('acquired'))!.split(' ')[1]);
    expect(handle.fencingToken).toBeGreaterThan(token);
    await handle.release();
  });
});

describe('a process that gives up', () => {
  it.each(['timeout', 'abort'])('after a %s it leaves no node, no watch, and exits on its own', async (mode) => {
    const { locks, connection } = await lockClient(server.connectString);
    const held = await locks.acquire(`/locks/exit-${mode}`);
    const waiter = run(mode, server.connectString, `/locks/exit-${mode}`, '300');
    const code = await Promise.race([
      waiter.exited,
      waitFor(() => waiter.lines.includes('closed'), { timeout: 10_000 }).then(
        () =>
          new Promise<never>((_, reject) => {
            // It said "closed": from now on it must exit by itself, nothing may keep it alive.
            setTimeout(() => reject(new Error('the process did not exit on its own')), 5_000).unref();
          }),
      ),
    ]);
    expect(code).toBe(0);
    expect(waiter.lines[0]).toBe(`gave up ${mode === 'timeout' ? 'LockTimeoutError' : 'LockAbortedError'} watches=0`);
    expect((await connection.getChildren(`/locks/exit-${mode}`)).children).toEqual([held.node.split('/').pop()]);
    expect(await watchCount(server)).toBe(0);
    await held.release();
  });
});

describe('two processes', () => {
  it('never hold the lock at the same time', async () => {
    const runs = [
      run('loop', server.connectString, '/locks/two-processes', '40'),
      run('loop', server.connectString, '/locks/two-processes', '40'),
    ];
    const codes = await Promise.all(runs.map((r) => r.exited));
    expect(codes).toEqual([0, 0]);
    const intervals = runs.flatMap(({ lines }) => {
      const times = lines
        .filter((l) => l.startsWith('enter') || l.startsWith('exit'))
        .map((l) => BigInt(l.split(' ')[1]));
      return Array.from({ length: times.length / 2 }, (_, i) => [times[2 * i], times[2 * i + 1]] as const);
    });
    expect(intervals).toHaveLength(80);
    intervals.sort((x, y) => (x[0] < y[0] ? -1 : 1));
    for (let i = 1; i < intervals.length; i += 1) expect(intervals[i][0]).toBeGreaterThan(intervals[i - 1][1]);
  }, 60_000);
});

describe('two Nest apps in two OS processes', () => {
  it('never run the same locked route at the same time', async () => {
    const main = fileURLToPath(new URL('../.build/test/fixtures/locked-app-main.js', import.meta.url));
    const spawned = [0, 1].map(() => {
      const child = spawn(process.execPath, [main, server.connectString], { stdio: ['ignore', 'pipe', 'inherit'] });
      children.push(child);
      let out = '';
      return new Promise<string>((resolve) =>
        child.stdout.on('data', (chunk: Buffer) => {
          out += chunk.toString();
          const url = /listening (\S+)/.exec(out)?.[1];
          if (url) resolve(url);
        }),
      );
    });
    const urls = await Promise.all(spawned);
    const statuses = await Promise.all(
      Array.from({ length: 12 }, (_, i) => fetch(`${urls[i % 2]}/section/10`).then((r) => r.status)),
    );
    expect(statuses).toEqual(Array(12).fill(200));
    const intervals = (
      await Promise.all(
        urls.map(async (url) => (await (await fetch(`${url}/intervals`)).json()) as { enter: string; exit: string }[]),
      )
    )
      .flat()
      .map((i) => ({ enter: BigInt(i.enter), exit: BigInt(i.exit) }))
      .toSorted((a, b) => (a.enter < b.enter ? -1 : 1));
    expect(intervals).toHaveLength(12);
    for (let i = 1; i < intervals.length; i += 1) expect(intervals[i].enter).toBeGreaterThan(intervals[i - 1].exit);
  }, 60_000);
});
