/**
 * The testing kit's real-server side (`nestjs-zk-lock/testing`): expireSession(connection) on a real
 * server; the Docker runtime, driven through a stand-in `docker` CLI that fronts real JVM servers
 * (this machine has no Docker engine: everything but the image itself is exercised); the error
 * when neither a local ZooKeeper nor Docker is there; and no JVM, container or temp dir left by a
 * test process that is SIGKILLed.
 */
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Injectable, Module } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import {
  DistributedLock,
  LockLostError,
  LockService,
  ZK_LOCK_OPTIONS,
  ZkConnectionService,
  ZkLockModule,
} from '../../lib/index.js';
import {
  expireSession,
  fourLetter,
  startEnsemble as kitEnsemble,
  startZooKeeper as kitZooKeeper,
  stopAllZooKeepers,
  TcpProxy,
  waitFor,
  type ZkEnsemble,
  type ZkServer,
} from '../../lib/testing/index.js';
import { startEnsemble, startZooKeeper } from '../support/index.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'nestjs-zk-lock-kit-'));
let server: ZkServer;
const connections: ZkConnectionService[] = [];

beforeAll(async () => {
  server = await startZooKeeper();
}, 60_000);
afterEach(async () => {
  await Promise.all(connections.splice(0).map((connection) => connection.close()));
});
afterAll(async () => {
  await stopAllZooKeepers();
  killFakeContainers();
  fs.rmSync(scratch, { recursive: true, force: true });
});

async function lockClient(connectionString: string) {
  const connection = new ZkConnectionService({ connectionString, sessionTimeout: 2_000, reconnectDelay: 50 });
  connections.push(connection);
  await connection.connect();
  return { connection, locks: new LockService(connection) };
}

describe('expireSession on a real server', () => {
  it('ends the session on the server and resolves once the connection has told its holders', async () => {
    const a = await lockClient(server.connectString);
    const b = await lockClient(server.connectString);
    const held = await a.locks.acquire('/locks/kit-expire');
    const next = b.locks.acquire('/locks/kit-expire', { timeout: 10_000 });
    const session = a.connection.currentSession()!;
    await expireSession(a.connection);
    expect(session.ended.aborted).toBe(true);
    expect((held.signal.reason as LockLostError).reason).toBe('session-expired');
    const got = await next;
    expect(got.fencingToken).toBeGreaterThan(held.fencingToken);
    await got.release();
    const again = await a.connection.waitForSession();
    expect(again.id).not.toBe(session.id);
  });

  it('a cut-off connection (waitUntilTold: false) hears of it once it reaches the server again', async () => {
    const proxy = await TcpProxy.start({ host: server.host, port: server.port });
    try {
      const a = await lockClient(proxy.connectString);
      const b = await lockClient(server.connectString);
      const held = await a.locks.acquire('/locks/kit-expire-cut');
      proxy.blackhole();
      // Its own connection string goes through the cut proxy: reach the server directly.
      await expireSession(a.connection, { waitUntilTold: false, connectionString: server.connectString });
      const got = await b.locks.acquire('/locks/kit-expire-cut', { timeout: 5_000 }); // the server let b in
      proxy.restore();
      await waitFor(() => held.signal.aborted, { message: 'told after the cut' });
      expect((held.signal.reason as LockLostError).reason).toBe('session-expired');
      await got.release();
    } finally {
      await proxy.close();
    }
  });

  it('refuses a connection without a session', async () => {
    const idle = new ZkConnectionService({ connectionString: server.connectString, lazyConnect: true });
    connections.push(idle);
    await expect(expireSession(idle)).rejects.toThrow(/no session/);
  });
});

@Injectable()
class NightlyReport {
  constructor(readonly locks: LockService) {}

  @DistributedLock('/locks/kit-nightly')
  async run(): Promise<bigint> {
    return this.locks.current()!.fencingToken;
  }
}

@Module({
  imports: [ZkLockModule.forRoot({ connectionString: 'zk1.example:2181,zk2.example:2181' })],
  providers: [NightlyReport],
})
class NightlyModule {}

describe("an application's e2e test on a kit server (the README's example)", () => {
  it('overrideProvider(ZK_LOCK_OPTIONS) points the application at the server', async () => {
    const moduleRef = await Test.createTestingModule({ imports: [NightlyModule] })
      .overrideProvider(ZK_LOCK_OPTIONS)
      .useValue({ connectionString: server.connectString, sessionTimeout: 4_000 })
      .compile();
    await moduleRef.init();
    try {
      expect(moduleRef.get(ZkConnectionService).serverAddress()).toBe(server.connectString);
      const [first, second] = await Promise.all([
        moduleRef.get(NightlyReport).run(),
        moduleRef.get(NightlyReport).run(),
      ]);
      expect(first).not.toBe(second);
    } finally {
      await moduleRef.close();
    }
  });
});

// ---- a `docker` CLI stand-in: containers are TCP forwarders to real JVM servers ----

const FAKE = path.join(scratch, 'docker');
const STATE = path.join(scratch, 'docker-state');

const FORWARDER = `import * as net from 'node:net';
const [port, target] = process.argv.slice(2).map(Number);
// allowHalfOpen: a four letter word's client half-closes after its command and waits for the answer.
net.createServer({ allowHalfOpen: true }, (c) => { const u = net.connect(target, '127.0.0.1'); c.pipe(u).pipe(c); c.on('error', () => u.destroy()); u.on('error', () => c.destroy()); }).listen(port, '127.0.0.1');
`;

// Logs every call (one JSON line), keeps each container as a JSON file, runs a forwarder per started container.
const FAKE_DOCKER = `import * as fs from 'node:fs';
import { spawn } from 'node:child_process';
const state = ${JSON.stringify(STATE)};
const args = process.argv.slice(2);
fs.appendFileSync(state + '/calls.log', JSON.stringify(args) + '\\n');
const file = (id) => state + '/' + id + '.json';
const load = (id) => (fs.existsSync(file(id)) ? JSON.parse(fs.readFileSync(file(id), 'utf8')) : undefined);
const save = (c) => fs.writeFileSync(file(c.id), JSON.stringify(c));
const halt = (c) => { if (c.pid) { try { process.kill(c.pid); } catch {} } c.pid = 0; c.running = false; save(c); };
const [cmd, ...rest] = args;
if (cmd === 'info' || cmd === 'network' || cmd === 'cp' || cmd === 'pause' || cmd === 'unpause') {
  console.log('ok');
} else if (cmd === 'create') {
  const id = Math.random().toString(16).slice(2, 14);
  const env = {};
  let port = 0;
  for (let i = 0; i < rest.length; i++) {
    if (rest[i] === '-e') { const [k, ...v] = rest[++i].split('='); env[k] = v.join('='); }
    if (rest[i] === '-p') port = Number(rest[++i].split(':')[1]);
  }
  save({ id, env, port, running: false, pid: 0 });
  console.log(id);
} else if (cmd === 'start') {
  const c = load(rest[0]);
  const targets = JSON.parse(fs.readFileSync(state + '/targets.json', 'utf8'));
  const child = spawn(process.execPath, [state + '/forwarder.mjs', String(c.port), String(targets[c.env.ZOO_MY_ID ?? '1'])], { detached: true, stdio: 'ignore' });
  child.unref();
  c.pid = child.pid; c.running = true; save(c);
  console.log(c.id);
} else if (cmd === 'stop' || cmd === 'kill') {
  halt(load(rest.at(-1)));
} else if (cmd === 'rm') {
  const c = load(rest.at(-1));
  if (c) { halt(c); fs.rmSync(file(c.id)); }
} else if (cmd === 'wait') {
  const timer = setInterval(() => { const c = load(rest[0]); if (!c || !c.running) { clearInterval(timer); console.log('137'); } }, 50);
} else if (cmd === 'logs') {
  console.log('fake logs');
} else {
  console.error('fake docker: unknown command ' + cmd); process.exit(1);
}
`;

function installFakeDocker(targets: Record<string, number>): void {
  fs.mkdirSync(STATE, { recursive: true });
  fs.writeFileSync(path.join(STATE, 'forwarder.mjs'), FORWARDER);
  fs.writeFileSync(path.join(STATE, 'fake-docker.mjs'), FAKE_DOCKER);
  fs.writeFileSync(path.join(STATE, 'targets.json'), JSON.stringify(targets));
  fs.writeFileSync(
    FAKE,
    `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(path.join(STATE, 'fake-docker.mjs'))} "$@"\n`,
  );
  fs.chmodSync(FAKE, 0o755);
  fs.writeFileSync(path.join(STATE, 'calls.log'), '');
}

function dockerCalls(): string[][] {
  return fs
    .readFileSync(path.join(STATE, 'calls.log'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as string[]);
}

function containers(): { id: string; running: boolean; pid: number; env: Record<string, string> }[] {
  if (!fs.existsSync(STATE)) return [];
  return fs
    .readdirSync(STATE)
    .filter((name) => /^[0-9a-f]+\.json$/.test(name))
    .map(
      (name) => JSON.parse(fs.readFileSync(path.join(STATE, name), 'utf8')) as ReturnType<typeof containers>[number],
    );
}

function killFakeContainers(): void {
  for (const container of containers()) {
    try {
      if (container.pid) process.kill(container.pid);
    } catch {
      // gone
    }
  }
}

describe('the Docker runtime (through a docker CLI stand-in)', () => {
  it('a standalone server: the official image configured by its environment, a fixed published port, stop/start, dispose', async () => {
    installFakeDocker({ '1': server.port });
    const docked = await kitZooKeeper({ runtime: 'docker', docker: FAKE, image: 'zookeeper:test' });
    expect(docked.runtime).toBe('docker');
    expect(docked.pid).toBeUndefined();
    const create = dockerCalls().find(([command]) => command === 'create')!;
    expect(create.at(-1)).toBe('zookeeper:test');
    expect(create).toEqual(
      expect.arrayContaining([
        `127.0.0.1:${docked.port}:2181`,
        'ZOO_TICK_TIME=200',
        'ZOO_4LW_COMMANDS_WHITELIST=*',
        'ZOO_MAX_CLIENT_CNXNS=0',
        'ZOO_CFG_EXTRA=forceSync=no preAllocSize=1024',
        'JVMFLAGS=-Xmx256m -Djava.net.preferIPv4Stack=true -Dznode.container.checkIntervalMs=500',
      ]),
    );
    expect(await fourLetter(docked, 'ruok')).toBe('imok');
    const { locks } = await lockClient(docked.connectString);
    await (await locks.acquire('/locks/kit-docker')).release();

    const port = docked.port;
    await docked.stop();
    expect(docked.isRunning()).toBe(false);
    await docked.start();
    expect(docked.port).toBe(port);
    expect(await fourLetter(docked, 'ruok')).toBe('imok');
    expect(docked.logTail()).toBe('fake logs');

    await docked.dispose();
    expect(dockerCalls().map(([command]) => command)).toEqual(
      expect.arrayContaining(['info', 'create', 'start', 'wait', 'stop', 'logs', 'rm']),
    );
    expect(containers()).toEqual([]);
    expect(fs.existsSync(docked.dir)).toBe(false);
  }, 60_000);

  it('an ensemble: a network, ZOO_MY_ID and ZOO_SERVERS per member, a quorum; stop() removes it all', async () => {
    const behind: ZkEnsemble = await startEnsemble();
    try {
      installFakeDocker(Object.fromEntries(behind.servers.map((s, i) => [String(i + 1), s.port])));
      const ensemble = await kitEnsemble({ runtime: 'docker', docker: FAKE });
      const memberOf = (create: string[]) => create.find((arg) => arg.startsWith('ZOO_MY_ID=')) ?? '';
      const creates = dockerCalls()
        .filter(([command]) => command === 'create')
        .toSorted((a, b) => memberOf(a).localeCompare(memberOf(b)));
      expect(creates).toHaveLength(3);
      const network = dockerCalls().find(([command, sub]) => command === 'network' && sub === 'create')![2];
      creates.forEach((create, i) => {
        expect(create).toEqual(
          expect.arrayContaining([
            '--network',
            network,
            '--network-alias',
            `zk${i + 1}`,
            `ZOO_MY_ID=${i + 1}`,
            'ZOO_SERVERS=server.1=zk1:2888:3888;2181 server.2=zk2:2888:3888;2181 server.3=zk3:2888:3888;2181',
          ]),
        );
      });
      expect(await ensemble.leaderIndex()).toBe(await behind.leaderIndex());
      await ensemble.stop();
      expect(containers()).toEqual([]);
      expect(dockerCalls()).toContainEqual(['network', 'rm', network]);
    } finally {
      await behind.stop();
    }
  }, 90_000);
});

// ---- the kit as a separate process sees it: compiled from lib/testing to plain JS ----

const compiled = path.join(scratch, 'compiled');

function compileKit(): void {
  const config = path.join(scratch, 'tsconfig.json');
  fs.writeFileSync(
    config,
    JSON.stringify({
      extends: path.join(REPO, 'tsconfig.json'),
      compilerOptions: {
        rootDir: path.join(REPO, 'lib'),
        outDir: compiled,
        declaration: false,
        sourceMap: false,
        typeRoots: [path.join(REPO, 'node_modules', '@types')],
      },
      include: [],
      files: [path.join(REPO, 'lib', 'testing', 'index.ts')],
    }),
  );
  execFileSync(process.execPath, [path.join(REPO, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', config], {
    cwd: REPO,
    stdio: 'pipe',
  });
  fs.writeFileSync(path.join(compiled, 'package.json'), '{"type":"module"}');
  // The compiled files resolve their packages (rxjs, @nestjs/common...) from the repository's node_modules.
  fs.symlinkSync(path.join(REPO, 'node_modules'), path.join(scratch, 'node_modules'));
}

/** Pids of live processes whose command line contains `text`. */
function processesMentioning(text: string): number[] {
  const pids: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(text)) pids.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}

describe('the kit in a process of its own', () => {
  beforeAll(() => compileKit(), 120_000);

  it('neither a local ZooKeeper (no java) nor Docker (no docker command): the error says what to install', () => {
    const script = `import { startZooKeeper } from './testing/index.js';
try { await startZooKeeper(); console.log('started?!'); } catch (e) { console.log(e.name + '\\n' + e.message); }`;
    fs.writeFileSync(path.join(compiled, 'neither.js'), script);
    const out = execFileSync(process.execPath, [path.join(compiled, 'neither.js')], {
      env: { PATH: '' }, // no java, no docker; Debian's jars are found, but cannot run
      encoding: 'utf8',
    });
    expect(out).toContain('ZooKeeperNotFoundError');
    expect(out).toContain('no local ZooKeeper (with java) and no Docker engine was found');
    expect(out).toMatch(/but no java|does not exist/); // (Debian's jars found without java, or nothing found)
    expect(out).toContain('the docker command is not installed');
    expect(out).toContain('sudo apt-get install zookeeper default-jre-headless');
  });

  it('a SIGKILLed test process leaves no JVM, no container and no temp dir behind', async () => {
    installFakeDocker({ '1': server.port });
    const script = `import { startZooKeeper } from './testing/index.js';
const running = await startZooKeeper({ runtime: 'java' });
const stopped = await startZooKeeper({ runtime: 'java' });
await stopped.kill();
const docked = await startZooKeeper({ runtime: 'docker', docker: ${JSON.stringify(FAKE)} });
console.log(JSON.stringify({ dirs: [running.dir, stopped.dir, docked.dir], pid: running.pid }));
setInterval(() => {}, 1000);
`;
    fs.writeFileSync(path.join(compiled, 'child.js'), script);
    const child = spawn(process.execPath, [path.join(compiled, 'child.js')], { stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    const started = await waitFor(
      () => (stdout.includes('\n') ? (JSON.parse(stdout) as { dirs: string[]; pid: number }) : null),
      { timeout: 40_000, message: 'the child started its servers' },
    );
    expect(processesMentioning(started.dirs[0])).toEqual([started.pid]);
    expect(containers().filter((c) => c.running)).toHaveLength(1);

    child.kill('SIGKILL');
    await waitFor(
      () =>
        started.dirs.every((dir) => processesMentioning(dir).length === 0 && !fs.existsSync(dir)) &&
        containers().length === 0,
      { timeout: 15_000, message: 'JVMs gone, container removed, temp dirs removed' },
    );
  }, 90_000);
});
