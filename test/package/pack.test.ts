/**
 * The packed tarball in real apps: scripts/pack-check.sh builds, packs, installs the tarball into a
 * scratch ESM app per Nest major (12, 11), compiles it with tsc and boots it with node.
 * Slow-ish (two npm installs): ~15-30 s with a warm npm cache on an idle machine, 30-45 s with a cold cache.
 * Run alone with `npx vitest run test/package`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startZooKeeper, type ZkServer } from '../support/index.js';
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** Runs `command` in the repo; after `timeoutMs` kills it and its children (its own process group). */
function run(
  command: string,
  args: string[],
  timeoutMs: number,
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: repo,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
      env: { ...process.env, ...env },
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const timer = setTimeout(() => {
      output += `\n[killed after ${timeoutMs} ms]\n`;
      if (child.pid !== undefined) process.kill(-child.pid, 'SIGTERM');
    }, timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

let server: ZkServer;
beforeAll(async () => {
  server = await startZooKeeper();
});
afterAll(async () => {
  await server?.dispose();
});

describe('packed tarball', () => {
  it('installs, compiles, boots and locks in a Nest 12 and a Nest 11 app', { timeout: 300_000 }, async () => {
    const { code, output } = await run('bash', ['scripts/pack-check.sh'], 280_000, {
      ZK_CONNECT: server.connectString,
    });
    // On failure the received object shows the whole output of the script.
    expect({ exitCode: code, output }).toMatchObject({ exitCode: 0 });
    expect(output).toMatch(/^pack-check: nest 12 OK /m);
    expect(output).toMatch(/^pack-check: nest 11 OK /m);
    expect(output).not.toMatch(/FAIL/);
    // With ZK_CONNECT each app took a lock by hand and through a @DistributedLock method.
    expect(output.match(/^pack-check: nest 1[12] LOCK \/pack-check\/lock fencingToken=\d+$/gm)).toHaveLength(2);
    expect(output.match(/^pack-check: nest 1[12] DECORATED \/pack-check\/decorated\/_c_/gm)).toHaveLength(2);
  });
});
