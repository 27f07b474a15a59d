/**
 * One of the sample's machines: a Nest application context that appends numbered lines to a
 * shared log file, each one a read-modify-write under the distributed lock `/locks/write_lock`.
 *
 * Forked by sample/main.ts, which passes the settings in the environment (see ENV in
 * messages.ts) and talks to it over the IPC channel: `ready` once connected, then it waits for
 * `go` (so that every worker starts at the same moment), `line` per line, `done` at the end.
 * Then it closes the Nest context (which closes the ZooKeeper session) and exits on its own.
 */
import 'reflect-metadata';
import { performance } from 'node:perf_hooks';
import { Injectable, Module, type DynamicModule, type INestApplicationContext } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { DistributedLock, LockService, ZkLockModule } from '../lib/index.js';
import { appendNextLine, LOCK_PATH } from './log-file.js';
import { installProcessTripwire } from '../test/setup/process-tripwire.js';
import { ENV, isGoMessage, requireEnv, requirePositiveEnv, sendToParent, type WorkerMessage } from './messages.js';

// An unhandled rejection or uncaught exception: one clear line, reported to sample/main.js, and a
// non-zero exit (the run then fails), as it would kill a production app.
installProcessTripwire(`sample worker ${process.env[ENV.workerId] ?? '?'}`, {
  report: (line) => sendToParent({ type: 'error', message: line }),
});

/** The worker's settings, from the environment the parent set. Provided by value, injected by type. */
export class WorkerConfig {
  constructor(
    readonly connectionString: string,
    readonly workerId: number,
    readonly lines: number,
    readonly logFile: string,
    readonly noLock: boolean,
  ) {}

  static fromEnv(env: NodeJS.ProcessEnv = process.env): WorkerConfig {
    return new WorkerConfig(
      requireEnv(env, ENV.connect),
      requirePositiveEnv(env, ENV.workerId),
      requirePositiveEnv(env, ENV.lines),
      requireEnv(env, ENV.log),
      env[ENV.noLock] === '1',
    );
  }
}

@Injectable()
export class LogWriterService {
  constructor(
    private readonly locks: LockService,
    private readonly config: WorkerConfig,
  ) {}

  /**
   * Appends the next numbered line (last counter + 1) for `workerId` while this process holds
   * the distributed lock; the lock is released when the method returns or throws. Resolves with
   * how long it waited for the lock, in ms (`askedAt` is when the caller asked).
   */
  @DistributedLock(LOCK_PATH)
  async append(workerId: number, askedAt: number): Promise<number> {
    const waited = performance.now() - askedAt;
    const lock = this.locks.current(LOCK_PATH)!; // the handle @DistributedLock holds for this call
    await appendNextLine(this.config.logFile, {
      workerId,
      token: lock.fencingToken.toString(),
      signal: lock.signal,
    });
    return waited;
  }

  /** The same read-modify-write without the lock (`--no-lock`): shows the damage the lock prevents. */
  async appendUnlocked(workerId: number): Promise<number> {
    await appendNextLine(this.config.logFile, { workerId, token: '-' });
    return 0;
  }
}

@Module({})
export class WorkerModule {
  static forRoot(config: WorkerConfig): DynamicModule {
    return {
      module: WorkerModule,
      imports: [
        ZkLockModule.forRoot({
          connectionString: config.connectionString,
          appName: `sample-worker-${config.workerId}`,
          // 100 workers starting at once on 2 cores take a while to load and connect.
          connectTimeout: 30_000,
        }),
      ],
      providers: [{ provide: WorkerConfig, useValue: config }, LogWriterService],
    };
  }
}

const send = (message: WorkerMessage): Promise<void> => sendToParent(message);

/** Resolves on the parent's `go`. */
function waitForGo(): Promise<void> {
  return new Promise((resolve) => {
    const onMessage = (message: unknown) => {
      if (!isGoMessage(message)) return;
      process.off('message', onMessage);
      resolve();
    };
    process.on('message', onMessage);
  });
}

let app: INestApplicationContext | undefined;
let finished = false;
let stopping = false;

/** Signals and the parent going away: close the session (our lock node goes at once) and exit. */
function stop(code: number): void {
  if (stopping) return;
  stopping = true;
  const closed = app ? app.close() : Promise.resolve();
  closed.then(
    () => process.exit(code),
    () => process.exit(code),
  );
  setTimeout(() => process.exit(code), 5_000).unref();
}

process.once('SIGINT', () => stop(130));
process.once('SIGTERM', () => stop(143));
process.once('disconnect', () => {
  if (!finished) stop(1);
});

async function main(): Promise<void> {
  if (!process.send) {
    console.error('sample/worker.js is forked by sample/main.js (it needs the IPC channel); run `npm run sample`.');
    process.exit(2);
  }
  const config = WorkerConfig.fromEnv();
  const go = waitForGo();
  app = await NestFactory.createApplicationContext(WorkerModule.forRoot(config), {
    logger: ['error', 'warn'],
    abortOnError: false, // throw instead of process.abort() when start-up fails (e.g. ZooKeeper unreachable)
  });
  if (stopping) return;
  await send({ type: 'ready', startupMs: performance.now() });
  await go;

  const writer = app.get(LogWriterService);
  const waits: number[] = [];
  for (let i = 0; i < config.lines; i++) {
    if (stopping) return;
    waits.push(
      await (config.noLock
        ? writer.appendUnlocked(config.workerId)
        : writer.append(config.workerId, performance.now())),
    );
    process.send?.({ type: 'line', workerId: config.workerId } satisfies WorkerMessage);
  }
  if (stopping) return;
  await send({ type: 'done', waits, maxRss: process.resourceUsage().maxRSS * 1024 });

  finished = true;
  await app.close();
  process.disconnect();
  // Nothing should be left to keep the process alive now; if something is, say so and go anyway.
  setTimeout(() => {
    console.error(`worker ${config.workerId}: still running 5 s after closing; exiting`);
    process.exit(0);
  }, 5_000).unref();
}

main().catch(async (error: unknown) => {
  if (stopping) return;
  const message = error instanceof Error ? error.message : String(error);
  console.error(`worker ${process.env[ENV.workerId] ?? '?'} (pid ${process.pid}) failed:`, error);
  await send({ type: 'error', message }).catch(() => undefined);
  stop(1);
});
