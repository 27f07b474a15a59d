/**
 * Each mutant of test/mutants/port-mutants.ts really breaks the lock on a real server, and the
 * same scenario on the real lock shows the promise holding (so that a test that passes on a
 * mutant is known not to test what it claims, not the mutant to be inert).
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { ZooKeeperError, type LockHandle } from '../../lib/index.js';
import { expireSession } from '../../chaos/fault-tools.js';
import { lockClient, type LockClient } from '../fixtures/lock-clients.js';
import { useFileServer } from '../fixtures/file-server.js';
import { TcpProxy, waitFor } from '../support/index.js';
import { applyMutant, MUTANTS, type MutantName } from './port-mutants.js';

const server = useFileServer();

/** A client, patched as `mutant` unless it is 'real'. */
async function client(mutant: MutantName | 'real'): Promise<LockClient> {
  const made = await lockClient(server.connectString);
  if (mutant !== 'real') applyMutant(made.connection, mutant);
  return made;
}

it('lists every mutant, and applyMutant can be undone', async () => {
  expect(MUTANTS).toEqual(['no-exclusion', 'herd', 'late-release', 'flat-token', 'deaf-loss']);
  const { connection } = await lockClient(server.connectString);
  const undo = applyMutant(connection, 'no-exclusion');
  expect(Object.hasOwn(connection, 'create')).toBe(true);
  undo();
  expect(Object.hasOwn(connection, 'create')).toBe(false);
});

describe('no-exclusion', () => {
  for (const mutant of ['real', 'no-exclusion'] as const) {
    it(`${mutant}: a second contender ${mutant === 'real' ? 'is refused' : 'holds too'} while the first holds`, async () => {
      const [a, b] = [await client(mutant), await client(mutant)];
      const first = await a.locks.acquire('/mutants/exclusion');
      const second = await b.locks.tryAcquire('/mutants/exclusion');
      // Two holders at once on the mutant: both handles live.
      expect(second !== null && !second.released && !first.released).toBe(mutant === 'no-exclusion');
      await second?.release();
      await first.release();
    });
  }

  it('no-exclusion: a semaphore of 1 admits two holders', async () => {
    const [a, b] = [await client('no-exclusion'), await client('no-exclusion')];
    const first = await a.locks.acquire('/mutants/semaphore', { leases: 1 });
    const second = await b.locks.tryAcquire('/mutants/semaphore', { leases: 1 });
    expect(second).not.toBeNull();
    await second!.release();
    await first.release();
  });
});

describe('herd', () => {
  /**
   * A holder and 4 waiters queued in order; the holder releases, the first waiter takes the lock
   * and keeps it. Then the waiters' notifications are counted: a reply on each waiter's session
   * comes after any notification of the delete, which the server applied before that request.
   */
  async function wokenByOneRelease(mutant: 'real' | 'herd'): Promise<number> {
    const holder = await client('real');
    const waiters = await Promise.all([1, 2, 3, 4].map(() => client(mutant)));
    const path = `/mutants/herd-${mutant}`;
    const held = await holder.locks.acquire(path);
    const attempts: Promise<LockHandle>[] = [];
    for (const [index, waiter] of waiters.entries()) {
      attempts.push(waiter.locks.acquire(path, { timeout: 20_000 }));
      await waitFor(() => waiter.connection.stats().watches === 1, { message: `waiter ${index + 1} watches` });
    }
    await held.release();
    const next = await attempts[0];
    for (const waiter of waiters) await waiter.connection.exists('/');
    const woken = waiters.reduce((sum, waiter) => sum + waiter.connection.stats().notifications, 0);
    await next.release();
    for (const attempt of attempts.slice(1)) await (await attempt).release();
    return woken;
  }

  it('real: one release wakes one waiter of 4', async () => {
    expect(await wokenByOneRelease('real')).toBe(1);
  });

  it('herd: one release wakes all 4 waiters', async () => {
    expect(await wokenByOneRelease('herd')).toBe(4);
  });
});

describe('late-release', () => {
  for (const mutant of ['real', 'late-release'] as const) {
    it(`${mutant}: the node is ${mutant === 'real' ? 'gone' : 'still there'} when release() resolves`, async () => {
      const a = await client(mutant);
      const lock = await a.locks.acquire('/mutants/late');
      await lock.release();
      // The same session: requests are answered in order, so this sees any delete sent before it.
      const stat = await a.connection.exists(lock.node);
      expect(stat !== null).toBe(mutant === 'late-release');
      await waitFor(async () => (await a.connection.exists(lock.node)) === null, { message: 'the (late) delete' });
    });
  }
});

describe('flat-token', () => {
  for (const mutant of ['real', 'flat-token'] as const) {
    it(`${mutant}: the token ${mutant === 'real' ? 'grows' : 'does not grow'} across a re-created directory`, async () => {
      const a = await client(mutant);
      const path = `/mutants/flat-${mutant}`;
      const tokens: bigint[] = [];
      for (let round = 0; round < 2; round += 1) {
        const lock = await a.locks.acquire(path);
        tokens.push(lock.fencingToken);
        await lock.release();
        await a.connection.remove(path).catch((error: unknown) => {
          if (!(error instanceof ZooKeeperError && error.zkCode === 'NO_NODE')) throw error;
        });
      }
      expect(tokens[1] > tokens[0]).toBe(mutant === 'real');
    });
  }
});

describe('deaf-loss', () => {
  for (const mutant of ['real', 'deaf-loss'] as const) {
    it(`${mutant}: an expired session ${mutant === 'real' ? 'aborts' : 'never aborts'} the holder's signal`, async () => {
      // Through a proxy that refuses A's reconnects while another client takes its session over
      // and closes it (else A may win its session back first).
      const proxy = await TcpProxy.start({ host: server.host, port: server.port });
      onTestFinished(() => proxy.close());
      const a = await lockClient(proxy.connectString);
      if (mutant !== 'real') applyMutant(a.connection, mutant);
      const b = await client('real');
      const lock: LockHandle = await a.locks.acquire('/mutants/deaf');
      const signal = lock.signal;
      const sessionBefore = a.connection.currentSession()!.id;
      proxy.refuse();
      try {
        expect(await expireSession(server.connectString, a.connection.sessionCredentials()!)).toBe('closed');
      } finally {
        proxy.restore();
      }
      const next = await b.locks.acquire('/mutants/deaf', { timeout: 10_000 }); // the lock moved on
      await waitFor(() => a.connection.currentSession() && a.connection.currentSession()!.id !== sessionBefore, {
        message: 'the holder has a new session',
      });
      expect(signal.aborted).toBe(mutant === 'real');
      await next.release();
    });
  }
});
