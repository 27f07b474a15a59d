/**
 * Issue 15, "errors that tell the fix", over real HTTP (Express and Fastify) on a real ZooKeeper:
 * - a `key` function that returns undefined (request.params.orderId on an :id route) is the
 *   app's bug: 500, and a server-side error log naming the method, the decorator and the value;
 *   an empty key is the client's input: 400;
 * - ZkLockExceptionFilter answers errors of `withLock` / `acquire` in ordinary routes as the
 *   decorator does (409 busy, with the same body; 503 outage; 400 input; 500 logged for the
 *   app's bugs), registered with app.useGlobalFilters, APP_FILTER or @UseFilters.
 */
import 'reflect-metadata';
import {
  BadRequestException,
  Controller,
  Get,
  Module,
  Param,
  Post,
  Query,
  UseFilters,
  type DynamicModule,
  type INestApplication,
  type LoggerService,
  type Provider,
} from '@nestjs/common';
import { APP_FILTER } from '@nestjs/core';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ZkLockExceptionFilter } from '../../lib/declarative/zk-lock-exception.filter.js';
import {
  DistributedLock,
  LockService,
  NotConnectedError,
  ZkLockModule,
  ZkUnavailableError,
  lockPathFor,
  type LockCall,
} from '../../lib/index.js';
import { childrenOf, closeLockClients, lockClient } from '../fixtures/lock-clients.js';
import { startZooKeeper, type ZkServer } from '../support/index.js';

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

const BUSY = '/locks/errors-http/busy';
const params = ({ request }: LockCall): Record<string, string> =>
  (request as { params: Record<string, string> }).params;

@Controller('orders')
class OrdersController {
  /** The typo of the issue: the route has :id, the key reads orderId. */
  @Post(':id/charge')
  @DistributedLock('/locks/errors-http/orders', { key: (call) => params(call).orderId })
  async charge(@Param('id') id: string): Promise<{ id: string }> {
    return { id };
  }

  @Post('by-query')
  @DistributedLock('/locks/errors-http/orders', {
    key: ({ request }) => (request as { query: Record<string, string> }).query.id,
  })
  async byQuery(): Promise<string> {
    return 'charged';
  }

  /** Missing input answered 400 by the key function itself (it runs before pipes). */
  @Post('checked')
  @DistributedLock('/locks/errors-http/orders', {
    key: ({ request }) => (request as { query: Record<string, string> }).query.id ?? badRequest('id is required'),
  })
  async checked(): Promise<string> {
    return 'charged';
  }

  @Get('busy')
  @DistributedLock(BUSY, { timeout: 200 })
  async busy(): Promise<string> {
    return 'ran';
  }
}

function badRequest(message: string): never {
  throw new BadRequestException(message);
}

/** Routes that lock by hand: their errors reach ZkLockExceptionFilter (when registered). */
@Controller('manual')
class ManualController {
  constructor(private readonly locks: LockService) {}

  @Get('busy')
  busy(): Promise<string> {
    return this.locks.withLock(BUSY, async () => 'ran', { timeout: 200 });
  }

  @Get('unavailable')
  unavailable(): never {
    throw new ZkUnavailableError('/locks/x', 'suspended', 'no session within 300 ms');
  }

  @Get('closed')
  closed(): never {
    throw new NotConnectedError('the module is shutting down');
  }

  @Get('key')
  key(@Query('id') id: string): Promise<string> {
    return this.locks.withLock(lockPathFor('/locks/errors-http/manual', id), async () => 'ran');
  }

  @Get('bug')
  async bug(): Promise<string> {
    const path = ({ lock: '/locks/x' } as Record<string, string>).lockPath; // a typo: undefined
    const lock = await this.locks.acquire(path);
    await lock.release();
    return 'ran';
  }

  @Get('not-ours')
  notOurs(): never {
    throw new Error('not a lock error');
  }
}

@UseFilters(ZkLockExceptionFilter)
@Controller('filtered')
class FilteredController {
  constructor(private readonly locks: LockService) {}

  @Get('busy')
  busy(): Promise<string> {
    return this.locks.withLock(BUSY, async () => 'ran', { timeout: 200 });
  }
}

type Platform = 'express' | 'fastify';
type Registration = 'useGlobalFilters' | 'APP_FILTER' | 'none';

/** What Nest logged as errors (the message of an Error, as its class and message). */
function errorLog(): { logger: LoggerService; errors: string[] } {
  const errors: string[] = [];
  const text = (message: unknown): string =>
    message instanceof Error ? `${message.name}: ${message.message}` : String(message);
  const ignore = (): void => undefined;
  return {
    errors,
    logger: { log: ignore, warn: ignore, debug: ignore, verbose: ignore, error: (m: unknown) => errors.push(text(m)) },
  };
}

async function startApp(platform: Platform, registration: Registration): Promise<{ url: string; errors: string[] }> {
  const providers: Provider[] =
    registration === 'APP_FILTER' ? [{ provide: APP_FILTER, useClass: ZkLockExceptionFilter }] : [];
  const zk: DynamicModule = ZkLockModule.forRoot({ connectionString: server.connectString, sessionTimeout: 4_000 });
  @Module({ imports: [zk], controllers: [OrdersController, ManualController, FilteredController], providers })
  class AppModule {}
  const moduleRef = await Test.createTestingModule({ imports: [AppModule] }).compile();
  const { logger, errors } = errorLog();
  const app =
    platform === 'fastify'
      ? moduleRef.createNestApplication(new FastifyAdapter(), { logger })
      : moduleRef.createNestApplication({ logger });
  if (registration === 'useGlobalFilters') app.useGlobalFilters(new ZkLockExceptionFilter(app.getHttpAdapter()));
  apps.push(app);
  await app.listen(0, '127.0.0.1');
  return { url: await app.getUrl(), errors };
}

/** Holds BUSY from another session. */
async function holdBusy(): Promise<void> {
  const { locks } = await lockClient(server.connectString);
  await locks.acquire(BUSY);
}

async function answer(url: string, method = 'GET'): Promise<{ status: number; body: unknown }> {
  const response = await fetch(url, { method });
  const text = await response.text();
  return { status: response.status, body: text.startsWith('{') ? (JSON.parse(text) as unknown) : text };
}

describe.each<Platform>(['express', 'fastify'])('on %s', (platform) => {
  describe('@DistributedLock keys: the app’s bug or the client’s input', () => {
    it('a key function that returns undefined answers 500 and logs an error naming the method, the decorator and the value', async () => {
      const { url, errors } = await startApp(platform, 'none');
      const { status, body } = await answer(`${url}/orders/42/charge`, 'POST');
      expect(status).toBe(500);
      expect(body).toEqual({ statusCode: 500, message: 'Internal server error' });
      expect(errors).toEqual([
        expect.stringMatching(
          /^InvalidOptionsError: Invalid option @DistributedLock key of OrdersController#charge = undefined: the key function must return a string or a finite number/,
        ),
      ]);
      expect(await childrenOf(server.connectString, '/locks/errors-http/orders')).toEqual([]);
    });

    it('the same with the exception filter registered (it hands the app’s bugs to Nest: 500, logged)', async () => {
      const { url, errors } = await startApp(platform, 'useGlobalFilters');
      expect((await answer(`${url}/orders/42/charge`, 'POST')).status).toBe(500);
      expect(errors).toEqual([expect.stringContaining('@DistributedLock key of OrdersController#charge = undefined')]);
    });

    it('a key function that throws an HTTP exception for missing input answers with it', async () => {
      const { url, errors } = await startApp(platform, 'none');
      const { status, body } = await answer(`${url}/orders/checked`, 'POST');
      expect(status).toBe(400);
      expect((body as { message: string }).message).toBe('id is required');
      expect((await answer(`${url}/orders/checked?id=7`, 'POST')).status).toBe(201);
      expect(errors).toEqual([]);
    });

    it('a key the encoder refuses (empty: the client sent ?id=) answers 400 and logs nothing', async () => {
      const { url, errors } = await startApp(platform, 'none');
      const { status, body } = await answer(`${url}/orders/by-query?id=`, 'POST');
      expect(status).toBe(400);
      expect((body as { message: string }).message).toContain('a lock key must not be empty');
      expect(errors).toEqual([]);
    });
  });

  describe('ZkLockExceptionFilter (app.useGlobalFilters)', () => {
    it('a withLock timeout on an ordinary route answers 409 with the body the decorator gives', async () => {
      await holdBusy();
      const { url, errors } = await startApp(platform, 'useGlobalFilters');
      const manual = await answer(`${url}/manual/busy`);
      const declared = await answer(`${url}/orders/busy`);
      expect(manual.status).toBe(409);
      expect(manual.body).toEqual({
        statusCode: 409,
        error: 'Conflict',
        message: `Lock "${BUSY}" is busy: not acquired within 200 ms`,
        lock: BUSY,
        code: 'ZK_LOCK_TIMEOUT',
      });
      expect(declared).toEqual(manual);
      expect(errors).toEqual([]);
    });

    it('an outage or the app shutting down answers 503; a key from the client the rules refuse, 400', async () => {
      const { url, errors } = await startApp(platform, 'useGlobalFilters');
      const unavailable = await answer(`${url}/manual/unavailable`);
      expect(unavailable.status).toBe(503);
      expect((unavailable.body as { message: string }).message).toContain('ZooKeeper unavailable (state: suspended)');
      expect((await answer(`${url}/manual/closed`)).status).toBe(503);
      const input = await answer(`${url}/manual/key?id=`);
      expect(input.status).toBe(400);
      expect((input.body as { message: string }).message).toContain('a lock key must not be empty');
      expect(errors).toEqual([]);
    });

    it('a lock path that is not a string is the app’s bug: 500, logged; other errors are not its business', async () => {
      const { url, errors } = await startApp(platform, 'useGlobalFilters');
      expect(await answer(`${url}/manual/bug`)).toEqual({
        status: 500,
        body: { statusCode: 500, message: 'Internal server error' },
      });
      expect(errors).toEqual([expect.stringMatching(/^InvalidLockPathError: Invalid lock path undefined/)]);
      expect((await answer(`${url}/manual/not-ours`)).status).toBe(500);
      expect(errors[1]).toBe('Error: not a lock error');
    });
  });
});

describe('ZkLockExceptionFilter, registered by class', () => {
  it('as APP_FILTER, Nest creates it: a withLock timeout answers 409', async () => {
    await holdBusy();
    const { url } = await startApp('express', 'APP_FILTER');
    const { status, body } = await answer(`${url}/manual/busy`);
    expect(status).toBe(409);
    expect((body as { code: string }).code).toBe('ZK_LOCK_TIMEOUT');
  });

  it('with @UseFilters(ZkLockExceptionFilter) on a controller: 409 there, and 500 on a route without it', async () => {
    await holdBusy();
    const { url, errors } = await startApp('fastify', 'none');
    expect((await answer(`${url}/filtered/busy`)).status).toBe(409);
    expect((await answer(`${url}/manual/busy`)).status).toBe(500);
    expect(errors).toEqual([expect.stringMatching(/^LockTimeoutError: /)]);
  });
});
