/**
 * README: "A short disconnection (a server restart, a leader election) loses nothing: the session
 * and its locks survive if the client reconnects in time." Against a real 3-server ensemble whose
 * leader is killed while a lock is held and another session waits for it.
 */
import { Logger } from '@nestjs/common';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { closeLockClients, lockClient } from '../fixtures/lock-clients.js';
import { startEnsemble, waitFor, type ZkEnsemble } from '../support/index.js';

let ensemble: ZkEnsemble;

beforeAll(async () => {
  ensemble = await startEnsemble();
});
afterEach(closeLockClients);
afterAll(async () => {
  await ensemble?.stop();
});

describe('a leader election', () => {
  it('loses nothing: the holder keeps its session and its lock, the waiter keeps waiting, then gets it', async () => {
    Logger.overrideLogger(['error']);
    try {
      // The longest session timeout the test servers grant (20 ticks of 200 ms): an election takes
      // a few ticks.
      const holder = await lockClient(ensemble.connectString, { sessionTimeout: 4_000 });
      const waiter = await lockClient(ensemble.connectString, { sessionTimeout: 4_000 });
      const held = await holder.locks.acquire('/locks/election');
      const session = holder.connection.currentSession();
      const states: string[] = [];
      holder.connection.state$.subscribe((event) => states.push(event.state));
      let acquiredAt = 0;
      const waiting = waiter.locks.acquire('/locks/election', { timeout: 30_000 }).then((lock) => {
        acquiredAt = performance.now();
        return lock;
      });
      await waitFor(async () => (await holder.locks.inspect('/locks/election')).queue.length === 1, {
        message: 'the waiter queued',
      });

      const leader = await ensemble.leaderIndex();
      expect(leader).toBeGreaterThanOrEqual(0);
      await ensemble.servers[leader].kill();
      await ensemble.waitForQuorum();
      await waitFor(() => holder.connection.state === 'connected' && waiter.connection.state === 'connected', {
        timeout: 15_000,
        message: 'both clients connected again',
      });

      // The holder was cut off (every member drops its clients while it elects)...
      expect(states).toContain('suspended');
      // ...and nothing was lost: same session, no loss signal, no expiry; the lock is still ours alone.
      expect(holder.connection.currentSession()).toBe(session);
      expect(held.signal.aborted).toBe(false);
      expect(states).not.toContain('expired');
      const info = await holder.locks.inspect('/locks/election');
      expect(info.holder?.node).toBe(held.node.split('/').pop());
      expect(info.queue).toHaveLength(1);
      expect(acquiredAt).toBe(0);

      const releasedAt = performance.now();
      await held.release();
      const next = await waiting;
      expect(acquiredAt).toBeGreaterThanOrEqual(releasedAt);
      expect(next.fencingToken).toBeGreaterThan(held.fencingToken);
      await next.release();
    } finally {
      Logger.overrideLogger(['log', 'error', 'warn', 'debug', 'verbose', 'fatal']);
    }
  }, 90_000);
});
