/**
 * The chaos run (`npm run chaos`): the promise of a lock is that it holds when things break.
 *
 * Starts a 3-server ZooKeeper ensemble (tickTime 200 ms), one TcpProxy per worker and member,
 * and W worker processes (chaos/worker.ts, chaos/workload.ts) that lock in every way the library
 * offers: fenced read-modify-writes of a counter under /locks/write_lock against the store
 * served here over their IPC channels (chaos/fenced-store.ts), holds of a read/write lock and a
 * semaphore; each holder reports its belief interval. Meanwhile chaos/faults.ts injects faults
 * from a seeded PRNG. At the end: faults stop, everything is restored, every worker must write
 * again, the workers stop, and the checks run (chaos/verdict.ts): counters, tokens, no
 * overlapping beliefs, every refusal explained, progress, orphan nodes, clean exits, tripwires,
 * expected errors only, every fault kind ran. See chaos/README.md.
 */
import { execFileSync } from 'node:child_process';
import { randomInt } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Logger } from '@nestjs/common';
import { LockService, ZkConnectionService, ZooKeeperError } from '../lib/index.js';
import { installProcessTripwire } from '../test/setup/process-tripwire.js';
import { MUTANT_TEXT, type MutantName } from '../test/mutants/port-mutants.js';
import { TcpProxy } from '../test/support/proxy.js';
import { startEnsemble, type ZkEnsemble } from '../test/support/zookeeper.js';
import { testTlsMaterial } from '../lib/testing/servers/tls.js';
import { parseChaosArgs, USAGE, UsageError, type ChaosArgs } from './args.js';
import { FencedStore } from './fenced-store.js';
import { startMember } from './fault-tools.js';
import { FAULT_TEXT, FaultInjector, type World } from './faults.js';
import { Pacer } from './pacer.js';
import { PATHS, type LockStyle, type TlsFiles } from './messages.js';
import { Prng } from './prng.js';
import { WorkerPool, type Slot } from './slots.js';
import { event, say, secs, sinceStart, startTimeline } from './timeline.js';
import { checksOf, printSummary } from './verdict.js';

// This file runs as chaos/dist/chaos/main.js.
const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const WORKER_SCRIPT = fileURLToPath(new URL('./worker.js', import.meta.url));
const DEFAULT_LOG = path.join(REPO_ROOT, 'chaos', 'lock.log');
const SESSION_TIMEOUTS = [2_000, 2_500, 3_000, 3_500, 4_000];
/** The ensemble's largest session timeout (20 ticks of 200 ms): a dead session is gone after it. */
const MAX_SESSION_TIMEOUT = 4_000;
const READY_TIMEOUT = 90_000;
/** After the faults: how long every worker process has to get an accepted write. */
const DRAIN_TIMEOUT = 90_000;
const STOP_TIMEOUT = 30_000;
/** After the workers exited: how long lock nodes may linger (sessions of killed workers expire). */
const ORPHAN_TIMEOUT = MAX_SESSION_TIMEOUT + 20_000;
/** The directories whose lock nodes must all be gone at the end. */
const LOCK_DIRS = [PATHS.counter, PATHS.rw, PATHS.multi, `${PATHS.semaphore}/locks`, `${PATHS.semaphore}/leases`];

// ---- the run's state (module level: the signal and exit handlers need it) ----

let ensemble: ZkEnsemble | undefined;
/** With --tls: the certificate files of every client (the workers, the orphan check, the session expirer). */
let tlsFiles: TlsFiles | undefined;
/** The tls option of main's own clients. */
const tlsOption = () =>
  tlsFiles && {
    ca: fs.readFileSync(tlsFiles.ca),
    cert: fs.readFileSync(tlsFiles.cert),
    key: fs.readFileSync(tlsFiles.key),
  };
const allProxies: TcpProxy[] = [];
/** Main's own lock client (chaos/pacer.ts), closed at the end or on a failure. */
const pacers: Pacer[] = [];
let pool: WorkerPool | undefined;
let injector: FaultInjector | undefined;

process.on('exit', () => pool?.killAll());

let interrupted = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (interrupted) return;
    interrupted = true;
    say(`\n${signal}: stopping the workers and the ensemble...`);
    if (pool) pool.quiet = true;
    injector?.stop();
    pool?.killAll();
    void Promise.allSettled([ensemble?.stop(), ...allProxies.map((p) => p.close())]).then(() =>
      process.exit(signal === 'SIGINT' ? 130 : 143),
    );
  });
}

// main's own tripwire: an unhandled rejection here is a bug of the harness; stop, clean up, fail.
installProcessTripwire('chaos main', {
  exit: async () => {
    if (pool) pool.quiet = true;
    injector?.stop();
    pool?.killAll();
    await Promise.allSettled(pacers.map((p) => p.close()));
    await Promise.allSettled([ensemble?.stop(), ...allProxies.map((p) => p.close())]);
    process.exit(1);
  },
});

/** Polls `condition` every 100 ms; true when it held before `timeoutMs`. */
async function until(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() >= deadline) return false;
    await sleep(100);
  }
  return true;
}

function zooKeeperClasspath(): void {
  // test/support finds scripts/zookeeper.sh relative to its own file, which is not where the
  // compiled copy in chaos/dist/ lives: tell it the classpath (scripts/chaos.sh does too).
  process.env['ZK_CLASSPATH'] ||= execFileSync('bash', [path.join(REPO_ROOT, 'scripts', 'zookeeper.sh'), 'classpath'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  }).trim();
}

/** The lock nodes left under `dirs` as seen through `connectionString`, polled until none or the deadline. */
async function lockNodesLeft(connectionString: string, deadline: number): Promise<{ left: string[]; info?: string }> {
  const connection = new ZkConnectionService({
    connectionString,
    sessionTimeout: MAX_SESSION_TIMEOUT,
    tls: tlsOption(),
  });
  await connection.connect();
  const childrenOf = async (dir: string) => {
    try {
      return (await connection.getChildren(dir)).children.map((child) => `${dir}/${child}`);
    } catch (error) {
      if (error instanceof ZooKeeperError && error.zkCode === 'NO_NODE') return [];
      throw error;
    }
  };
  try {
    for (;;) {
      const left = (await Promise.all(LOCK_DIRS.map(childrenOf))).flat();
      if (left.length === 0) return { left };
      if (Date.now() >= deadline) {
        const locks = new LockService(connection);
        const info = await Promise.all([PATHS.counter, PATHS.rw, PATHS.multi].map((p) => locks.inspect(p))).catch(
          () => undefined,
        );
        return { left, info: info && JSON.stringify(info) };
      }
      await sleep(200);
    }
  } finally {
    await connection.close();
  }
}

/** The log files, the intro lines. */
function prepare(args: ChaosArgs, seed: number): { logFile: string; workersLogFile: string } {
  const logFile = args.log === undefined ? DEFAULT_LOG : path.resolve(args.log);
  if (!fs.existsSync(path.dirname(logFile))) throw new UsageError(`--log ${args.log}: its directory does not exist`);
  const workersLogFile = logFile.replace(/(\.log)?$/, '.workers.log');
  const shown = (file: string) => path.relative(process.cwd(), file) || file;
  say(
    `nestjs-zk-lock chaos run: seed ${seed} (repeat the schedule with --seed ${seed}), ${secs(args.durationMs)} of faults, ` +
      `${args.workers} workers`,
  );
  if (args.tls) {
    say(
      '  over mutual TLS: the members serve secureClientPort only (ssl.clientAuth=need); faults that read frames are left out',
    );
  }
  if (args.mutant) {
    say(`  MUTANT ${args.mutant} in every worker (${MUTANT_TEXT[args.mutant as MutantName]}): this run must FAIL`);
  }
  say(`  store log: ${shown(logFile)}; workers' own output: ${shown(workersLogFile)}`);
  return { logFile, workersLogFile };
}

/** The slots, their proxies and first processes; resolves once all are connected. */
async function startWorkers(args: ChaosArgs, prng: Prng, workers: WorkerPool, members: ZkEnsemble): Promise<void> {
  for (let id = 1; id <= args.workers; id++) {
    const proxies = await Promise.all(
      members.servers.map((server) => TcpProxy.start({ host: server.host, port: server.port })),
    );
    allProxies.push(...proxies);
    // The last worker coalesces its callers (module option `coalesce`).
    const style: LockStyle = id === args.workers ? 'coalesce' : 'mixed';
    workers.add(id, proxies, prng.pick(SESSION_TIMEOUTS), style).respawn();
  }
  const allReady = await until(() => workers.slots.every((slot) => slot.current?.ready), READY_TIMEOUT);
  if (!allReady) {
    const late = workers.slots.filter((slot) => !slot.current?.ready).map((slot) => slot.id);
    throw new Error(`workers ${late.join(', ')} not connected within ${secs(READY_TIMEOUT)}`);
  }
  for (const slot of workers.slots) {
    event(
      `worker  ${slot.id}: pid ${slot.pid()}, ${slot.style === 'coalesce' ? 'coalescing (option coalesce)' : 'every way of locking'}, ` +
        `session timeout ${slot.sessionTimeout()} ms, via proxies ${slot.proxies.map((p) => p.port).join(',')}`,
    );
  }
}

/** Injects the faults for the run's duration, with a status line every 10 s; resolves with how long it took. */
async function injectFaults(args: ChaosArgs, faults: FaultInjector, workers: WorkerPool, store: FencedStore) {
  say(`\nFaults for ${secs(args.durationMs)}, one every 1-3 s, each kind in turn from a shuffled deck:`);
  for (const kind of args.kinds) say(`  ${kind.padEnd(17)} ${FAULT_TEXT[kind]}`);
  say();
  const startedAt = Date.now();
  const status = setInterval(() => {
    const up = workers.slots.filter((slot) => slot.current?.ready).length;
    const open = workers.slots.reduce((n, slot) => n + slot.holding().length, 0);
    event(
      `status  ${store.accepted} accepted, ${store.refused.length} refused, ${faults.total} faults ` +
        `(under way: ${[...faults.active].join(', ') || 'none'}), ${up}/${workers.slots.length} workers up, ` +
        `${workers.beliefs.length} beliefs (${open} held now), last counter holder w${workers.holder?.id ?? '-'}`,
    );
  }, 10_000);
  try {
    await faults.run(args.durationMs);
  } finally {
    clearInterval(status);
  }
  return { startedAt, ms: Date.now() - startedAt };
}

/** Restores every proxy, member and worker; waits until every worker has written again. Resolves with those that did not. */
async function recover(workers: WorkerPool, members: ZkEnsemble): Promise<Slot[]> {
  workers.ending = true;
  event('faults stopped; restoring every proxy, member and worker');
  for (const proxy of allProxies) proxy.restore();
  for (const slot of workers.slots) {
    const pid = slot.pid();
    if (slot.stopped && pid !== undefined) process.kill(pid, 'SIGCONT');
  }
  for (const server of members.servers) if (!server.isRunning()) await startMember(server);
  await members.waitForQuorum(60_000);
  for (const slot of workers.slots) if (!slot.current) slot.respawn();
  // Every worker must write again after the faults (a process that lost its session, or a new
  // one, included) before it is stopped.
  const drainStart = Date.now();
  const before = new Map(workers.slots.map((slot) => [slot, slot.current]));
  const baseline = new Map(workers.slots.map((slot) => [slot, slot.current?.accepted ?? 0]));
  const wroteAgain = (slot: Slot) => {
    const inc = slot.current;
    if (!inc) return false;
    return inc !== before.get(slot) ? inc.accepted > 0 : inc.accepted > baseline.get(slot)!;
  };
  const drained = await until(() => workers.slots.every(wroteAgain), DRAIN_TIMEOUT);
  const notAgain = workers.slots.filter((slot) => !wroteAgain(slot));
  event(
    drained
      ? `every worker has written again after the faults (within ${secs(Date.now() - drainStart)}); stopping the workers`
      : `workers ${notAgain.map((slot) => slot.id).join(', ')} did not write again within ${secs(DRAIN_TIMEOUT)}; stopping the workers`,
  );
  return notAgain;
}

/** Tells every worker to stop and waits for them (killing those that do not exit in time). */
async function stopWorkers(workers: WorkerPool): Promise<void> {
  for (const slot of workers.slots) {
    const inc = slot.current;
    if (!inc) continue;
    inc.stopRequested = true;
    workers.reply(inc, { type: 'stop' });
  }
  const stoppedInTime = await until(() => workers.slots.every((slot) => !slot.current), STOP_TIMEOUT);
  if (stoppedInTime) return;
  for (const slot of workers.slots) {
    const inc = slot.current;
    if (!inc) continue;
    workers.problems.push(
      `worker ${slot.id} process ${inc.pid} did not exit within ${secs(STOP_TIMEOUT)} of stop (killed)`,
    );
    inc.child.kill('SIGKILL');
    await inc.exited;
  }
}

/** Lock nodes left on the ensemble, and on every member (they must agree). */
async function findOrphans(members: ZkEnsemble) {
  const workersGoneAt = Date.now();
  event('workers stopped; looking for lock nodes left on the ensemble');
  const deadline = workersGoneAt + ORPHAN_TIMEOUT;
  const orphans = await lockNodesLeft(members.connectString, deadline);
  const afterMs = Date.now() - workersGoneAt;
  const perMember = await Promise.all(
    members.servers.map((server) => lockNodesLeft(server.connectString, Math.max(deadline, Date.now() + 2_000))),
  );
  const memberLeft = perMember.flatMap((m, i) => (m.left.length > 0 ? [`member ${i + 1}: ${m.left.join(' ')}`] : []));
  return { ...orphans, memberLeft, afterMs };
}

/** The 3-server ensemble (with --tls: secureClientPort only, mutual TLS) and the clients' certificate files. */
async function startMembers(tls: boolean): Promise<ZkEnsemble> {
  zooKeeperClasspath();
  const startedEnsemble = Date.now();
  const members = await startEnsemble({ tickTime: 200, tls: tls && { clientAuth: 'need' } });
  ensemble = members;
  if (tls) {
    const { caFile, client } = await testTlsMaterial();
    tlsFiles = { ca: caFile, cert: client.certFile, key: client.keyFile };
  }
  event(
    `ensemble of 3 members up in ${secs(Date.now() - startedEnsemble)}: ${members.connectString}${tls ? ' (TLS only)' : ''}`,
  );
  return members;
}

function newInjector(args: ChaosArgs, prng: Prng, members: ZkEnsemble, workers: WorkerPool, pacer: Pacer) {
  const world: World = {
    ensemble: members,
    tls: tlsOption(),
    workers: workers.slots,
    pacer,
    log: event,
    onYielding: (take) => {
      workers.yieldTakers.add(take);
      return { cancel: () => workers.yieldTakers.delete(take) };
    },
  };
  return new FaultInjector(world, prng, args.kinds);
}

async function run(args: ChaosArgs): Promise<number> {
  startTimeline();
  const seed = args.seed ?? randomInt(2 ** 32);
  const prng = new Prng(seed);
  const { logFile, workersLogFile } = prepare(args, seed);
  Logger.overrideLogger(['error']); // the library's connection warnings of the orphan check: not here
  const store = new FencedStore(logFile);
  const output = fs.createWriteStream(workersLogFile);

  const members = await startMembers(args.tls);
  const workers = new WorkerPool({
    workerScript: WORKER_SCRIPT,
    store,
    output,
    seed: () => prng.int(0, 2 ** 32 - 1),
    mutant: args.mutant,
    tls: tlsFiles,
  });
  pool = workers;
  await startWorkers(args, prng, workers, members);
  const pacer = await Pacer.start(members, tlsOption(), (belief) => workers.beliefs.push(belief));
  pacers.push(pacer);

  const faults = newInjector(args, prng, members, workers, pacer);
  injector = faults;
  workers.injector = faults;
  const injected = await injectFaults(args, faults, workers, store);
  const notWrittenAgain = await recover(workers, members);
  await stopWorkers(workers);
  await pacer.close();
  const orphans = await findOrphans(members);
  output.end();

  const input = {
    pool: workers,
    store,
    injector: faults,
    kinds: args.kinds,
    logText: fs.readFileSync(logFile, 'utf8'),
    notWrittenAgain,
    orphans,
    faultsStartedAt: injected.startedAt,
  };
  const ok = printSummary(
    { ...input, seed, workers: args.workers, faultsMs: injected.ms, runMs: sinceStart(), mutant: args.mutant },
    checksOf(input),
  );
  await Promise.all(allProxies.map((proxy) => proxy.close()));
  await members.stop();
  return ok ? 0 : 1;
}

async function main(): Promise<number> {
  let args: ChaosArgs;
  try {
    args = parseChaosArgs(process.argv.slice(2));
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`chaos: ${error.message}\nRun with --help for the options.\n`);
    return 2;
  }
  if (args.help) {
    say(USAGE);
    return 0;
  }
  try {
    return await run(args);
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`chaos: ${error.message}\n`);
      return 2;
    }
    process.stderr.write(`\nchaos: the run failed: ${(error as Error).stack ?? String(error)}\n`);
    if (pool) pool.quiet = true;
    injector?.stop();
    pool?.killAll();
    await Promise.allSettled(pacers.map((p) => p.close()));
    await Promise.allSettled([ensemble?.stop(), ...allProxies.map((p) => p.close())]);
    return 1;
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`chaos: unexpected failure: ${String(error)}\n`);
    process.exit(1);
  },
);
