/**
 * Issue 15, "errors that tell the fix": an app that uses @DistributedLock without ZkLockModule
 * fails to start with an error that names the decorated method and says what to import, not
 * Nest's "can't resolve dependencies of the DistributedLockInterceptor (Reflector, ?)"; the
 * bare ZkLockModule class (no forRoot) says so too. No ZooKeeper: these fail before connecting.
 */
import 'reflect-metadata';
import { Controller, Get, Injectable, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Test } from '@nestjs/testing';
import { describe, expect, it } from 'vitest';
import { DistributedLock, InvalidOptionsError, NotConnectedError, ZkLockModule } from '../../lib/index.js';

@Injectable()
class ReportService {
  @DistributedLock('/locks/reports')
  async rebuild(): Promise<string> {
    return 'rebuilt';
  }

  plain(): string {
    return 'not locked';
  }
}

@Controller('orders')
class OrdersController {
  @Get()
  @DistributedLock('/locks/orders')
  async list(): Promise<string[]> {
    return [];
  }
}

/** The error of a start-up that is expected to fail. */
async function startError(start: () => Promise<unknown>): Promise<Error> {
  const outcome = await start().then(
    () => undefined,
    (error: unknown) => error,
  );
  expect(outcome).toBeInstanceOf(Error);
  return outcome as Error;
}

/** What the message lacks of the fix: it must name the method and say what to import, and no internals. */
function missingFromFix(error: Error, method: string): string[] {
  const missing: string[] = [];
  if (!(error instanceof NotConnectedError)) missing.push(`a NotConnectedError (got ${error.name})`);
  if (!error.message.includes(`${method} is decorated with @DistributedLock`)) missing.push(`the method ${method}`);
  if (!error.message.includes('import ZkLockModule.forRoot() (or forRootAsync()) in your root module')) {
    missing.push('what to import');
  }
  if (/can't resolve|LockRunner|Reflector|Interceptor|index \[/.test(error.message)) missing.push('no internals');
  return missing.length ? [...missing, `in: ${error.message}`] : [];
}

describe('without ZkLockModule.forRoot()', () => {
  it('a module whose only decorated method is a service method fails to compile, naming the method and the fix', async () => {
    const error = await startError(() => Test.createTestingModule({ providers: [ReportService] }).compile());
    expect(missingFromFix(error, 'ReportService#rebuild')).toEqual([]);
  });

  it('an application context fails to start the same way (NestFactory.createApplicationContext)', async () => {
    @Module({ providers: [ReportService] })
    class AppModule {}
    const error = await startError(() =>
      NestFactory.createApplicationContext(AppModule, { logger: false, abortOnError: false }),
    );
    expect(missingFromFix(error, 'ReportService#rebuild')).toEqual([]);
  });

  it('an HTTP app with a decorated handler fails to start, naming the handler', async () => {
    @Module({ controllers: [OrdersController] })
    class AppModule {}
    const error = await startError(() => NestFactory.create(AppModule, { logger: false, abortOnError: false }));
    expect(missingFromFix(error, 'OrdersController#list')).toEqual([]);
  });

  it('with isGlobal: false, a module that does not import it is told to', async () => {
    const zk = ZkLockModule.forRoot({ connectionString: '127.0.0.1:1', lazyConnect: true, isGlobal: false });
    @Module({ providers: [ReportService] })
    class Feature {}
    @Module({ imports: [zk, Feature] })
    class AppModule {}
    const error = await startError(() => Test.createTestingModule({ imports: [AppModule] }).compile());
    expect(missingFromFix(error, 'ReportService#rebuild')).toEqual([]);
    expect(error.message).toContain('with isGlobal: false, in the module that declares ReportService too');
  });

  it('importing the bare ZkLockModule class (no options) says to use forRoot', async () => {
    const error = await startError(() => Test.createTestingModule({ imports: [ZkLockModule] }).compile());
    expect(error).toBeInstanceOf(InvalidOptionsError);
    expect(error.message).toContain('import ZkLockModule.forRoot({ connectionString }) (or forRootAsync())');
    expect(error.message).not.toMatch(/can't resolve|CONFIGURABLE_MODULE_OPTIONS|ZK_LOCK_RESOLVED_OPTIONS/);
  });

  it('a decorated method called with no application running says what to import', async () => {
    const error = await new ReportService().rebuild().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NotConnectedError);
    expect((error as Error).message).toContain('ReportService#rebuild is decorated with @DistributedLock');
    expect((error as Error).message).toContain('import ZkLockModule.forRoot() (or forRootAsync())');
  });
});
