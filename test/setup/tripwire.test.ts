/**
 * The tripwire (test/setup/tripwire.ts) trips: a Vitest of its own runs deliberate unhandled
 * rejections and uncaught exceptions (test/setup/fixtures/deliberate.trip.ts) and each test
 * during which one happened fails, naming it; the clean ones pass; Vitest still reports each
 * as an unhandled error of the run.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

interface JsonReport {
  testResults: { assertionResults: { title: string; status: string; failureMessages: string[] }[] }[];
}

it('fails each test during which an unhandled rejection or uncaught exception happened, naming it', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tripwire-'));
  const out = path.join(dir, 'report.json');
  try {
    const { code, output } = await new Promise<{ code: number; output: string }>((resolve) => {
      execFile(
        process.execPath,
        [
          'node_modules/vitest/vitest.mjs',
          'run',
          '--config',
          'test/setup/tripwire-check.config.ts',
          '--reporter=json',
          `--outputFile=${out}`,
          '--reporter=default',
        ],
        { cwd: ROOT, env: { ...process.env, NO_COLOR: '1' } },
        (error, stdout, stderr) =>
          resolve({ code: error ? ((error as { code?: number }).code ?? -1) : 0, output: `${stdout}${stderr}` }),
      );
    });
    expect(code).toBe(1);
    // Vitest's own report of the unhandled errors stays (the tripwire steps aside for it).
    expect(output).toMatch(/Errors\s+3 errors/);
    expect(output).toContain('Unhandled Rejection');
    expect(output).toContain('Uncaught Exception');
    const report = JSON.parse(fs.readFileSync(out, 'utf8')) as JsonReport;
    const results = new Map(
      report.testResults[0].assertionResults.map((r) => [
        r.title,
        { status: r.status, message: r.failureMessages.join('\n') },
      ]),
    );
    expect(results.get('leaves an unhandled rejection')).toMatchObject({ status: 'failed' });
    expect(results.get('leaves an unhandled rejection')!.message).toMatch(
      /TRIPWIRE: 1 unhandled rejection during the test "leaves an unhandled rejection"[^]*deliberate orphan rejection A/,
    );
    expect(results.get('throws from a timer')!.message).toMatch(
      /TRIPWIRE: 1 uncaught exception during the test "throws from a timer"[^]*deliberate uncaught exception B/,
    );
    expect(results.get('a clean test after them')).toEqual({ status: 'passed', message: '' });
    // A rejection a test leaves behind fails the test during which it happens.
    expect(results.get('the test after a late rejection')!.message).toMatch(/deliberate late rejection C/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}, 60_000);
