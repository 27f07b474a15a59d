/** A 3-server ensemble: the leader dies while contenders loop; exclusion holds and work resumes. */
import { Logger } from '@nestjs/common';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ZkLockError } from '../../lib/index.js';
import { closeLockClients, lockClients, OverlapDetector } from '../fixtures/lock-clients.js';
import { startEnsemble, waitFor, type ZkEnsemble } from '../support/index.js';

let ensemble: ZkEnsemble;

beforeAll(async () => {
  ensemble = await startEnsemble();
});
afterEach(closeLockClients);
afterAll(async () => {
  await ensemble?.stop();
});

describe('ensemble failover', () => {
  it('killing the leader while 8 contenders loop: zero overlaps, work resumes after re-election', async () => {
    Logger.overrideLogger(['error']);
    const clients = await lockClients(8, ensemble.connectString, { sessionTimeout: 4_000 });
    const detector = new OverlapDetector();
    const run = { stop: false };
    const failures: unknown[] = [];
    const loops = clients.map(async ({ locks }) => {
      while (!run.stop) {
        try {
          await locks.withLock(
            '/locks/ensemble',
            async () => {
              detector.enter();
              await new Promise<void>((resolve) => setImmediate(resolve));
              detector.exit();
            },
            { timeout: 15_000 },
          );
        } catch (error) {
          failures.push(error); // a lost session or a timeout during the election: try again
        }
      }
    });

    await waitFor(() => detector.entries >= 50, { timeout: 20_000, message: '50 acquisitions before the kill' });
    const leader = await ensemble.leaderIndex();
    expect(leader).toBeGreaterThanOrEqual(0);
    await ensemble.servers[leader].kill();
    const atKill = detector.entries;
    await ensemble.waitForQuorum();
    await waitFor(() => detector.entries >= atKill + 50, {
      timeout: 30_000,
      message: '50 acquisitions after the kill',
    });
    run.stop = true;
    await Promise.all(loops);
    expect(detector.overlaps).toBe(0);
    expect(detector.maxInside).toBe(1);
    // While the servers re-elect, a waiter may time out or a holder lose its session: typed errors only.
    console.log(`failures during failover: ${failures.map((e) => (e as Error).name).join(', ') || 'none'}`);
    expect(failures.every((error) => error instanceof ZkLockError)).toBe(true);
    Logger.overrideLogger(['log', 'error', 'warn', 'debug', 'verbose', 'fatal']);
  }, 90_000);
});
