/**
 * One instance of the sample's HTTP app (sample/http-app.ts) in its own process: forked by
 * sample/main.ts with --http, which passes the settings in the environment (see ENV in
 * messages.ts). It listens on a free loopback port and reports `listening` with its URL over IPC.
 *
 * It enables Nest's shutdown hooks: on SIGTERM (how sample/main.js stops it) or SIGINT the app
 * closes (ZkLockModule lets running locked calls finish, releases, and closes the ZooKeeper
 * session) and the process exits with code 0. When sample/main.js goes away, it does the same.
 */
import 'reflect-metadata';
import { performance } from 'node:perf_hooks';
import type { INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { HttpAppConfig, HttpAppModule } from './http-app.js';
import { installProcessTripwire } from '../test/setup/process-tripwire.js';
import { ENV, sendToParent } from './messages.js';

// An unhandled rejection or uncaught exception: one clear line, reported to sample/main.js, and a
// non-zero exit (the run then fails), as it would kill a production app.
installProcessTripwire(`sample app instance ${process.env[ENV.workerId] ?? '?'}`, {
  report: (line) => sendToParent({ type: 'error', message: line }),
});

let app: INestApplication | undefined;

async function main(): Promise<void> {
  if (!process.send) {
    console.error(
      'sample/http-instance.js is forked by sample/main.js (it needs the IPC channel); run `npm run sample -- --http`.',
    );
    process.exit(2);
  }
  const config = HttpAppConfig.fromEnv();
  app = await NestFactory.create(HttpAppModule.forRoot(config), {
    logger: ['error', 'warn'],
    abortOnError: false, // throw instead of process.abort() when start-up fails (e.g. ZooKeeper unreachable)
  });
  // useProcessExit: exit with code 0 once closed (instead of raising the signal again), so the
  // parent can tell a graceful stop from a kill.
  app.enableShutdownHooks([], { useProcessExit: true });
  // The parent gone (killed, crashed): shut down the same way rather than linger.
  process.once('disconnect', () => process.kill(process.pid, 'SIGTERM'));
  await app.listen(0, '127.0.0.1'); // port 0: a free port, chosen by the OS
  await sendToParent({ type: 'listening', url: await app.getUrl(), startupMs: performance.now() });
}

main().catch(async (error: unknown) => {
  const message = error instanceof Error ? error.message : String(error);
  console.error(`app instance ${process.env[ENV.workerId] ?? '?'} (pid ${process.pid}) failed:`, error);
  await sendToParent({ type: 'error', message }).catch(() => undefined);
  await app?.close().catch(() => undefined);
  process.exit(1);
});
