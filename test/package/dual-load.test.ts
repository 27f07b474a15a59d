/**
 * The package has two builds (ESM in dist/, CommonJS in dist/cjs/, scripts/build.sh). One format
 * per process works, every entry of it; both formats in one process fail at once, at the second
 * load, with an error that names both files and the fix (lib/dual-load-guard.ts). Each case runs
 * in its own Node process, on a fresh build of the working tree.
 */
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../fixtures/run-script.js';

// Inside the repository, so that the builds resolve @nestjs/* and the client from its node_modules.
const OUT = path.join(REPO_ROOT, 'test', '.build', 'dual-load');
const ESM = path.join(OUT, 'index.js');
const ESM_HEALTH = path.join(OUT, 'health', 'index.js');
const CJS = path.join(OUT, 'cjs', 'index.js');
const CJS_HEALTH = path.join(OUT, 'cjs', 'health', 'index.js');
const KEY = `Symbol.for(${JSON.stringify(`${packageName()}:loaded-from`)})`;

function packageName(): string {
  return (JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { name: string }).name;
}

/** Runs an ES module script (`-e`, with the files above as argv) in a new Node process. */
function node(script: string): Promise<{ ok: boolean; output: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--input-type=module', '--no-warnings', '-e', script, ESM, ESM_HEALTH, CJS, CJS_HEALTH],
      { cwd: REPO_ROOT, timeout: 30_000 },
      (error, stdout, stderr) => resolve({ ok: !error, output: stdout + stderr }),
    );
  });
}

const PRELUDE = `
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
const require = createRequire(import.meta.url);
const [esm, esmHealth, cjs, cjsHealth] = process.argv.slice(1);
const importFile = (file) => import(pathToFileURL(file).href);
const loaded = () => globalThis[${KEY}];
`;

// A second installed copy of the same build (as two versions in node_modules would be).
const COPY = path.join(REPO_ROOT, 'test', '.build', 'dual-load-copy');

beforeAll(() => {
  execFileSync('bash', ['scripts/build.sh', OUT], { cwd: REPO_ROOT, stdio: 'pipe' });
  fs.rmSync(COPY, { recursive: true, force: true });
  fs.cpSync(OUT, COPY, { recursive: true });
}, 60_000);

describe('one process, one format', () => {
  it('CommonJS: both entries load (require), the error classes are shared, the guard records CommonJS', async () => {
    const { ok, output } = await node(`${PRELUDE}
      const main = require(cjs);
      const health = require(cjsHealth);
      if (typeof health.ZkHealthIndicator !== 'function') throw new Error('no ZkHealthIndicator');
      const error = new main.LockTimeoutError('/a', 1);
      console.log('LOADED', loaded().format, loaded().file, error instanceof main.ZkLockError);`);
    expect(output).toContain(`LOADED CommonJS ${path.join(OUT, 'cjs', 'dual-load-guard.js')} true`);
    expect(ok).toBe(true);
  });

  it('ESM: both entries load (import), the guard records ESM', async () => {
    const { ok, output } = await node(`${PRELUDE}
      const main = await importFile(esm);
      const health = await importFile(esmHealth);
      if (typeof health.ZkHealthIndicator !== 'function') throw new Error('no ZkHealthIndicator');
      console.log('LOADED', loaded().format, loaded().file, typeof main.ZkLockModule);`);
    expect(output).toContain(`LOADED ESM ${path.join(OUT, 'dual-load-guard.js')} function`);
    expect(ok).toBe(true);
  });

  it('the same file evaluated again (a test runner resetting its modules) is not a second copy', async () => {
    const { ok, output } = await node(`${PRELUDE}
      require(cjs);
      for (const file of Object.keys(require.cache)) if (file.startsWith(${JSON.stringify(OUT)})) delete require.cache[file];
      const again = require(cjs);
      console.log('AGAIN', typeof again.LockService);`);
    expect(output).toContain('AGAIN function');
    expect(ok).toBe(true);
  });
});

describe('one process, both formats: the second load fails at once', () => {
  const expectClearError = (output: string, first: 'ESM' | 'CommonJS') => {
    const esmFile = path.join(OUT, 'dual-load-guard.js');
    const cjsFile = path.join(OUT, 'cjs', 'dual-load-guard.js');
    const [a, b] =
      first === 'ESM' ? [`ESM (${esmFile})`, `CommonJS (${cjsFile})`] : [`CommonJS (${cjsFile})`, `ESM (${esmFile})`];
    expect(output).toContain(`was loaded twice in one process, as ${a} and as ${b}`);
    expect(output).toMatch(/Load it one way everywhere/);
  };

  it('ESM first, then require() of the CommonJS build: throws, naming both files and the fix', async () => {
    const { ok, output } = await node(`${PRELUDE}
      await importFile(esm);
      try {
        require(cjsHealth);
        console.log('NO ERROR');
      } catch (error) {
        console.log('REFUSED', error.message);
      }
      console.log('STILL', loaded().format);`);
    expect(output).not.toContain('NO ERROR');
    expectClearError(output, 'ESM');
    // The first copy stays the one in use.
    expect(output).toContain('STILL ESM');
    expect(ok).toBe(true);
  });

  it('CommonJS first, then import() of the ESM build: rejects, naming both files and the fix', async () => {
    const { ok, output } = await node(`${PRELUDE}
      require(cjs);
      const outcome = await importFile(esm).then(() => 'NO ERROR', (error) => 'REFUSED ' + error.message);
      console.log(outcome);`);
    expect(output).not.toContain('NO ERROR');
    expectClearError(output, 'CommonJS');
    expect(ok).toBe(true);
  });

  it('two installed copies of one build: the second fails too, naming both and how to dedupe', async () => {
    const { ok, output } = await node(`${PRELUDE}
      require(cjs);
      try {
        require(${JSON.stringify(path.join(COPY, 'cjs', 'index.js'))});
        console.log('NO ERROR');
      } catch (error) {
        console.log('REFUSED', error.message);
      }`);
    expect(output).not.toContain('NO ERROR');
    expect(output).toContain(
      `from two installed copies (${path.join(OUT, 'cjs', 'dual-load-guard.js')} and ${path.join(COPY, 'cjs', 'dual-load-guard.js')})`,
    );
    expect(output).toMatch(/npm ls \S+` shows who depends on which/);
    expect(ok).toBe(true);
  });
});
