/**
 * @DistributedLock methods that return an Observable, in real Nest apps on a real ZooKeeper
 * server: a method that throws before building its Observable (issue 11, item 6), and subscribers
 * that leave while still waiting for the lock (item 9): a service method unsubscribed, an SSE
 * request aborted.
 */
import 'reflect-metadata';
import { request as httpRequest } from 'node:http';
import { Controller, Injectable, Module, Sse, type INestApplication, type MessageEvent } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { firstValueFrom, interval, map, Observable, of, type Subscription } from 'rxjs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DistributedLock, ZkConnectionService, ZkLockModule } from '../../lib/index.js';
import { childrenOf, closeLockClients, lockClient } from '../fixtures/lock-clients.js';
import { startZooKeeper, waitFor, watchCount, type ZkServer } from '../support/index.js';

@Injectable()
class Streams {
  /** Checks its argument before building the Observable: a bad one throws synchronously. */
  @DistributedLock('/safety/decl/sync-throw')
  numbers(count: number): Observable<number> {
    if (!Number.isInteger(count) || count < 0) throw new RangeError(`count must be a whole number >= 0, got ${count}`);
    return of(...Array.from({ length: count }, (_, i) => i));
  }

  /** Returns no Observable at all. */
  @DistributedLock('/safety/decl/not-observable')
  broken(): Observable<number> {
    return undefined as unknown as Observable<number>;
  }

  @DistributedLock('/safety/decl/stream', { timeout: 60_000 })
  ticks(): Observable<number> {
    return interval(10);
  }
}

@Controller()
class StreamController {
  @Sse('events')
  @DistributedLock('/safety/decl/sse', { timeout: 60_000 })
  events(): Observable<MessageEvent> {
    return interval(20).pipe(map((i) => ({ data: { i } })));
  }
}

let server: ZkServer;
const apps: INestApplication[] = [];
/** Unhandled rejections seen during the current test (on top of the suite's own tripwire, if any). */
const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown) => unhandled.push(reason);

beforeAll(async () => {
  server = await startZooKeeper();
  process.on('unhandledRejection', onUnhandled);
});
afterEach(async () => {
  await Promise.all(apps.splice(0).map((app) => app.close()));
  await closeLockClients();
  unhandled.splice(0);
});
afterAll(async () => {
  process.off('unhandledRejection', onUnhandled);
  await server?.dispose();
});

async function startApp(): Promise<{ app: INestApplication; url: string }> {
  @Module({
    imports: [ZkLockModule.forRoot({ connectionString: server.connectString, sessionTimeout: 4_000 })],
    controllers: [StreamController],
    providers: [Streams],
  })
  class StreamsModule {}
  const moduleRef = await Test.createTestingModule({ imports: [StreamsModule] }).compile();
  const app = moduleRef.createNestApplication({ logger: false });
  apps.push(app);
  await app.listen(0, '127.0.0.1');
  return { app, url: await app.getUrl() };
}

function children(path: string): Promise<string[]> {
  return childrenOf(server.connectString, path);
}

/** Rejects after `ms` instead of waiting forever for a subscriber that is never told. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>(
      (_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms)),
    ),
  ]).finally(() => clearTimeout(timer));
}

/** Lets a pending rejection be reported (Node reports unhandled rejections after the microtasks of a tick). */
function tick(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 10));
}

describe('an Observable method whose body throws before returning its Observable (issue 11, item 6)', () => {
  it('errors the subscriber with that error, after releasing the lock; no unhandled rejection', async () => {
    const { app } = await startApp();
    const streams = app.get(Streams);
    const error = await within(firstValueFrom(streams.numbers(-1)), 5_000, 'the subscriber hears the error').catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(RangeError);
    expect(await children('/safety/decl/sync-throw')).toEqual([]); // released: no node stays
    // A body that returns something else than an Observable: the same.
    const broken = await within(firstValueFrom(streams.broken()), 5_000, 'the subscriber hears the error').catch(
      (e: unknown) => e,
    );
    expect(broken).toBeInstanceOf(TypeError);
    expect(await children('/safety/decl/not-observable')).toEqual([]);
    // The lock is free again: a good call goes through.
    expect(await within(firstValueFrom(streams.numbers(3)), 5_000, 'a good call')).toBe(0);
    await tick();
    expect(unhandled).toEqual([]);
  });
});

describe('a subscriber that leaves while waiting for the lock (issue 11, item 9)', () => {
  it('5 unsubscribed waiters of a service method leave only the holder node and no watch', async () => {
    const path = '/safety/decl/stream';
    const { app } = await startApp();
    const streams = app.get(Streams);
    const holder = await lockClient(server.connectString);
    const held = await holder.locks.acquire(path);
    const errors: unknown[] = [];
    const subscriptions: Subscription[] = Array.from({ length: 5 }, () =>
      streams.ticks().subscribe({ error: (error: unknown) => errors.push(error) }),
    );
    await waitFor(async () => (await children(path)).length === 6, { message: '5 waiters queued behind the holder' });
    // each waits on its predecessor (its watch is set just after its node is listed: wait for it)
    await waitFor(async () => (await watchCount(server)) === 5, { message: 'each waiter watches its predecessor' });
    expect(await watchCount(server)).toBe(5);
    for (const subscription of subscriptions) subscription.unsubscribe();
    await waitFor(async () => (await children(path)).length === 1, {
      timeout: 5_000,
      message: 'the waiters left the queue',
    });
    expect(await children(path)).toEqual([held.node.slice(held.node.lastIndexOf('/') + 1)]);
    await waitFor(async () => (await watchCount(server)) === 0, { timeout: 5_000, message: 'no watch left' });
    expect(app.get(ZkConnectionService).stats().watches).toBe(0);
    expect(errors).toEqual([]); // nobody listens any more: nothing is delivered
    await held.release();
    await tick();
    expect(unhandled).toEqual([]);
  });

  it('an SSE request aborted while waiting leaves no node and no watch', async () => {
    const path = '/safety/decl/sse';
    const { url } = await startApp();
    const holder = await lockClient(server.connectString);
    const held = await holder.locks.acquire(path);
    const requests = Array.from({ length: 3 }, () => {
      const request = httpRequest(`${url}/events`);
      request.on('error', () => undefined); // aborted on purpose
      request.end();
      return request;
    });
    await waitFor(async () => (await children(path)).length === 4, { message: '3 requests wait for the lock' });
    for (const request of requests) request.destroy(); // the clients go away
    await waitFor(async () => (await children(path)).length === 1, {
      timeout: 5_000,
      message: 'the waiters left the queue',
    });
    await waitFor(async () => (await watchCount(server)) === 0, { timeout: 5_000, message: 'no watch left' });
    await held.release();
    await tick();
    expect(unhandled).toEqual([]);
  });
});
