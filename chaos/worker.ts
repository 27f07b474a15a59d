/**
 * One worker of the chaos run: a Nest application context (its own ZooKeeper session, through
 * its own proxies) that runs the workload of chaos/workload.ts until chaos/main.ts says `stop`:
 *
 * - the counter loop (two at once in the `coalesce` worker): a fenced read-modify-write of the
 *   counter under /locks/write_lock, each iteration by a way of locking drawn from the PRNG
 *   (decorator, withLock, an Observable method, tryAcquire, a short timeout, a multi-lock, a
 *   write under a held read lock);
 * - the read/write loop: holds of the read/write lock /chaos/rw (short reads, writes, long reads);
 * - the semaphore loop: holds of the semaphore /chaos/sem (acquire, tryAcquire).
 *
 * Every holder reports its belief interval to main. Every error of an iteration is reported to
 * main and the loop goes on. An unhandled rejection or uncaught exception trips the tripwire:
 * reported to main, then the process exits (the run fails). With CHAOS_MUTANT set, the
 * connection is patched with that mutant of test/mutants/port-mutants.ts (the run must fail).
 * Forked by chaos/main.ts with the settings in the environment (ENV in messages.ts).
 */
import 'reflect-metadata';
import { readFileSync } from 'node:fs';
import { Module, type DynamicModule, type INestApplicationContext } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { LockLostError, ZkConnectionService, ZkLockModule, ZooKeeperError } from '../lib/index.js';
import { installProcessTripwire } from '../test/setup/process-tripwire.js';
import { applyMutant, isMutantName } from '../test/mutants/port-mutants.js';
import { ENV, isMainMessage, type LockStyle, type TlsFiles, type WorkerMessage } from './messages.js';
import { Busy, now, send, StoreClient, Workload, WorkloadSeed, type Iteration, type SideOp } from './workload.js';

export class WorkerConfig {
  constructor(
    readonly connectionString: string,
    readonly workerId: number,
    readonly sessionTimeout: number,
    readonly style: LockStyle,
    readonly seed: number,
    readonly mutant: string | undefined,
    /** With --tls: the certificate files, read at each connection (as an app that rotates them does). */
    readonly tls: TlsFiles | undefined,
  ) {}

  static fromEnv(env: NodeJS.ProcessEnv = process.env): WorkerConfig {
    const need = (name: string) => {
      const value = env[name];
      if (!value) throw new Error(`${name} is not set (chaos/main.js sets it)`);
      return value;
    };
    const style = need(ENV.style);
    if (style !== 'mixed' && style !== 'coalesce') throw new Error(`${ENV.style}=${style}`);
    const mutant = env[ENV.mutant] || undefined;
    if (mutant !== undefined && !isMutantName(mutant)) throw new Error(`${ENV.mutant}=${mutant}: no such mutant`);
    return new WorkerConfig(
      need(ENV.connect),
      Number(need(ENV.workerId)),
      Number(need(ENV.sessionTimeout)),
      style,
      Number(need(ENV.seed)),
      mutant,
      env[ENV.tls] ? (JSON.parse(need(ENV.tls)) as TlsFiles) : undefined,
    );
  }
}

const log = (text: string) => process.stdout.write(`${new Date().toISOString()} ${text}\n`);

// First thing: an unhandled rejection or uncaught exception is reported to main (which fails the
// run), printed, and ends the process, as it would end a production app.
installProcessTripwire(`chaos worker ${process.env[ENV.workerId] ?? '?'}`, {
  report: (line) =>
    new Promise<void>((resolve) => {
      if (!process.connected) return resolve();
      process.send!({ type: 'tripwire', line } satisfies WorkerMessage, undefined, {}, () => resolve());
    }),
});

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
          coalesce: config.style === 'coalesce',
          tls: config.tls && tlsFromFiles(config.tls),
        }),
      ],
      providers: [
        { provide: WorkerConfig, useValue: config },
        { provide: WorkloadSeed, useValue: new WorkloadSeed(config.seed) },
        StoreClient,
        Workload,
      ],
    };
  }
}

/** The tls option of an app whose certificate files may be replaced: read them at each connection. */
function tlsFromFiles(files: TlsFiles) {
  return () => ({ ca: readFileSync(files.ca), cert: readFileSync(files.cert), key: readFileSync(files.key) });
}

/** The error's name for main's counts: the class, plus the lost-lock reason or the ZooKeeper code. */
function kindOf(error: unknown): string {
  if (error instanceof LockLostError) return `LockLostError(${error.reason})`;
  if (error instanceof ZooKeeperError) return `ZooKeeperError(${error.zkCode})`;
  if (error instanceof Error) return error.constructor.name === 'Error' ? error.name : error.constructor.name;
  return typeof error;
}

let app: INestApplicationContext | undefined;
/** Set by main's `stop` (or SIGTERM, or main going away): the loops end after their current iteration. */
const state = { stopRequested: false, closing: false, iterations: 0 };

/** Closes the context (our session and lock nodes go at once), tells main, exits. */
async function finish(code: number): Promise<never> {
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
      process.send!({ type: 'stopped', iterations: state.iterations } satisfies WorkerMessage, undefined, {}, () =>
        resolve(),
      );
    });
    process.disconnect();
  }
  process.exit(code);
}

/** Runs `iteration` until stopped, reporting each outcome; errors are reported and survived. */
async function loop<Op extends string>(
  workload: Workload,
  pick: () => Op,
  iteration: (it: Iteration & { op: Op }) => Promise<void>,
  pause: { min: number; max: number } = { min: 5, max: 25 },
): Promise<void> {
  while (!state.stopRequested) {
    state.iterations += 1;
    const it: Iteration & { op: Op } = { op: pick() };
    try {
      await iteration(it);
      send({ type: 'op', op: it.op, outcome: 'ok' });
      await workload.pause(pause.min, pause.max);
    } catch (error) {
      if (error instanceof Busy) {
        send({ type: 'op', op: it.op, outcome: 'busy' });
        await workload.pause(pause.min, pause.max);
        continue;
      }
      const kind = kindOf(error);
      const message = error instanceof Error ? error.message : String(error);
      log(`${it.op}: ${kind}: ${message}`);
      send({ type: 'op', op: it.op, outcome: 'error' });
      send({ type: 'error', op: it.op, kind, message, token: it.token?.toString() });
      await workload.backoff();
    }
  }
}

/** Reports every stretch of 150 ms or more in which the event loop did not run (the process acted on nothing). */
function watchStalls(): void {
  let last = process.hrtime.bigint();
  const timer = setInterval(() => {
    const at = process.hrtime.bigint();
    if (at - last > 150_000_000n) send({ type: 'stall', from: last.toString(), to: at.toString() });
    last = at;
  }, 20);
  timer.unref();
}

/** Tells main each new session, with what it needs to expire it. */
function reportSessions(connection: ZkConnectionService): void {
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
    if (!state.closing) void finish(1);
  });
  process.once('SIGTERM', () => {
    state.stopRequested = true;
  });

  app = await NestFactory.createApplicationContext(ChaosWorkerModule.forRoot(config), {
    logger: ['error', 'warn'],
    abortOnError: false,
  });
  const connection = app.get(ZkConnectionService);
  if (config.mutant !== undefined && isMutantName(config.mutant)) {
    applyMutant(connection, config.mutant);
    log(`MUTANT ${config.mutant} applied to this worker's connection`);
  }
  reportSessions(connection);
  watchStalls();
  send({ type: 'ready', style: config.style, mutant: config.mutant });
  log(`worker ${config.workerId} (pid ${process.pid}) ready, style ${config.style}, clock ${now()}`);

  const workload = app.get(Workload);
  workload.beliefs.session = () => connection.currentSession()?.id.toString(16).padStart(16, '0');
  const counter = () =>
    loop(
      workload,
      () => workload.pickCounterOp(),
      (it) => workload.counter(it),
    );
  const side = (pick: () => SideOp) => loop(workload, pick, (it) => workload.side(it.op));
  const rw = () => side(() => workload.pickRwOp());
  const semaphore = () => side(() => workload.pickSemaphoreOp());
  await Promise.all([counter(), rw(), semaphore(), ...(config.style === 'coalesce' ? [counter()] : [])]);
  await finish(0);
}

main().catch((error: unknown) => {
  process.stderr.write(`worker ${process.env[ENV.workerId] ?? '?'} (pid ${process.pid}) failed: ${String(error)}\n`);
  if (error instanceof Error && error.stack) process.stderr.write(`${error.stack}\n`);
  process.exit(1);
});
