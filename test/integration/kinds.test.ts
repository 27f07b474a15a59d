/**
 * Read/write locks, semaphores and multi-locks against one real ZooKeeper server: exclusion,
 * sharing, FIFO fairness, no herd (notifications per waiter woken), clean give-up, inspect.
 */
import { describe, expect, it } from 'vitest';
import {
  InvalidOptionsError,
  LockAbortedError,
  LockLostError,
  LockTimeoutError,
  type LockHandle,
} from '../../lib/index.js';
import { childrenOf, Gathering, lockClient, lockClients, type LockClient } from '../fixtures/lock-clients.js';
import { delay, waitFor, watchCount } from '../support/index.js';
import { useFileServer } from '../fixtures/file-server.js';

const server = useFileServer();

function children(path: string): Promise<string[]> {
  return childrenOf(server.connectString, path);
}

/** Notifications received so far by each client. */
function notifications(clients: LockClient[]): number[] {
  return clients.map(({ connection }) => connection.stats().notifications);
}
function sequence(lock: LockHandle): number {
  return Number(lock.node.slice(-10));
}
function sum(values: number[]): number {
  return values.reduce((a, b) => a + b, 0);
}

/** Counts who is inside, by kind, and records every violation of read/write exclusion. */
class ReadWriteMonitor {
  readers = 0;
  writers = 0;
  maxReaders = 0;
  violations: string[] = [];
  enter(kind: 'read' | 'write'): void {
    if (kind === 'read') {
      this.readers += 1;
      this.maxReaders = Math.max(this.maxReaders, this.readers);
      if (this.writers > 0) this.violations.push('a reader entered while a writer was inside');
    } else {
      this.writers += 1;
      if (this.writers > 1) this.violations.push('two writers inside');
      if (this.readers > 0) this.violations.push('a writer entered while readers were inside');
    }
  }
  exit(kind: 'read' | 'write'): void {
    if (kind === 'read') this.readers -= 1;
    else this.writers -= 1;
  }
}

describe('read/write locks', () => {
  it('8 readers and 2 writers in separate sessions: writers exclude everyone, readers overlap each other', async () => {
    const clients = await lockClients(10, server.connectString);
    const monitor = new ReadWriteMonitor();
    const counts = { read: 0, write: 0 };
    const readersMeet = new Gathering(2); // the first two readers inside wait for each other
    await Promise.all(
      clients.map(async ({ locks }, index) => {
        const kind = index < 8 ? 'read' : 'write';
        if (kind === 'write') await readersMeet.met; // then the writers join in
        for (let i = 0; i < 12; i += 1) {
          await locks.withLock(
            '/locks/rw',
            async (lock) => {
              expect(lock.kind).toBe(kind);
              monitor.enter(kind);
              if (kind === 'read') await readersMeet.arrive();
              await delay(kind === 'read' ? 4 : 2); // the critical section's work
              monitor.exit(kind);
              counts[kind] += 1;
            },
            { mode: kind },
          );
        }
      }),
    );
    expect(monitor.violations).toEqual([]);
    expect(counts).toEqual({ read: 96, write: 24 });
    expect(monitor.maxReaders).toBeGreaterThanOrEqual(2);
    expect(await children('/locks/rw')).toEqual([]);
  }, 120_000);

  it('a writer queued behind readers gets the lock before readers that arrived after it (FIFO)', async () => {
    const [r1, w, r3, r4] = await lockClients(4, server.connectString);
    const reading = await r1.locks.acquireRead('/locks/fifo');
    // A second reader while only readers hold: no wait.
    const alsoReading = await r4.locks.acquireRead('/locks/fifo', { timeout: 0 });
    const order: string[] = [];
    const writer = w.locks.acquireWrite('/locks/fifo').then((lock) => (order.push('writer'), lock));
    await waitFor(async () => (await children('/locks/fifo')).length === 3, { message: 'the writer queued' });
    const lateReader = r3.locks.acquireRead('/locks/fifo').then((lock) => (order.push('late reader'), lock));
    await waitFor(async () => (await children('/locks/fifo')).length === 4, { message: 'the late reader queued' });
    // The late reader waits for the writer, not for the readers ahead: it watches the writer's node.
    await waitFor(() => r3.connection.stats().watches === 1, { message: 'the late reader watches' });
    expect(order).toEqual([]);
    await reading.release();
    await alsoReading.release();
    const writeLock = await writer;
    expect(order).toEqual(['writer']);
    await writeLock.release();
    await (await lateReader).release();
    expect(order).toEqual(['writer', 'late reader']);
    expect(await children('/locks/fifo')).toEqual([]);
  });

  it('no herd: a write release wakes exactly the readers it unblocks; a reader release wakes nobody else', async () => {
    const [writerClient, ...readerClients] = await lockClients(6, server.connectString);
    const write = await writerClient.locks.acquireWrite('/locks/rw-herd');
    const reads = readerClients.map((client) => client.locks.acquireRead('/locks/rw-herd'));
    await waitFor(async () => (await children('/locks/rw-herd')).length === 6, { message: '5 readers queued' });
    // Five readers watch the one writer: one watched path.
    await waitFor(async () => (await watchCount(server)) === 5, { message: '5 reader watches' });
    const before = notifications(readerClients);
    await write.release();
    const held = (await Promise.all(reads)).toSorted((x, y) => sequence(x) - sequence(y));
    const woken = notifications(readerClients).map((n, i) => n - before[i]);
    expect(woken).toEqual([1, 1, 1, 1, 1]); // one notification per reader woken, all of them unblocked

    // Now a writer queues behind the five readers; it watches only the last one.
    const writer2 = lockClient(server.connectString);
    const { locks: writerLocks, connection: writerConnection } = await writer2;
    const waiting = writerLocks.acquireWrite('/locks/rw-herd');
    await waitFor(() => writerConnection.stats().watches === 1, { message: 'the writer watches its predecessor' });
    const writerBefore = writerConnection.stats().notifications;
    for (const lock of held.slice(0, 4)) await lock.release(); // not its predecessor: no wake-up
    expect(writerConnection.stats().notifications).toBe(writerBefore);
    await held[4].release();
    await (await waiting).release();
    expect(writerConnection.stats().notifications).toBe(writerBefore + 1);
  });

  it('reentrancy: a write lock covers nested reads; a read lock cannot be upgraded', async () => {
    const { locks } = await lockClient(server.connectString);
    await locks.withLock('/locks/rw-nest', async (outer) => {
      const nested = await locks.acquireRead('/locks/rw-nest', { timeout: 0 });
      expect(nested.node).toBe(outer.node);
      expect(nested.kind).toBe('write');
    });
    await locks.withLock(
      '/locks/rw-nest',
      async () => {
        const error = await locks.acquireWrite('/locks/rw-nest').catch((e: unknown) => e);
        expect(error).toBeInstanceOf(InvalidOptionsError);
        expect((error as Error).message).toContain('cannot be upgraded');
        expect((await children('/locks/rw-nest')).length).toBe(1); // nothing was queued
      },
      { mode: 'read' },
    );
    expect(await children('/locks/rw-nest')).toEqual([]);
  });

  it('inspect shows the kind of every node, all concurrent readers as holders, and the writer queued', async () => {
    const [a, b, c] = await lockClients(3, server.connectString);
    const r1 = await a.locks.acquireRead('/locks/rw-inspect');
    const r2 = await b.locks.acquireRead('/locks/rw-inspect');
    const waiting = c.locks.acquireWrite('/locks/rw-inspect');
    await waitFor(async () => (await a.locks.inspect('/locks/rw-inspect')).queue.length === 1);
    const info = await a.locks.inspect('/locks/rw-inspect');
    expect(info.holders.map((owner) => owner.kind)).toEqual(['read', 'read']);
    expect(info.holders.map((owner) => owner.node)).toEqual([r1.node, r2.node].map((n) => n.split('/').pop()));
    expect(info.holder).toEqual(info.holders[0]);
    expect(info.queue.map((owner) => owner.kind)).toEqual(['write']);
    expect(info.holders[0].node).toMatch(/__READ__\d{10}$/);
    expect(info.queue[0].node).toMatch(/-__WRIT__\d{10}$/); // mode 'write': Curator's write-lock name
    await r1.release();
    await r2.release();
    await (await waiting).release();
  });
});

describe('semaphore (leases)', () => {
  it('N = 3, 10 contenders in separate sessions: never more than 3 inside, and 3 at once at some point', async () => {
    const clients = await lockClients(10, server.connectString);
    let inside = 0;
    let maxInside = 0;
    let entries = 0;
    const threeMeet = new Gathering(3); // the first three holders wait for each other
    await Promise.all(
      clients.map(async ({ locks }) => {
        for (let i = 0; i < 6; i += 1) {
          await locks.withLock(
            '/locks/sem',
            async (lease) => {
              expect(lease.kind).toBe('lease');
              inside += 1;
              entries += 1;
              maxInside = Math.max(maxInside, inside);
              await threeMeet.arrive();
              await delay(5); // the critical section's work
              inside -= 1;
            },
            { leases: 3 },
          );
        }
      }),
    );
    expect(entries).toBe(60);
    expect(maxInside).toBe(3);
    expect(await children('/locks/sem/leases')).toEqual([]);
    expect(await children('/locks/sem/locks')).toEqual([]);
  }, 120_000);

  it('a full semaphore: tryAcquire gets null, a timeout leaves no lease and no watch, a release admits one waiter', async () => {
    const clients = await lockClients(4, server.connectString);
    const [a, b, c, d] = clients;
    const held = [
      await a.locks.acquire('/locks/sem2', { leases: 2 }),
      await b.locks.acquire('/locks/sem2', { leases: 2 }),
    ];
    expect(held[1].fencingToken).toBeGreaterThan(held[0].fencingToken);
    expect(await c.locks.tryAcquire('/locks/sem2', { leases: 2 })).toBeNull();
    const attempt = c.locks.acquire('/locks/sem2', { leases: 2, timeout: 1_500 }).catch((e: unknown) => e);
    // While it waits: its lease and inner-lock node exist, and it watches both held leases.
    await waitFor(() => c.connection.stats().watches === 2, {
      timeout: 1_400,
      interval: 10,
      message: 'the waiter watches both leases',
    });
    expect((await children('/locks/sem2/leases')).length).toBe(3);
    expect(await watchCount(server)).toBe(2);
    const error = await attempt;
    expect(error).toBeInstanceOf(LockTimeoutError);
    expect((await children('/locks/sem2/leases')).length).toBe(2);
    expect(await children('/locks/sem2/locks')).toEqual([]);
    expect(c.connection.stats().watches).toBe(0);
    await waitFor(async () => (await watchCount(server)) === 0, { message: 'no server watch left' });

    // One waiter: it holds the inner lock and watches the two leases; one release wakes it alone.
    const waiting = d.locks.acquire('/locks/sem2', { leases: 2 });
    await waitFor(() => d.connection.stats().watches === 2, { message: 'the waiter watches both leases' });
    const before = notifications(clients);
    await held[0].release();
    const third = await waiting;
    expect(third.fencingToken).toBeGreaterThan(held[1].fencingToken);
    expect(notifications(clients).map((n, i) => n - before[i])).toEqual([0, 0, 0, 1]);
    await waitFor(async () => (await watchCount(server)) === 0, { message: 'the other lease watch removed' });
    const info = await a.locks.inspect('/locks/sem2');
    expect(info.holders.map((owner) => owner.kind)).toEqual(['lease', 'lease']);
    expect(info.holders.map((owner) => (owner.owner as { leases: number }).leases)).toEqual([2, 2]);
    await held[1].release();
    await third.release();
    expect(await children('/locks/sem2/leases')).toEqual([]);
  });

  it('an aborted wait for a lease leaves no lease, no inner-lock node and no watch', async () => {
    const [a, b, c] = await lockClients(3, server.connectString);
    const held = await a.locks.acquire('/locks/sem-abort', { leases: 1 });
    const first = new AbortController();
    const second = new AbortController();
    // b holds the inner lock and waits for the lease; c waits for the inner lock behind it
    const waitingForLease = b.locks
      .acquire('/locks/sem-abort', { leases: 1, signal: first.signal })
      .catch((e: unknown) => e);
    await waitFor(() => b.connection.stats().watches === 1, { message: 'b watches the held lease' });
    const waitingForInner = c.locks
      .acquire('/locks/sem-abort', { leases: 1, signal: second.signal })
      .catch((e: unknown) => e);
    await waitFor(async () => (await children('/locks/sem-abort/locks')).length === 2, { message: 'c queued' });
    first.abort();
    second.abort();
    expect(await waitingForLease).toBeInstanceOf(LockAbortedError);
    expect(await waitingForInner).toBeInstanceOf(LockAbortedError);
    expect(await children('/locks/sem-abort/leases')).toEqual([held.node.split('/').pop()]);
    expect(await children('/locks/sem-abort/locks')).toEqual([]);
    expect([b, c].map(({ connection }) => connection.stats().watches)).toEqual([0, 0]);
    await waitFor(async () => (await watchCount(server)) === 0, { message: 'no server watch left' });
    await held.release();
  });

  it('inspect shows the leases held, the lease being waited for, and the contenders behind it', async () => {
    const [a, b, c] = await lockClients(3, server.connectString);
    const held = await a.locks.acquire('/locks/sem3', { leases: 1 });
    const waiting = [b, c].map((client) => client.locks.acquire('/locks/sem3', { leases: 1 }));
    await waitFor(async () => (await a.locks.inspect('/locks/sem3')).queue.length === 2, { message: 'two waiters' });
    const info = await a.locks.inspect('/locks/sem3');
    expect(info.holders).toHaveLength(1);
    expect(info.holders[0].node).toBe(held.node.split('/').pop());
    expect(info.queue.map((owner) => owner.kind)).toEqual(['lease', 'lease']);
    await held.release();
    // Whichever waiter took the inner lock first gets the lease; the other gets it after.
    const first = await Promise.race(waiting);
    await first.release();
    for (const lease of await Promise.all(waiting)) await lease.release();
  });

  it('notifications per acquisition stay at two (one inner-lock hand-off, one lease release), each to one waiter', async () => {
    const clients = await lockClients(8, server.connectString);
    const before = sum(notifications(clients));
    let acquisitions = 0;
    await Promise.all(
      clients.map(async ({ locks }) => {
        for (let i = 0; i < 10; i += 1) {
          await locks.withLock('/locks/sem-count', () => delay(2).then(() => (acquisitions += 1)), { leases: 2 });
        }
      }),
    );
    const perAcquisition = (sum(notifications(clients)) - before) / acquisitions;
    expect(acquisitions).toBe(80);
    expect(perAcquisition).toBeLessThanOrEqual(2.2);
  }, 120_000);
});

describe('multi-lock', () => {
  it('two callers taking {A, B} and {B, A} in a loop finish without deadlock and never overlap', async () => {
    const [x, y] = await lockClients(2, server.connectString);
    let inside = 0;
    let overlaps = 0;
    const sections = { x: 0, y: 0 };
    const run = async (client: LockClient, name: 'x' | 'y', paths: string[]) => {
      for (let i = 0; i < 25; i += 1) {
        await client.locks.withLock(paths, async (locks) => {
          expect(locks.paths).toEqual(['/locks/multi/a', '/locks/multi/b']);
          inside += 1;
          if (inside > 1) overlaps += 1;
          await delay(1);
          inside -= 1;
          sections[name] += 1;
        });
      }
    };
    await Promise.all([
      run(x, 'x', ['/locks/multi/a', '/locks/multi/b']),
      run(y, 'y', ['/locks/multi/b', '/locks/multi/a']),
    ]);
    expect(sections).toEqual({ x: 25, y: 25 }); // every section ran: nothing stuck, nothing skipped
    expect(overlaps).toBe(0);
    expect(await children('/locks/multi/a')).toEqual([]);
    expect(await children('/locks/multi/b')).toEqual([]);
  }, 120_000);

  it('a timeout part-way releases what was taken: no node left behind', async () => {
    const [holder, caller] = await lockClients(2, server.connectString);
    const b = await holder.locks.acquire('/locks/multi2/b');
    const attempt = caller.locks
      .acquireAll(['/locks/multi2/b', '/locks/multi2/a'], { timeout: 1_500 })
      .catch((e: unknown) => e);
    // Part-way: a (first in the global order) is taken, and the caller waits for b, watching it.
    await waitFor(
      async () => caller.connection.stats().watches === 1 && (await children('/locks/multi2/a')).length === 1,
      {
        timeout: 1_400,
        interval: 10,
        message: 'a taken, b waited for',
      },
    );
    expect(await children('/locks/multi2/b')).toHaveLength(2);
    const error = await attempt;
    expect(error).toBeInstanceOf(LockTimeoutError);
    expect((error as LockTimeoutError).path).toBe('/locks/multi2/b');
    expect((error as LockTimeoutError).timeout).toBe(1_500);
    expect(await children('/locks/multi2/a')).toEqual([]);
    expect(await children('/locks/multi2/b')).toEqual([b.node.split('/').pop()]);
    expect(caller.connection.stats().watches).toBe(0);
    await b.release();
  });

  it('the handle: tokens per path, one signal for all (aborts when any part is lost), release frees every part', async () => {
    // heldLockWatchDelay 0: the parts watch their own nodes at once, so a deletion is seen.
    const [a, other, admin] = await lockClients(3, server.connectString, { heldLockWatchDelay: 0 });
    const paths = ['/locks/m3/x', '/locks/m3/y'];
    const tokenOf = async (path: string) => {
      const lock = await other.locks.acquire(path);
      await lock.release();
      return lock.fencingToken;
    };
    const earlier = [await tokenOf(paths[0]), await tokenOf(paths[1])];
    const all = await a.locks.acquireAll(['/locks/m3/y', '/locks/m3/x', '/locks/m3/y']);
    expect(all.paths).toEqual(paths);
    expect(all.locks.map((lock: LockHandle) => lock.path)).toEqual(all.paths);
    // Each part has its own lock's token: above that lock's earlier holder, below its next one.
    expect(all.locks.map((lock, i) => lock.fencingToken > earlier[i])).toEqual([true, true]);
    expect(all.locks[0].fencingToken).not.toBe(all.locks[1].fencingToken);
    expect(await other.locks.tryAcquire('/locks/m3/x')).toBeNull();
    expect(await other.locks.tryAcquire('/locks/m3/y')).toBeNull();
    expect(all.signal.aborted).toBe(false);

    // One part lost (its node deleted by someone else): the one signal aborts, with that part's loss.
    await waitFor(() => a.connection.stats().watches === 2, { message: 'both parts watch their nodes' });
    await admin.connection.remove(all.locks[1].node);
    await waitFor(() => all.signal.aborted, { message: 'the multi-lock signal aborts' });
    expect(all.signal.reason).toBeInstanceOf(LockLostError);
    expect(all.signal.reason).toMatchObject({ path: '/locks/m3/y', reason: 'node-deleted' });
    expect(all.locks[0].signal.aborted).toBe(false); // the other part is still held...
    expect(all.released).toBe(true); // ...but the multi-lock as a whole is gone
    await all.release();
    expect(await children('/locks/m3/x')).toEqual([]);

    const later = [await tokenOf(paths[0]), await tokenOf(paths[1])];
    expect(all.locks.map((lock, i) => lock.fencingToken < later[i])).toEqual([true, true]);
  });
});

describe('bad input', () => {
  it.each([
    [{ leases: 0 }, 'leases', 'must be a whole number from 1 to 10000'],
    [{ leases: 2.5 }, 'leases', 'must be a whole number from 1 to 10000'],
    [{ leases: 10_001 }, 'leases', 'must be a whole number from 1 to 10000'],
    [{ leases: '3' }, 'leases', 'must be a whole number from 1 to 10000'],
    [{ mode: 'exclusive' }, 'mode', "must be 'read' or 'write'"],
    [{ mode: 'read', leases: 2 }, 'mode', 'a semaphore (leases) has no read mode: leave mode unset'],
  ])(
    '%j is refused with an error naming the option and the rule, and creates nothing',
    async (options, option, rule) => {
      const { locks } = await lockClient(server.connectString);
      const error = await locks.acquire('/locks/bad-input', options as never).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(InvalidOptionsError);
      expect(error).toMatchObject({ option, rule });
      expect((error as Error).message).toContain(option);
      expect(await children('/locks')).not.toContain('bad-input');
    },
  );

  it.each([[[]], ['not an array'], [['/ok', 'no-slash']]])(
    'acquireAll(%j) is refused and creates nothing',
    async (paths) => {
      const { locks } = await lockClient(server.connectString);
      const error = await locks.acquireAll(paths as never).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(Error);
      expect((error as Error).message).toMatch(/paths|path/);
      expect(await children('/ok')).toEqual([]);
    },
  );
});

describe('revocation (cooperative)', () => {
  it('requestRelease asks the holder: its signal aborts with reason revoked, the node stays until it releases', async () => {
    const [holder, asker] = await lockClients(2, server.connectString);
    const events: string[] = [];
    holder.locks.events.subscribe((event) => events.push(event.type === 'lost' ? `lost ${event.reason}` : event.type));
    const held = await holder.locks.acquire('/locks/revoke', { revocable: true });
    await waitFor(() => holder.connection.stats().watches === 1, { message: 'the holder watches its node' });
    const waiting = asker.locks.acquire('/locks/revoke');
    await waitFor(async () => (await children('/locks/revoke')).length === 2, { message: 'the asker queued' });
    expect(await asker.locks.requestRelease('/locks/revoke')).toBe(1);
    await waitFor(() => held.signal.aborted, { message: 'the holder told' });
    expect(held.signal.reason).toMatchObject({ name: 'LockLostError', reason: 'revoked', path: '/locks/revoke' });
    expect(await children('/locks/revoke')).toContain(held.node.split('/').pop()); // still ours
    await held.release();
    const next = await waiting;
    expect(next.signal.aborted).toBe(false);
    await next.release();
    expect(events).toEqual(['acquired', 'lost revoked']);
    expect(await asker.locks.requestRelease('/locks/revoke')).toBe(0); // free: nobody to ask
  });

  it('asks every reader, and a lease holder, whose own-node watch is armed (heldLockWatchDelay 0)', async () => {
    const [a, b, asker] = await lockClients(3, server.connectString, { heldLockWatchDelay: 0 });
    const reads = [await a.locks.acquireRead('/locks/revoke-rw'), await b.locks.acquireRead('/locks/revoke-rw')];
    const lease = await a.locks.acquire('/locks/revoke-sem', { leases: 2 });
    await waitFor(() => a.connection.stats().watches === 2 && b.connection.stats().watches === 1, {
      message: 'the holders watch their nodes',
    });
    expect(await asker.locks.requestRelease('/locks/revoke-rw')).toBe(2);
    expect(await asker.locks.requestRelease('/locks/revoke-sem')).toBe(1);
    await waitFor(() => [...reads, lease].every((lock) => lock.signal.aborted), { message: 'all told' });
    expect([...reads, lease].map((lock) => (lock.signal.reason as { reason: string }).reason)).toEqual([
      'revoked',
      'revoked',
      'revoked',
    ]);
    for (const lock of [...reads, lease]) await lock.release();
    expect(await children('/locks/revoke-rw')).toEqual([]);
    expect(await children('/locks/revoke-sem/leases')).toEqual([]);
  });
});

describe('lock directories are containers', () => {
  it('the server deletes a lock directory (and its emptied parents) once its last node is gone', async () => {
    const { locks, connection } = await lockClient(server.connectString);
    // ensurePath (public: e.g. for a chroot) makes persistent nodes, which must outlive the check below
    await connection.ensurePath('/persistent/app');
    await connection.remove(await connection.create('/persistent/app/x-', Buffer.alloc(0), 'ephemeral-sequential'));
    await locks.withLock('/locks/containers/order/42', () => undefined);
    await locks.withLock('/locks/containers/pool', () => undefined, { leases: 2 });
    // (persistent directories would stay: these waits would time out)
    await waitFor(async () => (await connection.exists('/locks/containers/order')) === null, {
      message: 'the emptied directories reclaimed by the server',
    });
    await waitFor(async () => (await connection.exists('/locks/containers/pool')) === null, {
      message: 'the semaphore directories reclaimed too',
    });
    expect(await connection.exists('/locks/containers/order/42')).toBeNull();
    expect(await connection.exists('/locks/containers/pool/leases')).toBeNull();
    expect(await connection.exists('/persistent/app')).not.toBeNull();
    // and a lock on a reclaimed path works as before
    await expect(locks.withLock('/locks/containers/order/42', (lock) => lock.kind)).resolves.toBe('write');
  });
});
