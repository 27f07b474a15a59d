/**
 * Once per test run: build dist/ from lib/, because some tests run the library in separate
 * Node processes (test/fixtures/lock-process.mjs), as an application would load it; and compile
 * the Nest test app (test/fixtures/locked-app-main.ts) to test/.build for the same reason.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export default function setup(): void {
  const root = fileURLToPath(new URL('..', import.meta.url));
  for (const project of ['tsconfig.build.json', 'test/fixtures/tsconfig.json']) {
    execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', project], { cwd: root, stdio: 'inherit' });
  }
}
