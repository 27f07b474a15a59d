/**
 * One worker of the chaos run: a Nest application context (its own ZooKeeper session, through
 * its own proxies) that loops on a read-modify-write of the fenced store under the lock
 * /locks/write_lock, until chaos/main.ts says `stop`:
 *
 *   acquire -> read the last counter (with the token) -> yield -> check the signal -> write counter + 1 (with the token)
 *
 * Workers with an odd id lock through `@DistributedLock` on a service method, the others through
 * `LockService.withLock`. Every error of an iteration (LockTimeoutError, LockLostError,
 * NotConnectedError, ZooKeeperError, a refusal by the store) is reported to main and the loop
 * goes on. Forked by chaos/main.ts with the settings in the environment (ENV in messages.ts).
 */
import 'reflect-metadata';
import { setTimeout as sleep } from 'node:timers/promises';
import { Injectable, Module, type DynamicModule, type INestApplicationContext } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import {
  DistributedLock,
  LockLostError,
  LockService,
  ZkConnectionService,
  ZkLockModule,
  ZooKeeperError,
  type LockHandle,
} from '../lib/index.js';
import { LOCK_PATH } from '../sample/log-file.js';
import {
  ENV,
  isMainMessage,
  type LockStyle,
  type MainMessage,
  type ReadReply,
  type WorkerMessage,
  type WriteReply,
} from './messages.js';
import { Prng } from './prng.js';

/** How long one acquisition waits for the lock before a LockTimeoutError. */
const LOCK_TIMEOUT = 8_000;

/** The store refused a read or a write: this worker's token is stale (it lost the lock without knowing in time). */
export class StaleTokenError extends Error {
  override name = 'StaleTokenError';
}

export class WorkerConfig {
  constructor(
    readonly connectionString: string,
    readonly workerId: number,
    readonly sessionTimeout: number,
    readonly style: LockStyle,
    readonly seed: number,
  ) {}

  static fromEnv(env: NodeJS.ProcessEnv = process.env): WorkerConfig {
    const need = (name: string) => {
      const value = env[name];
      if (!value) throw new Error(`${name} is not set (chaos/main.js sets it)`);
      return value;
    };
    const style = need(ENV.style);
    if (style !== 'decorator' && style !== 'withLock') throw new Error(`${ENV.style}=${style}`);
    return new WorkerConfig(
      need(ENV.connect),
      Number(need(ENV.workerId)),
      Number(need(ENV.sessionTimeout)),
      style,
      Number(need(ENV.seed)),
    );
  }
}

const log = (text: string) => process.stdout.write(`${new Date().toISOString()} ${text}\n`);

function send(message: WorkerMessage): void {
  if (process.connected) process.send?.(message);
}

/** The fenced store, in chaos/main.js, over the IPC channel. */
export class StoreClient {
  private nextReq = 1;
  private readonly pending = new Map<number, { resolve: (reply: MainMessage) => void; reject: (e: Error) => void }>();

  constructor() {
    process.on('message', (message: unknown) => {
      if (!isMainMessage(message) || message.type === 'stop') return;
      const waiter = this.pending.get(message.req);
      this.pending.delete(message.req);
      waiter?.resolve(message);
    });
    process.once('disconnect', () => {
      for (const waiter of this.pending.values()) waiter.reject(new Error('the IPC channel to main is closed'));
      this.pending.clear();
    });
  }

  read(token: bigint): Promise<ReadReply> {
    return this.ask({ type: 'read', req: this.nextReq++, token: token.toString() }) as Promise<ReadReply>;
  }

  write(token: bigint, counter: number): Promise<WriteReply> {
    return this.ask({ type: 'write', req: this.nextReq++, token: token.toString(), counter }) as Promise<WriteReply>;
  }

  private ask(request: WorkerMessage & { req: number }): Promise<MainMessage> {
    return new Promise((resolve, reject) => {
      if (!process.connected) {
        reject(new Error('the IPC channel to main is closed'));
        return;
      }
      this.pending.set(request.req, { resolve, reject });
      process.send!(request);
    });
  }
}

@Injectable()
export class ChaosWriterService {
  private readonly prng: Prng;

  constructor(
    private readonly locks: LockService,
    private readonly store: StoreClient,
    config: WorkerConfig,
  ) {
    this.prng = new Prng(config.seed);
  }

  /** One iteration through the decorator: the lock is held for the whole call. */
  @DistributedLock(LOCK_PATH, { timeout: LOCK_TIMEOUT })
  async appendDecorated(): Promise<number> {
    return this.critical(this.locks.current(LOCK_PATH)!);
  }

  /** One iteration through LockService.withLock. */
  appendWithLock(): Promise<number> {
    return this.locks.withLock(LOCK_PATH, (lock) => this.critical(lock), { timeout: LOCK_TIMEOUT });
  }

  /** The token of the lock held by the iteration under way, for its error report. */
  private heldToken: bigint | undefined;

  /** The token of the lock the last iteration held (undefined if it held none), and forgets it. */
  takeHeldToken(): string | undefined {
    const token = this.heldToken;
    this.heldToken = undefined;
    return token?.toString();
  }

  /** The read-modify-write, fenced; resolves with the counter written. */
  private async critical(lock: LockHandle): Promise<number> {
    const token = lock.fencingToken;
    this.heldToken = token;
    send({ type: 'acquired', token: token.toString() });
    lock.signal.throwIfAborted();
    const read = await this.store.read(token);
    if (!read.ok) throw new StaleTokenError(`read refused: ${read.reason}`);
    // Real work between the read and the write: other holders would interleave here without the lock.
    const slept = sleep(this.prng.between(20, 50));
    // Said once the timer runs (main may SIGSTOP us right away): a process paused now wakes up
    // with its timer due, and writes before it hears of anything that happened meanwhile.
    send({ type: 'yielding', token: token.toString() });
    await slept;
    // The documented way: stop when the lock is gone. (A process paused right here checks nothing:
    // the store's token check is what stops its write.)
    lock.signal.throwIfAborted();
    const counter = read.counter! + 1;
    const written = await this.store.write(token, counter);
    if (!written.ok) throw new StaleTokenError(`write of ${counter} refused: ${written.reason}`);
    return counter;
  }

  /** A pause between iterations, so that 4 workers do not saturate 2 cores. */
  pause(): Promise<void> {
    return sleep(this.prng.between(5, 25));
  }

  /** A longer pause after an error (a NotConnectedError would otherwise spin). */
  backoff(): Promise<void> {
    return sleep(this.prng.between(50, 250));
  }
}

@Module({})
export class ChaosWorkerModule {
  static forRoot(config: WorkerConfig): DynamicModule {
    return {
      module: ChaosWorkerModule,
      imports: [
        ZkLockModule.forRoot({
          connectionString: config.connectionString,
          sessionTimeout: config.sessionTimeout,
          appName: `chaos-worker-${config.workerId}`,
          connectTimeout: 30_000,
          operationTimeout: 5_000,
          reconnectDelay: 300,
          shutdownTimeout: 5_000,
        }),
      ],
      providers: [{ provide: WorkerConfig, useValue: config }, StoreClient, ChaosWriterService],
    };
  }
}

/** The error's name for main's counts: the class, plus the lost-lock reason or the ZooKeeper code. */
function kindOf(error: unknown): string {
  if (error instanceof LockLostError) return `LockLostError(${error.reason})`;
  if (error instanceof ZooKeeperError) return `ZooKeeperError(${error.zkCode})`;
  if (error instanceof Error) return error.constructor.name === 'Error' ? error.name : error.constructor.name;
  return typeof error;
}

let app: INestApplicationContext | undefined;
/** Set by main's `stop` (or SIGTERM, or main going away): the loop ends after the current iteration. */
const state = { stopRequested: false, closing: false };

/** Closes the context (our session and lock node go at once), tells main, exits. */
async function finish(code: number, iterations: number): Promise<never> {
  state.closing = true;
  const guard = setTimeout(() => {
    log('still closing after 15 s: exiting anyway');
    process.exit(code);
  }, 15_000);
  guard.unref();
  try {
    await app?.close();
  } catch (error) {
    log(`close failed: ${(error as Error).message}`);
  }
  if (process.connected) {
    // Wait until the message is handed to the channel before closing it.
    await new Promise<void>((resolve) => {
      process.send!({ type: 'stopped', iterations } satisfies WorkerMessage, undefined, {}, () => resolve());
    });
    process.disconnect();
  }
  process.exit(code);
}

async function main(): Promise<void> {
  if (!process.send) {
    process.stderr.write(
      'chaos/worker.js is forked by chaos/main.js (it needs the IPC channel); run `npm run chaos`.\n',
    );
    process.exit(2);
  }
  const config = WorkerConfig.fromEnv();
  process.on('message', (message: unknown) => {
    if (isMainMessage(message) && message.type === 'stop') state.stopRequested = true;
  });
  process.once('disconnect', () => {
    // main is gone (or done with us): stop at once
    state.stopRequested = true;
    if (!state.closing) void finish(1, 0);
  });
  process.once('SIGTERM', () => {
    state.stopRequested = true;
  });

  app = await NestFactory.createApplicationContext(ChaosWorkerModule.forRoot(config), {
    logger: ['error', 'warn'],
    abortOnError: false,
  });
  const connection = app.get(ZkConnectionService);
  let sessionSent: string | undefined;
  connection.state$.subscribe((event) => {
    if (event.state !== 'connected' || event.sessionId === sessionSent) return;
    const credentials = connection.sessionCredentials();
    const session = connection.currentSession();
    if (!credentials || !session) return;
    sessionSent = event.sessionId;
    log(`session 0x${event.sessionId} (timeout ${session.timeout} ms)`);
    send({
      type: 'session',
      id: credentials.id.toString('hex'),
      password: credentials.password.toString('hex'),
      timeout: session.timeout,
    });
  });
  send({ type: 'ready', style: config.style });
  log(`worker ${config.workerId} (pid ${process.pid}) ready, locking with ${config.style}`);

  const writer = app.get(ChaosWriterService);
  let iterations = 0;
  while (!state.stopRequested) {
    iterations += 1;
    try {
      await (config.style === 'decorator' ? writer.appendDecorated() : writer.appendWithLock());
      writer.takeHeldToken();
      await writer.pause();
    } catch (error) {
      const kind = kindOf(error);
      const message = error instanceof Error ? error.message : String(error);
      log(`${kind}: ${message}`);
      send({ type: 'error', kind, message, token: writer.takeHeldToken() });
      await writer.backoff();
    }
  }
  await finish(0, iterations);
}

main().catch((error: unknown) => {
  process.stderr.write(`worker ${process.env[ENV.workerId] ?? '?'} (pid ${process.pid}) failed: ${String(error)}\n`);
  if (error instanceof Error && error.stack) process.stderr.write(`${error.stack}\n`);
  process.exit(1);
});
