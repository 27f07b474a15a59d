/**
 * Issue 15: a decorated synchronous method silently started returning a Promise. @DistributedLock's
 * type refuses a method that returns neither a Promise nor an Observable, so the mistake fails to
 * compile. Checked twice: by the `@ts-expect-error` lines below (the project's type check fails if
 * one of them compiles), and here, by running tsc on a file of such mistakes and of allowed methods.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Get } from '@nestjs/common';
import { of, type Observable } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { DistributedLock } from '../../lib/index.js';

const root = resolve(import.meta.dirname, '../..');

/** Never called: these classes are only type-checked (by the project's tsc). */
export function typeChecked(): unknown[] {
  class Mistakes {
    // @ts-expect-error -- synchronous: the locked method returns a Promise, not a number
    @DistributedLock('/locks/types/sync')
    count(): number {
      return 1;
    }

    // @ts-expect-error -- a void method: callers could not wait for it
    @DistributedLock('/locks/types/void')
    fireAndForget(): void {}

    @Get('sync')
    // @ts-expect-error -- a synchronous handler: declare it async
    @DistributedLock('/locks/types/handler')
    handler(): string {
      return 'x';
    }
  }

  class Allowed {
    @DistributedLock('/locks/types/async')
    async count(): Promise<number> {
      return 1;
    }

    @DistributedLock('/locks/types/promise')
    later(): Promise<string> {
      return Promise.resolve('x');
    }

    @DistributedLock('/locks/types/observable')
    stream(): Observable<number> {
      return of(1);
    }

    @Get('async')
    @DistributedLock('/locks/types/handler', { key: ({ args }) => String(args[0]) })
    async handler(id: string): Promise<string> {
      return id;
    }
  }
  return [Mistakes, Allowed];
}

/** tsc on `files` (name -> source) in a scratch project that sees this repository's packages. */
function compile(files: Record<string, string>): { status: number | null; output: string } {
  const dir = mkdtempSync(join(tmpdir(), 'nestjs-zk-lock-types-'));
  try {
    symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'), 'dir');
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ type: 'module' }));
    const compilerOptions = {
      target: 'es2022',
      lib: ['es2023', 'esnext.disposable'],
      module: 'nodenext',
      moduleResolution: 'nodenext',
      strict: true,
      experimentalDecorators: true,
      emitDecoratorMetadata: true,
      skipLibCheck: true,
      noEmit: true,
      types: ['node'],
    };
    writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions, files: Object.keys(files) }));
    for (const [name, source] of Object.entries(files)) {
      mkdirSync(join(dir, name, '..'), { recursive: true });
      writeFileSync(join(dir, name), source);
    }
    const tsc = join(root, 'node_modules/typescript/bin/tsc');
    const run = spawnSync(process.execPath, [tsc, '-p', dir, '--pretty', 'false'], { cwd: dir, encoding: 'utf8' });
    return { status: run.status, output: `${run.stdout}${run.stderr}` };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const lib = JSON.stringify(join(root, 'lib/index.js'));

describe('@DistributedLock refuses, at compile time, a method that returns neither a Promise nor an Observable', () => {
  it('a synchronous method fails to compile, saying what it must return; async, Promise and Observable methods compile', () => {
    const { status, output } = compile({
      'mistake.ts': [
        `import { DistributedLock } from ${lib};`,
        'export class Reports {',
        "  @DistributedLock('/locks/reports')",
        '  rebuild(): string {',
        "    return 'done';",
        '  }',
        '}',
      ].join('\n'),
      'allowed.ts': [
        `import { DistributedLock } from ${lib};`,
        "import { of, type Observable } from 'rxjs';",
        'export class Reports {',
        "  @DistributedLock('/locks/reports') async rebuild(): Promise<string> { return 'done'; }",
        "  @DistributedLock('/locks/reports') later(): Promise<number> { return Promise.resolve(1); }",
        "  @DistributedLock('/locks/reports') stream(): Observable<number> { return of(1); }",
        '}',
      ].join('\n'),
    });
    expect(status).not.toBe(0);
    const errors = output.split('\n').filter((line) => /error TS\d+/.test(line));
    expect(errors.length).toBeGreaterThan(0);
    expect(errors.filter((line) => !line.startsWith('mistake.ts(3,4): error TS'))).toEqual([]);
    expect(output).toContain("Type 'string' is not assignable to type 'Observable<unknown> | Promise<unknown>'");
  }, 60_000);
});
