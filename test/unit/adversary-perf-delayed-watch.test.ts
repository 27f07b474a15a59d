/**
 * Adversary (issue 13's perf work): the delayed watch of a holder's own node (heldLockWatchDelay).
 * Commit d9553e1 put it in one module-wide queue per delay with ONE timer; the last two tests
 * here failed on that (a timer armed under fake timers stuck the queue for the whole process; the
 * timer outlived its locks), and 5b6ea7e went back to a timer per lock. They stay as guards.
 * Pure logic of HeldLock over a fake port (no server): the watch starts after the delay for every
 * lock, never for a released or lost one, and no timer outlives the locks.
 */
import { performance } from 'node:perf_hooks';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { NodeStat, WatchRegistration, ZkPort, ZkSession } from '../../lib/connection/zk-port.js';
import { HeldLock } from '../../lib/lock/lock-handle.js';
import { waitFor } from '../support/index.js';

afterEach(() => {
  vi.useRealTimers();
});

/** A port that answers deletes at once and records the watches asked for. */
function fakePort(live: ZkSession): ZkPort & { watched: string[]; removed: string[] } {
  const watched: string[] = [];
  const removed: string[] = [];
  const unused = () => Promise.reject(new Error('not used'));
  return {
    watched,
    removed,
    currentSession: () => live,
    waitForSession: () => Promise.resolve(live),
    create: unused,
    ensureLockDirectory: unused,
    remove: (path: string) => {
      removed.push(path);
      return Promise.resolve();
    },
    getChildren: unused,
    getData: unused,
    exists: () => Promise.resolve<NodeStat | null>(null),
    setData: unused,
    watch: (path: string): Promise<WatchRegistration | null> => {
      watched.push(path);
      return Promise.resolve({ data: Buffer.alloc(0), cancel: () => undefined });
    },
  };
}

function session(): ZkSession & { end: () => void } {
  const controller = new AbortController();
  return { id: 1n, timeout: 2_000, ended: controller.signal, end: () => controller.abort('closed') };
}

let nodes = 0;
function hold(port: ZkPort, s: ZkSession, delay: number): HeldLock {
  nodes += 1;
  const node = `/locks/delayed/_c_x-lock-${String(nodes).padStart(10, '0')}`;
  return new HeldLock(port, '/locks/delayed', 'write', { node, sequence: nodes, fencingToken: 1n, session: s }, delay);
}

describe('adversary: the delayed own-node watch', () => {
  it('starts for every lock held past the delay, in due order, never for one released or lost before it', async () => {
    const s = session();
    const port = fakePort(s);
    const DELAY = 150;
    const released = hold(port, s, DELAY);
    const kept1 = hold(port, s, DELAY);
    const lostSession = session();
    const lostPort = fakePort(lostSession);
    const lost = hold(lostPort, lostSession, DELAY);
    await released.release(); // the first lock goes before it is due: the others' watches still come
    lostSession.end();
    expect(lost.released).toBe(true);
    const start = performance.now();
    const kept2 = hold(port, s, DELAY); // (with one shared timer: joins while it is armed for the gone first)
    await waitFor(() => port.watched.includes(kept2.node), { timeout: 5_000, message: 'the last lock watches' });
    expect(performance.now() - start).toBeGreaterThanOrEqual(DELAY - 2);
    expect(port.watched).toEqual([kept1.node, kept2.node]);
    expect(lostPort.watched).toEqual([]);
    await kept1.release();
    await kept2.release();
  });

  // Failed on d9553e1: its queue was module state, outliving the app (and the test) that armed its
  // timer. A timer armed under a test's fake timers never fires once they are gone, and the queue
  // then thought it had one: no delayed own-node watch of that delay started in the process any
  // more (a deleted node or a release request never seen by its holder).
  it('a lock held after fake timers were used (and put away) still starts its watch after the delay', async () => {
    const s = session();
    const port = fakePort(s);
    const DELAY = 170;
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const underFakeTimers = hold(port, s, DELAY);
    await underFakeTimers.release();
    vi.useRealTimers();

    const later = hold(port, s, DELAY);
    await waitFor(() => port.watched.includes(later.node), {
      timeout: DELAY + 3_000,
      message: 'the own-node watch of a lock held after fake timers were put away',
    });
    expect(port.watched).toEqual([later.node]); // (the released one never)
    await later.release();
  });

  // Failed on d9553e1: the shared timer stayed armed after every lock had ended (safety invariant 3).
  it('leaves no timer once every lock has ended (released or lost)', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const s = session();
    const port = fakePort(s);
    const DELAY = 190;
    const timersBefore = vi.getTimerCount();
    const a = hold(port, s, DELAY);
    const b = hold(port, s, DELAY);
    expect(vi.getTimerCount()).toBeGreaterThan(timersBefore);
    await a.release();
    s.end(); // b is lost with its session
    expect(b.released).toBe(true);
    expect(vi.getTimerCount()).toBe(timersBefore);
  });
});
