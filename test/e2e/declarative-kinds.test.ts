/**
 * @DistributedLock with `mode`, `leases` and several paths, in real Nest apps (two apps = two
 * ZooKeeper sessions) on real ZooKeeper: read/write exclusion, a semaphore's bound, multi-locks
 * without deadlock, and a read-locked route behind the interceptor.
 */
import { Controller, Get, Injectable, Module, type INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CurrentLock, DistributedLock, LockService, ZkLockModule, type LockHandle } from '../../lib/index.js';
import { childrenOf, Gathering } from '../fixtures/lock-clients.js';
import { mutantHook } from '../fixtures/mutant-hook.js';
import { delay, startZooKeeper, type ZkServer } from '../support/index.js';

/** Shared by every app of the test process: who is inside which critical section. */
const state = {
  readers: 0,
  writers: 0,
  maxReaders: 0,
  leases: 0,
  maxLeases: 0,
  accounts: 0,
  violations: [] as string[],
  /** Sections that ran to their end, per method: "no violations" means something only with these. */
  ran: { read: 0, write: 0, pooled: 0, transfer: 0 },
  /** The first two readers (and lease holders) inside wait for each other: see Gathering. */
  readersMeet: new Gathering(2),
  leasesMeet: new Gathering(2),
};

@Injectable()
class DocumentService {
  constructor(private readonly locks: LockService) {}

  @DistributedLock('/locks/e2e/doc', { mode: 'read' })
  async read(): Promise<void> {
    state.readers += 1;
    state.maxReaders = Math.max(state.maxReaders, state.readers);
    if (state.writers > 0) state.violations.push('read during a write');
    await state.readersMeet.arrive();
    await delay(3); // the work
    state.readers -= 1;
    state.ran.read += 1;
  }

  @DistributedLock('/locks/e2e/doc', { mode: 'write' })
  async write(): Promise<void> {
    state.writers += 1;
    if (state.writers > 1 || state.readers > 0) state.violations.push('write not alone');
    await delay(2); // the work
    state.writers -= 1;
    state.ran.write += 1;
  }

  @DistributedLock('/locks/e2e/pool', { leases: 2 })
  async pooled(): Promise<void> {
    state.leases += 1;
    state.maxLeases = Math.max(state.maxLeases, state.leases);
    await state.leasesMeet.arrive();
    await delay(3); // the work
    state.leases -= 1;
    state.ran.pooled += 1;
  }

  @DistributedLock(({ args }) => [`/locks/e2e/account/${String(args[0])}`, `/locks/e2e/account/${String(args[1])}`])
  async transfer(from: string, to: string): Promise<string> {
    const both = [this.locks.current(`/locks/e2e/account/${from}`), this.locks.current(`/locks/e2e/account/${to}`)];
    if (both.some((lock) => !lock || lock.released)) state.violations.push('transfer without both locks');
    state.accounts += 1;
    if (state.accounts > 1) state.violations.push(`transfer ${from}->${to} overlapped`);
    await delay(1); // the work
    state.accounts -= 1;
    state.ran.transfer += 1;
    return this.locks.current()?.path ?? '';
  }
}

@Controller('doc')
class DocumentController {
  @Get()
  @DistributedLock('/locks/e2e/doc', { mode: 'read' })
  async get(@CurrentLock() lock: LockHandle): Promise<{ kind: string }> {
    return { kind: lock.kind };
  }
}

let server: ZkServer;
const apps: INestApplication[] = [];

beforeAll(async () => {
  server = await startZooKeeper();
});
afterEach(async () => {
  await Promise.all(apps.splice(0).map((each) => each.close()));
  state.violations.length = 0;
  state.ran = { read: 0, write: 0, pooled: 0, transfer: 0 };
});
afterAll(async () => {
  await server?.dispose();
});

async function app(): Promise<INestApplication> {
  @Module({
    imports: [ZkLockModule.forRoot({ connectionString: server.connectString, sessionTimeout: 4_000 })],
    providers: [DocumentService, mutantHook],
    controllers: [DocumentController],
  })
  class AppModule {}
  const created = await NestFactory.create(AppModule, { logger: false });
  apps.push(created);
  await created.listen(0, '127.0.0.1');
  return created;
}

describe('@DistributedLock kinds', () => {
  it('mode read/write on service methods across two apps: writes alone, reads together', async () => {
    const services = [await app(), await app()].map((created) => created.get(DocumentService));
    await Promise.all(
      services.flatMap((service) => [
        ...Array.from({ length: 6 }, async () => {
          for (let i = 0; i < 4; i += 1) await service.read();
        }),
        (async () => {
          await state.readersMeet.met; // writers join once two readers were seen together
          for (let i = 0; i < 4; i += 1) await service.write();
        })(),
      ]),
    );
    expect(state.violations).toEqual([]);
    // 2 apps x (6 readers x 4 reads + 1 writer x 4 writes): every write ran, alone.
    expect(state.ran).toMatchObject({ read: 48, write: 8 });
    expect(state.maxReaders).toBeGreaterThanOrEqual(2);
    expect(await childrenOf(server.connectString, '/locks/e2e/doc')).toEqual([]);
  }, 60_000);

  it('leases: 2 bounds concurrent calls across apps to two, and reaches two', async () => {
    const services = [await app(), await app()].map((created) => created.get(DocumentService));
    await Promise.all(
      services.flatMap((service) =>
        Array.from({ length: 4 }, async () => {
          for (let i = 0; i < 3; i += 1) await service.pooled();
        }),
      ),
    );
    expect(state.ran.pooled).toBe(24); // 2 apps x 4 callers x 3 calls
    expect(state.maxLeases).toBe(2);
    expect(await childrenOf(server.connectString, '/locks/e2e/pool/leases')).toEqual([]);
  }, 60_000);

  it('a path function returning two paths: opposite orders from two apps finish without deadlock', async () => {
    const [one, two] = [await app(), await app()].map((created) => created.get(DocumentService));
    const paths = await Promise.all([
      (async () => {
        for (let i = 0; i < 10; i += 1) await one.transfer('a', 'b');
      })(),
      (async () => {
        for (let i = 0; i < 10; i += 1) await two.transfer('b', 'a');
      })(),
      one.transfer('b', 'a'),
    ]);
    expect(state.violations).toEqual([]);
    expect(state.ran.transfer).toBe(21); // 10 + 10 + 1: none stuck in a deadlock
    expect(paths[2]).toBe('/locks/e2e/account/b'); // current(): the innermost (last taken) part
    expect(await childrenOf(server.connectString, '/locks/e2e/account/a')).toEqual([]);
  }, 60_000);

  it('a read-locked route behind the interceptor', async () => {
    const created = await app();
    const response = await fetch(`${await created.getUrl()}/doc`);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ kind: 'read' });
  });
});
