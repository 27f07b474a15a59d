/**
 * Issue 15: which application's locks a decorated method of an object Nest did not register at
 * bootstrap uses (made with `new`, request-scoped, transient), as the README now says: the only
 * running application's; with none, or several, the call fails with a NotConnectedError that names
 * the method and says what to do. (test/e2e/promises-nest.test.ts pins the zero- and two-app
 * cases for request-scoped and transient providers.)
 */
import 'reflect-metadata';
import { Module, type INestApplicationContext } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DistributedLock, LockService, NotConnectedError, ZkLockModule, type LockEvent } from '../../lib/index.js';
import { startZooKeeper, type ZkServer } from '../support/index.js';

let server: ZkServer;
const apps: INestApplicationContext[] = [];

beforeAll(async () => {
  server = await startZooKeeper();
});
afterEach(async () => {
  await Promise.all(apps.splice(0).map((app) => app.close()));
});
afterAll(async () => {
  await server?.dispose();
});

/** Not a provider of any application. */
class Helper {
  @DistributedLock('/locks/errors-runner/helper')
  async work(): Promise<string> {
    return 'ran';
  }
}

async function startApp(): Promise<INestApplicationContext> {
  @Module({ imports: [ZkLockModule.forRoot({ connectionString: server.connectString, sessionTimeout: 4_000 })] })
  class AppModule {}
  const context = await NestFactory.createApplicationContext(AppModule, { logger: false });
  apps.push(context);
  return context;
}

describe('a decorated method of an object made with new', () => {
  it('uses the locks of the only running application', async () => {
    const only = await startApp();
    const events: LockEvent[] = [];
    const subscription = only.get(LockService).events.subscribe((event) => events.push(event));
    await expect(new Helper().work()).resolves.toBe('ran');
    subscription.unsubscribe();
    expect(events.map((event) => [event.type, event.path])).toEqual([
      ['acquired', '/locks/errors-runner/helper'],
      ['released', '/locks/errors-runner/helper'],
    ]);
  });

  it('with two applications running, fails naming the method and what to do', async () => {
    await startApp();
    await startApp();
    const error = await new Helper().work().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NotConnectedError);
    expect((error as Error).message).toBe(
      'No ZooKeeper connection: Helper#work is decorated with @DistributedLock, but its object was not created ' +
        'by one of the 2 running applications at bootstrap (it is request-scoped or transient, or was made with ' +
        "new), so which one's locks it should use is not known: get it from the application that should lock " +
        'it (inject it, or app.get(...)) as a singleton provider',
    );
  });

  it('with no application running, fails naming the method and what to import', async () => {
    const error = await new Helper().work().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NotConnectedError);
    expect((error as Error).message).toBe(
      'No ZooKeeper connection: Helper#work is decorated with @DistributedLock, but no application with ' +
        'ZkLockModule is running: import ZkLockModule.forRoot() (or forRootAsync()) in your root module, and ' +
        'call the method while the application runs',
    );
  });
});
