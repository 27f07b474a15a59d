/**
 * The packed tarball in real apps: scripts/pack-check.sh builds, packs, installs the tarball into a
 * scratch ESM app per Nest major (12, 11), compiles it with tsc and boots it with node; each app
 * also uses the `zk-lock/health` subpath with @nestjs/terminus of its major.
 * Slow-ish (two npm installs): ~15-30 s with a warm npm cache on an idle machine, 30-45 s with a cold cache.
 * Run alone with `npx vitest run test/package`.
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

describe('packed tarball', () => {
  it(
    'installs, compiles, boots, locks and checks health in a Nest 12 and a Nest 11 app',
    { timeout: 300_000 },
    async () => {
      const { code, output } = await runScript('scripts/pack-check.sh', [], {
        env: { ZK_CONNECT: server.connectString },
        timeoutMs: 280_000,
      });
      // On failure the received object shows the whole output of the script.
      expect({ exitCode: code, output }).toMatchObject({ exitCode: 0 });
      expect(output).toMatch(/^pack-check: nest 12 OK /m);
      expect(output).toMatch(/^pack-check: nest 11 OK /m);
      expect(output).not.toMatch(/FAIL/);
      // With ZK_CONNECT each app took a lock by hand and through a @DistributedLock method.
      expect(output.match(/^pack-check: nest 1[12] LOCK \/pack-check\/lock fencingToken=\d+$/gm)).toHaveLength(2);
      expect(output.match(/^pack-check: nest 1[12] DECORATED \/pack-check\/decorated\/_c_/gm)).toHaveLength(2);
      // Each app also imported zk-lock/health (with @nestjs/terminus of its major): up after locking.
      expect(output.match(/^pack-check: nest 1[12] HEALTH up connected$/gm)).toHaveLength(2);
    },
  );
});
