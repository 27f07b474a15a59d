/**
 * LockService.events and the logEvents debug lines, against one real ZooKeeper server: one event
 * per acquisition and one when it ends, with wait and hold times; nothing when nobody listens.
 */
import { Logger, type LoggerService } from '@nestjs/common';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { LockTimeoutError, type LockEvent } from '../../lib/index.js';
import { lockClient, lockClients } from '../fixtures/lock-clients.js';
import { delay, waitFor } from '../support/index.js';
import { useFileServer } from '../fixtures/file-server.js';

const server = useFileServer();

/** Every event of `locks` from now on, until the test's clients close. */
function record(locks: { events: { subscribe(fn: (event: LockEvent) => void): unknown } }): LockEvent[] {
  const seen: LockEvent[] = [];
  locks.events.subscribe((event) => seen.push(event));
  return seen;
}

describe('LockService.events', () => {
  it('acquired then released, with the node, the token, the wait time and the hold time', async () => {
    const [a, b] = await lockClients(2, server.connectString);
    const seen = record(b.locks);
    const held = await a.locks.acquire('/locks/ev');
    const waiting = b.locks.acquire('/locks/ev');
    await waitFor(async () => (await a.locks.inspect('/locks/ev')).queue.length === 1, { message: 'b queued' });
    await delay(50); // a's critical section
    await held.release();
    const lock = await waiting;
    await delay(30); // b's critical section
    await lock.release();
    expect(seen.map((event) => event.type)).toEqual(['acquired', 'released']);
    const [acquired, released] = seen;
    expect(acquired).toMatchObject({ type: 'acquired', path: '/locks/ev', kind: 'write', node: lock.node });
    expect(acquired.type === 'acquired' && acquired.fencingToken).toBe(lock.fencingToken);
    expect(acquired.type === 'acquired' && acquired.waitMs).toBeGreaterThanOrEqual(50);
    expect(released).toMatchObject({ type: 'released', path: '/locks/ev', kind: 'write', node: lock.node });
    expect(released.type === 'released' && released.holdMs).toBeGreaterThanOrEqual(30);
    expect(released.at).toBeGreaterThanOrEqual(acquired.at);
  });

  it('timed-out and aborted waits, each with its wait time; a reentrant acquisition emits nothing', async () => {
    const [a, b] = await lockClients(2, server.connectString);
    const seen = record(b.locks);
    const held = await a.locks.acquire('/locks/ev2');
    await expect(b.locks.acquire('/locks/ev2', { timeout: 200 })).rejects.toBeInstanceOf(LockTimeoutError);
    const controller = new AbortController();
    const aborted = b.locks.acquire('/locks/ev2', { signal: controller.signal }).catch((e: unknown) => e);
    await waitFor(async () => (await a.locks.inspect('/locks/ev2')).queue.length === 1, { message: 'b queued' });
    controller.abort();
    await aborted;
    await held.release();
    await b.locks.withLock('/locks/ev2', () => b.locks.withLock('/locks/ev2', () => undefined));
    expect(seen.map((event) => `${event.type} ${event.path}`)).toEqual([
      'timed-out /locks/ev2',
      'aborted /locks/ev2',
      'acquired /locks/ev2',
      'released /locks/ev2',
    ]);
    expect(seen[0].type === 'timed-out' && seen[0].waitMs).toBeGreaterThanOrEqual(200);
  });

  it('lost: the node deleted by someone else, with the reason', async () => {
    const [a, intruder] = await lockClients(2, server.connectString, { heldLockWatchDelay: 0 });
    const seen = record(a.locks);
    const held = await a.locks.acquire('/locks/ev3');
    await waitFor(() => a.connection.stats().watches === 1, { message: 'the holder watches its node' });
    await intruder.connection.remove(held.node);
    await waitFor(() => held.signal.aborted, { message: 'the loss noticed' });
    await held.release();
    expect(seen.map((event) => event.type)).toEqual(['acquired', 'lost']);
    expect(seen[1]).toMatchObject({ type: 'lost', reason: 'node-deleted', node: held.node });
  });

  it('read, write and lease kinds, and one event per local holder when coalescing', async () => {
    const { locks } = await lockClient(server.connectString, { coalesce: true });
    const seen = record(locks);
    await locks.withLock('/locks/ev4', () => undefined, { mode: 'read' });
    await locks.withLock('/locks/ev4', () => undefined, { leases: 2 });
    await Promise.all([1, 2, 3].map(() => locks.withLock('/locks/ev5', () => delay(1))));
    expect(seen.map((event) => `${event.type} ${event.kind} ${event.path}`)).toEqual([
      'acquired read /locks/ev4',
      'released read /locks/ev4',
      'acquired lease /locks/ev4',
      'released lease /locks/ev4',
      ...Array.from({ length: 3 }, () => ['acquired write /locks/ev5', 'released write /locks/ev5']).flat(),
    ]);
  });
});

describe('logEvents', () => {
  const lines: string[] = [];
  const capture: LoggerService = {
    log: () => undefined,
    error: () => undefined,
    warn: () => undefined,
    debug: (message: unknown, context?: unknown) => {
      if (context === 'LockService') lines.push(String(message));
    },
  };
  beforeAll(() => Logger.overrideLogger(capture));
  afterAll(() => Logger.overrideLogger(new Logger()));
  afterEach(() => {
    lines.length = 0;
  });

  it('writes one debug line per event through Nest Logger when on', async () => {
    const { locks } = await lockClient(server.connectString, { logEvents: true });
    await locks.withLock('/locks/log', () => undefined);
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^acquired write lock \/locks\/log after [\d.]+ ms \(token \d+\)$/);
    expect(lines[1]).toMatch(/^released write lock \/locks\/log after holding it [\d.]+ ms$/);
  });

  it('is quiet by default', async () => {
    const { locks } = await lockClient(server.connectString);
    await locks.withLock('/locks/log', () => undefined);
    await expect(locks.acquire('/locks/log', { timeout: 0 })).resolves.toBeDefined();
    expect(lines).toEqual([]);
  });
});

describe('timeout 0', () => {
  it('takes a free lock at once, and times out at once on a held one', async () => {
    const [a, b] = await lockClients(2, server.connectString);
    const held = await a.locks.acquire('/locks/zero', { timeout: 0 });
    const started = Date.now();
    await expect(b.locks.acquire('/locks/zero', { timeout: 0 })).rejects.toBeInstanceOf(LockTimeoutError);
    expect(Date.now() - started).toBeLessThan(2_000);
    expect((await a.locks.inspect('/locks/zero')).queue).toEqual([]);
    await held.release();
  });
});
