/**
 * README: "Each command does its own set-up: it installs the npm dependencies when node_modules is
 * missing, installs ZooKeeper from Debian's zookeeper package when it is missing, builds what it
 * runs, and starts (and stops) its own local ZooKeeper servers."
 *
 * The scripts run for real, with `npm`, `npx` and `apt-get` replaced on PATH by stand-ins that
 * record how they were called (nothing is downloaded or installed). To make ZooKeeper "missing" on
 * a machine that has it, zookeeper.sh runs in its own mount namespace (`unshare -m`, as root, like
 * the scripts' apt-get) with an empty tmpfs over /usr/share/java; the stand-in apt-get "installs"
 * it by writing the jar there. The building and server parts are what `npm run sample` (sample.test),
 * the chaos run and the benchmark tests exercise.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../fixtures/run-script.js';

const temps: string[] = [];
afterEach(() => {
  for (const dir of temps.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nestjs-zk-lock-scripts-'));
  temps.push(dir);
  return dir;
}

/** A directory of stand-ins for `names`: each appends "<name> <args>" to `log`, then runs `then` (default: exit 1). */
function standIns(log: string, commands: Record<string, string>): string {
  const bin = tempDir();
  for (const [name, then] of Object.entries(commands)) {
    fs.writeFileSync(path.join(bin, name), `#!/usr/bin/env bash\necho "${name} $*" >> '${log}'\n${then}\n`, {
      mode: 0o755,
    });
  }
  return bin;
}

/** A copy of the repository's scripts and package files, without node_modules. */
function bareCheckout(): string {
  const root = tempDir();
  fs.cpSync(path.join(REPO_ROOT, 'scripts'), path.join(root, 'scripts'), { recursive: true });
  for (const file of ['package.json', 'package-lock.json'])
    fs.copyFileSync(path.join(REPO_ROOT, file), path.join(root, file));
  return root;
}

function bash(args: string[], env: NodeJS.ProcessEnv, cwd = REPO_ROOT) {
  const run = spawnSync('bash', args, { cwd, env, encoding: 'utf8', timeout: 60_000 });
  return { code: run.status, output: `${run.stdout}${run.stderr}` };
}

describe('the scripts install what is missing', () => {
  it.each([
    ['test.sh', []],
    ['sample.sh', ['--help']],
    ['chaos.sh', ['--help']],
    ['bench.sh', ['--help']],
  ])('%s runs `npm ci` when node_modules is missing, and not when it is there', (script, args) => {
    const root = bareCheckout();
    const log = path.join(tempDir(), 'calls.log');
    // npm ci "fails" at once, so the script stops there (set -e); npx too, should it get that far.
    const bin = standIns(log, { npm: 'exit 1', npx: 'exit 1' });
    const env = { ...process.env, PATH: `${bin}:${process.env.PATH}` };
    const missing = bash([path.join(root, 'scripts', script), ...args], env, root);
    expect(missing.code).not.toBe(0);
    expect(fs.readFileSync(log, 'utf8').split('\n')[0]).toBe('npm ci --no-audit --no-fund');

    fs.rmSync(log);
    fs.mkdirSync(path.join(root, 'node_modules'));
    bash([path.join(root, 'scripts', script), ...args], env, root);
    const calls = fs.existsSync(log) ? fs.readFileSync(log, 'utf8') : '';
    expect(calls).not.toContain('npm ci');
  });

  it('zookeeper.sh installs the zookeeper package with apt-get when no ZooKeeper is found (as root), and says why it cannot otherwise', () => {
    const log = path.join(tempDir(), 'calls.log');
    // The stand-in apt-get "installs" ZooKeeper: it writes the jar where Debian's package puts it.
    const bin = standIns(log, {
      'apt-get': '[[ $* == *install* ]] && : > /usr/share/java/zookeeper.jar; exit 0',
    });
    const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${bin}:${process.env.PATH}` };
    delete env['ZK_CLASSPATH'];
    delete env['ZOOKEEPER_HOME'];
    const hidden = 'mount -t tmpfs none /usr/share/java && ';
    const script = path.join(REPO_ROOT, 'scripts', 'zookeeper.sh');

    const installed = bash(['-c', `unshare -m bash -c '${hidden}bash ${script} classpath'`], env);
    expect(installed.output).toContain('zookeeper.sh: installing zookeeper with apt-get');
    expect(installed.code).toBe(0);
    expect(installed.output).toContain('/usr/share/java/zookeeper.jar');
    const calls = fs.readFileSync(log, 'utf8').trim().split('\n');
    expect(calls[0]).toBe('apt-get update -qq');
    expect(calls[1]).toMatch(/^apt-get install .*\bzookeeper$/);

    // Not root: nothing is installed, and the message says what to do.
    fs.rmSync(log);
    const unprivileged = bash(
      ['-c', `unshare -m bash -c '${hidden}setpriv --reuid=65534 --regid=65534 --clear-groups bash ${script} ensure'`],
      env,
    );
    expect(unprivileged.code).toBe(1);
    expect(unprivileged.output).toContain('missing: zookeeper (and cannot install it: not root, or no apt-get)');
    expect(unprivileged.output).toContain('ZOOKEEPER_HOME');
    expect(fs.existsSync(log)).toBe(false);
  });
});
