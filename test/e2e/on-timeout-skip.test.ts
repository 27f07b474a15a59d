/**
 * `onTimeout: 'skip'` on @DistributedLock: a busy lock at the deadline resolves `undefined`
 * without running the method (a service method, an Observable method, an HTTP route answering its
 * usual status with an empty body); a free lock runs it. Real server.
 */
import 'reflect-metadata';
import { Controller, Get, Injectable, Module, Post } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { lastValueFrom, Observable, of } from 'rxjs';
import { afterEach, describe, expect, it } from 'vitest';
import { DistributedLock, ZkLockModule } from '../../lib/index.js';
import { useFileServer } from '../fixtures/file-server.js';
import { lockClient } from '../fixtures/lock-clients.js';

const server = useFileServer();
const PATH = '/skip/busy';

@Injectable()
class Jobs {
  runs = 0;

  @DistributedLock(PATH, { timeout: 0, onTimeout: 'skip' })
  async tick(): Promise<string> {
    this.runs += 1;
    return 'ran';
  }

  @DistributedLock(PATH, { timeout: 0, onTimeout: 'skip' })
  stream(): Observable<string> {
    this.runs += 1;
    return of('ran');
  }
}

@Controller('skip')
class SkipController {
  @Get()
  @DistributedLock(PATH, { timeout: 0, onTimeout: 'skip' })
  async get(): Promise<string> {
    return 'ran';
  }

  @Post()
  @DistributedLock(PATH, { timeout: 0, onTimeout: 'skip' })
  async post(): Promise<string> {
    return 'ran';
  }
}

const apps: { close(): Promise<void> }[] = [];
afterEach(async () => {
  await Promise.all(apps.splice(0).map((app) => app.close()));
});

async function start() {
  @Module({
    imports: [ZkLockModule.forRoot({ connectionString: server.connectString, sessionTimeout: 4_000 })],
    providers: [Jobs],
    controllers: [SkipController],
  })
  class AppModule {}
  const app = await NestFactory.create(AppModule, { logger: false });
  apps.push(app);
  await app.listen(0, '127.0.0.1');
  return { app, jobs: app.get(Jobs), url: await app.getUrl() };
}

describe("@DistributedLock onTimeout: 'skip'", () => {
  it('a busy lock: the method does not run and the call resolves undefined; a free lock runs it', async () => {
    const { jobs } = await start();
    expect(await jobs.tick()).toBe('ran');
    const other = await lockClient(server.connectString);
    const held = await other.locks.acquire(PATH);
    expect(await jobs.tick()).toBeUndefined();
    expect(await lastValueFrom(jobs.stream(), { defaultValue: 'none' })).toBeUndefined();
    expect(jobs.runs).toBe(1);
    await held.release();
    expect(await jobs.tick()).toBe('ran');
    expect(jobs.runs).toBe(2);
  });

  it('an HTTP route answers its usual status with an empty body when busy', async () => {
    const { url } = await start();
    const free = await fetch(`${url}/skip`);
    expect([free.status, await free.text()]).toEqual([200, 'ran']);
    const other = await lockClient(server.connectString);
    const held = await other.locks.acquire(PATH);
    const get = await fetch(`${url}/skip`);
    expect([get.status, await get.text()]).toEqual([200, '']);
    const post = await fetch(`${url}/skip`, { method: 'POST' });
    expect([post.status, await post.text()]).toEqual([201, '']);
    await held.release();
  });

  it('a method that returns an Observable the decorator cannot see (a union return type) is refused at the call, not run outside the lock', async () => {
    class Hidden {
      runs = 0;
      @DistributedLock(PATH)
      stream(): Observable<string> | Promise<string> {
        this.runs += 1;
        return of('ran');
      }
    }
    const { app } = await start();
    void app;
    const hidden = new Hidden(); // no app registered it: the only running application's locks
    const error = await (hidden.stream() as Promise<string>).catch((e: unknown) => e);
    expect(error).toMatchObject({ option: '@DistributedLock on Hidden#stream', value: 'an Observable' });
    expect((error as Error).message).toContain('import Observable as a value');
    const other = await lockClient(server.connectString);
    expect(await other.locks.tryAcquire(PATH)).not.toBeNull(); // released
  });

  it('a bad onTimeout is refused when the class is defined', () => {
    expect(() => {
      class Bad {
        @DistributedLock(PATH, { onTimeout: 'ignore' as never })
        async run(): Promise<void> {}
      }
      return Bad;
    }).toThrow(/must be a function .* or "skip"/);
  });
});
