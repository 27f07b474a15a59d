/**
 * `@nestjs/terminus` is an optional peer dependency: only the `nestjs-zk-lock/health` entry may load it.
 * Checked twice: the source graph as Vitest loads it, and the built dist/ in a plain Node process
 * that cannot resolve `@nestjs/terminus` (the test run builds dist/ first, see test/global-setup.ts).
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, vi } from 'vitest';

const loaded = vi.hoisted(() => ({ terminus: 0 }));
vi.mock(import('@nestjs/terminus'), async (importOriginal) => {
  loaded.terminus += 1;
  return importOriginal();
});

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

// Registered in the child process: resolving @nestjs/terminus from ESM throws, and at the end any
// CommonJS copy of it in require.cache is reported too.
const HOOK = `export async function resolve(specifier, context, next) {
  if (specifier === '@nestjs/terminus' || specifier.startsWith('@nestjs/terminus/')) throw new Error('TERMINUS_IMPORTED by ' + context.parentURL);
  return next(specifier, context);
}`;
const CHILD = `
import { register, createRequire } from 'node:module';
register('data:text/javascript,' + encodeURIComponent(${JSON.stringify(HOOK)}));
const entry = await import(process.argv[1]);
const cjs = Object.keys(createRequire(import.meta.url).cache).filter((f) => f.includes('@nestjs/terminus'));
if (cjs.length) throw new Error('TERMINUS_IMPORTED (CommonJS) ' + cjs[0]);
console.log('LOADED ' + Object.keys(entry).sort().join(','));
`;

function importInNode(entry: string): Promise<{ ok: boolean; output: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--input-type=module', '-e', CHILD, new URL(entry, `file://${ROOT}/`).href],
      { cwd: ROOT, timeout: 20_000 },
      (error, stdout, stderr) => resolve({ ok: !error, output: stdout + stderr }),
    );
  });
}

describe('@nestjs/terminus stays out of the main entry', () => {
  it('source: lib/index.ts does not load it; lib/health/index.ts does', async () => {
    const main = await import('../../lib/index.js');
    expect(main.ZkConnectionService).toBeTypeOf('function');
    expect(loaded.terminus).toBe(0);
    const health = await import('../../lib/health/index.js');
    expect(health.ZkHealthIndicator).toBeTypeOf('function');
    expect(loaded.terminus).toBe(1);
  });

  it('built: dist/index.js loads in Node without @nestjs/terminus; dist/health/index.js needs it', async () => {
    const main = await importInNode('dist/index.js');
    expect(main.output).toMatch(/^LOADED .*\bZkLockModule\b/m);
    expect(main.ok).toBe(true);
    const health = await importInNode('dist/health/index.js');
    expect(health.ok).toBe(false);
    expect(health.output).toContain('TERMINUS_IMPORTED by file://');
  });
});
