/**
 * One instance of the sample's scheduled-jobs app (sample/jobs-app.ts) in its own process, with
 * its own ZooKeeper session: forked by sample/main.ts with --jobs, which passes the settings in
 * the environment (see ENV in messages.ts) and hears over IPC what the instance does.
 *
 * SIGTERM (how sample/main.js stops an instance cleanly), or the parent going away, closes the
 * app: the instance leaves its elections (its nodes are deleted, so the next instance takes over
 * at once), closes its session and exits with code 0. SIGKILL (how sample/main.js crashes one)
 * leaves its nodes to the server, which deletes them when the session expires.
 */
import 'reflect-metadata';
import { performance } from 'node:perf_hooks';
import type { INestApplicationContext, LoggerService } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ZkConnectionService } from '../lib/index.js';
import { installProcessTripwire } from '../test/setup/process-tripwire.js';
import { JobsReporter, JobsSampleModule } from './jobs-app.js';
import { ENV, requireEnv, requirePositiveEnv, sendToParent } from './messages.js';

const id = process.env[ENV.workerId] ?? '?';

// An unhandled rejection or uncaught exception: one clear line, reported to sample/main.js, and a
// non-zero exit (the run then fails), as it would kill a production app.
installProcessTripwire(`sample jobs instance ${id}`, {
  report: (line) => sendToParent({ type: 'error', message: line }),
});

let app: INestApplicationContext | undefined;
let reporter: JobsReporter | undefined;

/** Warnings and errors go to sample/main.js (which prints them and fails the run on an error); the rest is dropped. */
function forwardingLogger(): LoggerService {
  const forward = (level: 'warn' | 'error' | 'fatal') => (message: unknown) => {
    const text = message instanceof Error ? (message.stack ?? message.message) : String(message);
    if (reporter) reporter.send({ type: 'log', level, message: text });
    else void sendToParent({ type: 'log', level, message: text }).catch(() => undefined);
  };
  const drop = () => undefined;
  return {
    log: drop,
    debug: drop,
    verbose: drop,
    warn: forward('warn'),
    error: forward('error'),
    fatal: forward('fatal'),
  };
}

let stopping: Promise<void> | undefined;

/** Closes the app (elections left, session closed), lets the last messages go out, exits 0. Once. */
function stop(): Promise<void> {
  stopping ??= (async () => {
    await app?.close();
    await reporter?.flush();
    process.exit(0);
  })();
  return stopping;
}

async function main(): Promise<void> {
  if (!process.send) {
    console.error(
      'sample/jobs-instance.js is forked by sample/main.js (it needs the IPC channel); run `npm run sample -- --jobs`.',
    );
    process.exit(2);
  }
  const connectionString = requireEnv(process.env, ENV.connect);
  const instance = requirePositiveEnv(process.env, ENV.workerId);
  process.once('SIGTERM', () => void stop());
  process.once('disconnect', () => void stop()); // the parent gone (killed, crashed): do not linger
  app = await NestFactory.createApplicationContext(JobsSampleModule.forRoot(connectionString, instance), {
    logger: forwardingLogger(),
    abortOnError: false, // throw instead of process.abort() when start-up fails
  });
  const jobsReporter = app.get(JobsReporter);
  reporter = jobsReporter;
  const session = app.get(ZkConnectionService).currentSession();
  jobsReporter.send({
    type: 'jobs-ready',
    sessionTimeoutMs: session?.timeout ?? Number.NaN,
    startupMs: performance.now(),
  });
}

main().catch(async (error: unknown) => {
  const message = error instanceof Error ? error.message : String(error);
  console.error(`jobs instance ${id} (pid ${process.pid}) failed:`, error);
  await sendToParent({ type: 'error', message }).catch(() => undefined);
  await app?.close().catch(() => undefined);
  process.exit(1);
});
