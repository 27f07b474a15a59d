/**
 * `npm run sample -- --http`: two instances of the HTTP app (sample/http-app.ts), each its own
 * process with its own ZooKeeper session on a free loopback port, get N requests (C in flight)
 * alternating between them; each request appends a line to the log under the lock. Then the
 * instances are stopped (SIGTERM: Nest's shutdown hooks) and the log is verified as in the
 * worker mode.
 */
import { fork } from 'node:child_process';
import * as fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import type { SampleArgs } from './args.js';
import { Fleet, lastOutput, type Member } from './fleet.js';
import { LoadStats, runLoad } from './http-load.js';
import { ENV, isInstanceMessage } from './messages.js';
import { elapsedText, millis, percentile, Progress, say, sayVerdict, seconds, tail } from './report.js';
import { verifyLog } from './verify.js';

const INSTANCE_SCRIPT = fileURLToPath(new URL('./http-instance.js', import.meta.url));
const INSTANCES = 2;
/** Both instances listening (Nest loaded, ZooKeeper session up). */
const LISTEN_TIMEOUT = 60_000;
/** One request, lock wait included. */
const REQUEST_TIMEOUT = 60_000;
/** All requests answered: 60 s plus 100 ms per request (a locked append takes a few ms). */
const loadTimeout = (requests: number) => 60_000 + requests * 100;
/** Each instance gone after SIGTERM: the module's shutdownTimeout (10 s) plus closing the session. */
const STOP_TIMEOUT = 15_000;

interface Instance extends Member {
  /** Set once it listens. */
  url?: string;
  startupMs: number;
}

function describeInstance(instance: Instance): string {
  const text = `app instance ${instance.id} (pid ${instance.child.pid ?? '?'}) exited (${instance.exit ?? 'still running'})`;
  return instance.error ? `${text}: ${instance.error}` : text;
}

function forkInstance(fleet: Fleet<Instance>, id: number, connect: string, log: string): Instance {
  const child = fork(INSTANCE_SCRIPT, [], {
    env: { ...process.env, [ENV.connect]: connect, [ENV.workerId]: String(id), [ENV.log]: log },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    serialization: 'json',
  });
  const instance: Instance = { id, child, startupMs: 0, output: '' };
  return fleet.adopt(instance, {
    message: (message) => {
      if (!isInstanceMessage(message)) return;
      if (message.type === 'listening') {
        instance.url = message.url;
        instance.startupMs = message.startupMs;
      } else {
        instance.error = message.message;
      }
    },
    // Instances run until they are stopped.
    closed: () => (fleet.stopping ? undefined : new Error(`${describeInstance(instance)}${lastOutput(instance)}`)),
  });
}

/** Runs the HTTP mode; resolves with the exit status (0: the log verifies). Rejects when the run fails. */
export async function runHttp(args: SampleArgs, connect: string, log: string, shownLog: string): Promise<number> {
  const fleet = new Fleet<Instance>();
  const instances = fleet.members;
  const startedAt = performance.now();
  say(
    `Starting ${INSTANCES} app instances (each a Nest HTTP app in its own process, with its own ZooKeeper session, ` +
      'on a free loopback port)...',
  );
  for (let id = 1; id <= INSTANCES; id++) forkInstance(fleet, id, connect, log);
  const listening = () => instances.filter((i) => i.url !== undefined).length;
  let progress = new Progress((ms) => `${elapsedText(ms)}  ${listening()}/${INSTANCES} app instances listening`, 5_000);
  await fleet.until(
    () => listening() === INSTANCES,
    LISTEN_TIMEOUT,
    () => `${INSTANCES - listening()} of ${INSTANCES} app instances not listening within ${seconds(LISTEN_TIMEOUT)}`,
  );
  progress.stop(false);
  for (const i of instances) {
    say(`  instance ${i.id}: ${i.url} (pid ${i.child.pid}), listening ${seconds(i.startupMs)} after its start`);
  }
  say(`Both listening after ${seconds(performance.now() - startedAt)}.`);

  const route = args.noLock ? '/log-unlocked' : '/log';
  say(
    `Sending ${args.requests} POST ${route} requests, ${args.concurrency} at a time, alternating between the instances...`,
  );
  const stats = new LoadStats(INSTANCES);
  const deadline = AbortSignal.timeout(loadTimeout(args.requests));
  progress = new Progress(
    (ms) =>
      `${elapsedText(ms)}  ${stats.answered}/${args.requests} answered  per instance: ${stats.perTarget.join(' ')}  ` +
      `in flight: ${stats.inFlight}  failed: ${stats.failed}`,
    1_000,
  );
  const load = await runLoad(
    {
      targets: instances.map((i) => i.url!),
      path: route,
      requests: args.requests,
      concurrency: args.concurrency,
      requestTimeoutMs: REQUEST_TIMEOUT,
      // An instance that dies stops the load; so does the deadline.
      signal: AbortSignal.any([fleet.failed, deadline]),
    },
    stats,
  );
  progress.stop();
  if (fleet.failed.aborted) throw fleet.failed.reason;
  if (deadline.aborted) {
    throw new Error(
      `${stats.answered} of ${args.requests} requests answered within ${seconds(loadTimeout(args.requests))}`,
    );
  }

  // Graceful: Nest's shutdown hooks close the apps (the ZooKeeper sessions with them); exit code 0.
  const problems: string[] = [];
  const stoppingAt = performance.now();
  const killed = await fleet.stop(STOP_TIMEOUT);
  const stopMs = performance.now() - stoppingAt;
  if (killed.length > 0) {
    problems.push(`${killed.length} app instances did not exit within ${seconds(STOP_TIMEOUT)} after SIGTERM (killed)`);
  }
  for (const i of instances) {
    if (!killed.includes(i) && i.exit !== 'exit code 0') problems.push(describeInstance(i));
  }

  const result = verifyLog(fs.readFileSync(log, 'utf8'), { expectedLines: args.requests, fenced: !args.noLock });
  sayVerdict(result, { log: shownLog, expected: args.requests, fenced: !args.noLock });

  const answered = load.latencies.length;
  say(
    `  ${args.requests} requests (${stats.perTarget.join(' + ')} per instance, ${args.concurrency} at a time) ` +
      `in ${seconds(load.elapsedMs)}: ${((answered / load.elapsedMs) * 1000).toFixed(1)} requests/s`,
  );
  say(
    `  latency: p50 ${millis(percentile(load.latencies, 50))}, p99 ${millis(percentile(load.latencies, 99))}, ` +
      `max ${millis(load.latencies.at(-1) ?? 0)} (${answered} answered${load.failures.length > 0 ? `, ${load.failures.length} failed` : ''})`,
  );
  if (problems.length === 0) {
    say(`  app instances stopped gracefully in ${seconds(stopMs)} (shutdown hooks ran, ZooKeeper sessions closed)`);
  }

  if (load.failures.length > 0) {
    problems.push(`${load.failures.length} of ${args.requests} requests failed:`);
    for (const failure of load.failures.slice(0, 5)) problems.push(`  ${failure}`);
    if (load.failures.length > 5) problems.push(`  ... and ${load.failures.length - 5} more`);
  }
  const talkative = instances.filter((i) => i.output.trim() !== '');
  if (talkative.length > 0) {
    say('\nOutput of the app instances (last lines):');
    for (const i of talkative)
      say(`[instance ${i.id}] ${tail(i.output, 10).replaceAll('\n', `\n[instance ${i.id}] `)}`);
  }
  for (const problem of problems) say(problem.startsWith('  ') ? problem : `Problem: ${problem}`);
  if (args.noLock && !result.ok) {
    say(
      '\nWithout the lock, concurrent requests (in the same instance and across both) read the same last counter ' +
        'and write the same next number, so counters are duplicated and go missing: this is exactly the corruption ' +
        'the distributed lock prevents.',
    );
  }
  return result.ok && problems.length === 0 ? 0 : 1;
}
