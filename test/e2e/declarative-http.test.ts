/**
 * @DistributedLock on controller handlers, over real HTTP (Express and Fastify), real Nest apps,
 * real ZooKeeper: exclusion across apps, release however the handler ends, dynamic keys, timeouts.
 */
import { request as httpRequest } from 'node:http';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import { ZooKeeperError, type LockHandle } from '../../lib/index.js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { lockedAppModule, Recorder, type INestApplication } from '../fixtures/locked-app.js';
import { childrenOf, closeLockClients, lockClient, noOverlap } from '../fixtures/lock-clients.js';
import { startZooKeeper, waitFor, watchCount, type ZkServer } from '../support/index.js';

let server: ZkServer;
const apps: INestApplication[] = [];

beforeAll(async () => {
  server = await startZooKeeper();
});
afterEach(async () => {
  await Promise.all(apps.splice(0).map((app) => app.close()));
  await closeLockClients();
});
afterAll(async () => {
  await server?.dispose();
});

type Platform = 'express' | 'fastify';

async function startApp(platform: Platform): Promise<{ app: INestApplication; url: string; recorder: Recorder }> {
  const moduleRef = await Test.createTestingModule({
    imports: [lockedAppModule({ connectionString: server.connectString })],
  }).compile();
  const app =
    platform === 'fastify'
      ? moduleRef.createNestApplication(new FastifyAdapter(), { logger: false })
      : moduleRef.createNestApplication({ logger: false });
  apps.push(app);
  await app.listen(0, '127.0.0.1');
  return { app, url: await app.getUrl(), recorder: app.get(Recorder) };
}

function children(path: string): Promise<string[]> {
  return childrenOf(server.connectString, path);
}

describe.each<Platform>(['express', 'fastify'])('on %s', (platform) => {
  it('two apps (two sessions) never run the locked handler at the same time', async () => {
    const [a, b] = await Promise.all([startApp(platform), startApp(platform)]);
    const responses = await Promise.all(
      Array.from({ length: 10 }, (_, i) => fetch(`${(i % 2 ? a : b).url}/section/20`)),
    );
    expect(responses.map((r) => r.status)).toEqual(Array(10).fill(200));
    const tokens = await Promise.all(responses.map(async (r) => BigInt(((await r.json()) as { token: string }).token)));
    expect(new Set(tokens).size).toBe(10);
    const intervals = [...a.recorder.intervals, ...b.recorder.intervals];
    expect(intervals).toHaveLength(10);
    expect(noOverlap(intervals)).toBe(true);
    expect(await children('/locks/http')).toEqual([]);
  });

  it.each([
    ['throw', 'thrown on purpose'],
    ['reject', 'rejected on purpose'],
    ['observable-error', 'observable error on purpose'],
  ])('releases when the handler ends with %s', async (route, message) => {
    const { url } = await startApp(platform);
    const response = await fetch(`${url}/${route}`);
    expect(response.status).toBe(400);
    expect(((await response.json()) as { message: string }).message).toBe(message);
    expect(await children('/locks/http')).toEqual([]);
    const next = await fetch(`${url}/section/0`);
    expect(next.status).toBe(200);
  });

  it('the lock is released before the response is sent: the next call, made as the response arrives, finds it free', async () => {
    const { url } = await startApp(platform);
    const client = await lockClient(server.connectString); // another session: the client's next call
    for (let i = 0; i < 5; i += 1) {
      const seen = await new Promise<{ status: number; body: string; listing: string[]; next: LockHandle | Error }>(
        (resolve, reject) => {
          const req = httpRequest(`${url}/section/0`, (res) => {
            // The status line and headers are here: the response was sent. The very next calls,
            // sent from this callback: a listing (on the same session, answered before the acquire)
            // and an acquire that must not wait (timeout: 0).
            const listing = client.connection.getChildren('/locks/http').then(
              ({ children: names }) => names,
              (error: unknown) => {
                if (error instanceof ZooKeeperError && error.zkCode === 'NO_NODE') return []; // reclaimed
                throw error;
              },
            );
            const next = client.locks.acquire('/locks/http', { timeout: 0 }).catch((error: Error) => error);
            let body = '';
            res.on('data', (chunk: Buffer) => (body += chunk.toString()));
            res.on('end', () => {
              Promise.all([listing, next]).then(
                ([names, lock]) => resolve({ status: res.statusCode!, body, listing: names, next: lock }),
                reject,
              );
            });
          });
          req.on('error', reject);
          req.end();
        },
      );
      expect(seen.status).toBe(200);
      expect(seen.listing).toEqual([]); // the handler's node was gone before the response went out
      expect(seen.next).not.toBeInstanceOf(Error); // and the lock was free for the next call
      const next = seen.next as LockHandle;
      // A lock was taken at all: the handler held one of this path, with a token below the next holder's.
      const { token, lost } = JSON.parse(seen.body) as { token: string; lost: boolean };
      expect(lost).toBe(false);
      expect(BigInt(token)).toBeGreaterThan(0n);
      expect(next.fencingToken).toBeGreaterThan(BigInt(token));
      await next.release();
    }
  });

  it('releases when the client aborts a streaming response; the next request acquires promptly', async () => {
    const { url, recorder } = await startApp(platform);
    const streamed = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(`${url}/stream`, (res) => {
        let events = 0;
        res.on('data', (chunk: Buffer) => {
          events += chunk.toString().split('data:').length - 1;
          if (events >= 3) {
            req.destroy(); // the client goes away mid-stream
            resolve(events);
          }
        });
      });
      req.on('error', (error) => (error.message.includes('socket hang up') ? undefined : reject(error)));
      req.end();
    });
    expect(streamed).toBeGreaterThanOrEqual(3);
    await waitFor(async () => (await children('/locks/http')).length === 0, { message: 'stream lock released' });
    const started = Date.now();
    expect((await fetch(`${url}/section/0`)).status).toBe(200);
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(recorder.intervals.at(-1)?.name).toBe('work');
  });

  it('dynamic keys: different ids in parallel, the same id serialized, traversal stays inside', async () => {
    const { url, recorder } = await startApp(platform);
    const started = Date.now();
    const ids = ['a', 'b', 'a', 'b'];
    const responses = await Promise.all(ids.map((id) => fetch(`${url}/orders/${id}`)));
    expect(responses.map((r) => r.status)).toEqual([200, 200, 200, 200]);
    const byId = (id: string) => recorder.intervals.filter((i) => i.name === `order:${id}`);
    expect(noOverlap(byId('a'))).toBe(true);
    expect(noOverlap(byId('b'))).toBe(true);
    // a and b ran side by side: some a interval overlaps some b interval.
    expect(byId('a').some((x) => byId('b').some((y) => x.enter < y.exit && y.enter < x.exit))).toBe(true);
    expect(Date.now() - started).toBeLessThan(4_000);

    for (const hostile of ['../../etc', '..', '.', 'a/b', '%2F', '/x', '\u0000', 'x'.repeat(500), 'ü/../..']) {
      const response = await fetch(`${url}/orders`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ id: hostile }),
      });
      expect(response.status).toBe(201);
      const { path } = (await response.json()) as { path: string };
      expect(path.startsWith('/locks/orders/')).toBe(true);
      expect(path.slice('/locks/orders/'.length)).not.toContain('/');
    }
    const empty = await fetch(`${url}/orders`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ id: '' }),
    });
    expect(empty.status).toBe(400);
    expect(((await empty.json()) as { message: string }).message).toContain('must not be empty');
    expect(recorder.paths.every((p) => /^\/locks\/orders\/[A-Za-z0-9_%!~-]+$/.test(p))).toBe(true);
    // Only one-segment directories were created under /locks/orders, nothing outside it.
    const created = await children('/locks/orders');
    expect(created.every((name) => !name.includes('/') && name !== '..' && name !== '.')).toBe(true);
    expect(await children('/locks')).not.toContain('etc');
  });

  it('a busy lock answers 409 with a body that names the lock, and leaves nothing on the server', async () => {
    const { url } = await startApp(platform);
    const slow = fetch(`${url}/busy`);
    await waitFor(async () => (await children('/locks/busy')).length === 1);
    const response = await fetch(`${url}/busy`);
    expect(response.status).toBe(409);
    expect(await response.json()).toEqual({
      statusCode: 409,
      error: 'Conflict',
      message: 'Lock "/locks/busy" is busy: not acquired within 150 ms',
      lock: '/locks/busy',
      code: 'ZK_LOCK_TIMEOUT',
    });
    expect(await children('/locks/busy')).toHaveLength(1);
    expect(await watchCount(server)).toBe(0);
    // onTimeout chooses another answer for the same situation.
    const custom = await fetch(`${url}/busy-503`);
    expect(custom.status).toBe(503);
    expect(((await custom.json()) as { message: string }).message).toBe('try later: /locks/busy');
    expect((await slow).status).toBe(200);
    expect(await children('/locks/busy')).toEqual([]);
  });
});
