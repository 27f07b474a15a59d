/** Tests of the test harness itself: ZooKeeper processes, four letter words, the TCP proxy. */
import { afterAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  connectionCount,
  fourLetter,
  mntr,
  packetsReceived,
  startEnsemble,
  startZooKeeper,
  stopAllZooKeepers,
  TcpProxy,
  waitFor,
  watchCount,
  watchesByPath,
  zooKeeperClasspath,
  type ZkServer,
} from '../support/index.js';

// node-zookeeper-client has no type definitions: the little of it used here.
interface ZkClient {
  connect(): void;
  close(): void;
  once(event: 'connected', listener: () => void): void;
  create(path: string, data: Buffer, mode: number, cb: (err: Error | null, path: string) => void): void;
  getData(path: string, cb: (err: Error | null, data: Buffer) => void): void;
  exists(path: string, watcher: () => void, cb: (err: Error | null, stat: unknown) => void): void;
}
const zookeeper = createRequire(import.meta.url)('node-zookeeper-client') as {
  createClient(connectString: string, options?: { sessionTimeout?: number; spinDelay?: number }): ZkClient;
  CreateMode: { PERSISTENT: number };
};

async function connect(connectString: string): Promise<ZkClient> {
  const client = zookeeper.createClient(connectString, { sessionTimeout: 4000, spinDelay: 100 });
  await new Promise<void>((resolve) => {
    client.once('connected', resolve);
    client.connect();
  });
  return client;
}

function call<T>(fn: (cb: (err: Error | null, value: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => fn((err, value) => (err ? reject(err) : resolve(value))));
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

afterAll(async () => {
  await stopAllZooKeepers();
});

describe('standalone ZooKeeper', () => {
  let server: ZkServer;

  it('starts on a free loopback port and serves', async () => {
    server = await startZooKeeper();
    expect(server.host).toBe('127.0.0.1');
    expect(server.connectString).toBe(`127.0.0.1:${server.port}`);
    expect(server.isRunning()).toBe(true);
    expect(server.pid).toBeGreaterThan(0);
    expect(await fourLetter(server, 'srvr')).toMatch(/^Mode: standalone$/m);
    expect(await fourLetter(server.connectString, 'ruok')).toBe('imok');
    const conf = await fourLetter(server, 'conf');
    expect(conf).toContain('tickTime=200');
    expect(conf).toContain('minSessionTimeout=400');
    expect(conf).toContain('maxSessionTimeout=4000');
    expect(await packetsReceived(server)).toBe(0);
  }, 60_000);

  it('reports watches, connections and packets', async () => {
    const client = await connect(server.connectString);
    await waitFor(async () => (await connectionCount(server)) === 1, { message: 'one connection' });
    const before = await packetsReceived(server);
    expect(await fourLetter(server, 'srvr')).toContain('Mode: standalone');
    expect(await packetsReceived(server)).toBe(before); // four letter words are not counted
    await call<unknown>((cb) => client.exists('/watched', () => undefined, cb));
    expect(await packetsReceived(server)).toBeGreaterThan(before);
    expect(await watchCount(server)).toBe(1);
    expect((await watchesByPath(server)).get('/watched')).toBe(1);
    expect((await mntr(server))['zk_watch_count']).toBe('1');
    client.close();
    await waitFor(async () => (await connectionCount(server)) === 0, { message: 'no connection' });
    expect(await watchCount(server)).toBe(0);
  }, 60_000);

  it('restarts after kill() on the same port with the same data', async () => {
    const client = await connect(server.connectString);
    await call<string>((cb) => client.create('/kept', Buffer.from('data'), zookeeper.CreateMode.PERSISTENT, cb));
    client.close();
    const znodes = (await mntr(server))['zk_znode_count'];
    const { port, pid } = server;

    await server.kill();
    expect(server.isRunning()).toBe(false);
    expect(server.pid).toBeUndefined();
    expect(processesMentioning(server.dir)).toEqual([]);
    await expect(fourLetter(server, 'ruok')).rejects.toThrow(/ECONNREFUSED/);

    await server.start();
    expect(server.port).toBe(port);
    expect(server.pid).not.toBe(pid);
    expect((await mntr(server))['zk_znode_count']).toBe(znodes);
    const again = await connect(server.connectString);
    expect((await call<Buffer>((cb) => again.getData('/kept', cb))).toString()).toBe('data');
    again.close();

    await server.stop(); // graceful this time
    expect(server.isRunning()).toBe(false);
    await server.start();
    expect((await mntr(server))['zk_znode_count']).toBe(znodes);
  }, 60_000);

  it('logs to a file in its temp dir', () => {
    expect(server.logFile.startsWith(server.dir)).toBe(true);
    expect(fs.existsSync(server.logFile)).toBe(true);
    expect(server.logTail()).toContain('starting org.apache.zookeeper.server.ZooKeeperServerMain');
  });

  it('dispose() kills it and removes its temp dir', async () => {
    const { dir } = server;
    await server.dispose();
    expect(fs.existsSync(dir)).toBe(false);
    expect(processesMentioning(dir)).toEqual([]);
    await expect(server.start()).rejects.toThrow(/dispose/);
  });
});

describe('ZooKeeper ensemble', () => {
  it('elects a leader, re-elects when it is killed, takes it back as a follower', async () => {
    const ensemble = await startEnsemble();
    try {
      expect(ensemble.servers).toHaveLength(3);
      expect(ensemble.connectString).toBe(ensemble.servers.map((s) => s.connectString).join(','));
      const modes = await Promise.all(
        ensemble.servers.map(async (s) => /Mode: (\w+)/.exec(await fourLetter(s, 'srvr'))?.[1]),
      );
      expect(modes.filter((m) => m === 'leader')).toHaveLength(1);
      expect(modes.filter((m) => m === 'follower')).toHaveLength(2);

      const client = await connect(ensemble.connectString);
      await call<string>((cb) => client.create('/replicated', Buffer.from('x'), zookeeper.CreateMode.PERSISTENT, cb));
      client.close();

      const leader = await ensemble.leaderIndex();
      expect(leader).toBeGreaterThanOrEqual(0);
      await ensemble.servers[leader].kill();
      await ensemble.waitForQuorum();
      const newLeader = await ensemble.leaderIndex();
      expect(newLeader).toBeGreaterThanOrEqual(0);
      expect(newLeader).not.toBe(leader);

      const survivor = ensemble.servers[newLeader];
      const reader = await connect(survivor.connectString);
      expect((await call<Buffer>((cb) => reader.getData('/replicated', cb))).toString()).toBe('x');
      reader.close();

      await ensemble.servers[leader].start();
      await ensemble.waitForQuorum();
      expect(await fourLetter(ensemble.servers[leader], 'srvr')).toMatch(/^Mode: follower$/m);
    } finally {
      const dirs = ensemble.servers.map((s) => s.dir);
      await ensemble.stop();
      for (const dir of dirs) {
        expect(fs.existsSync(dir)).toBe(false);
        expect(processesMentioning(dir)).toEqual([]);
      }
    }
  }, 90_000);
});

/** An echo server: answers `${name}:${data}` and records what it received. */
async function echoServer(name: string) {
  const received: string[] = [];
  const sockets = new Set<net.Socket>();
  let accepted = 0;
  const server = net.createServer((socket) => {
    accepted++;
    sockets.add(socket);
    socket.on('data', (data) => {
      received.push(data.toString());
      socket.write(`${name}:${data.toString()}`);
    });
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    host: '127.0.0.1',
    port,
    received,
    /** Connections accepted so far / still open. */
    get accepted() {
      return accepted;
    },
    get open() {
      return sockets.size;
    },
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A client socket that records what it gets and whether it was closed. */
async function dial(port: number) {
  const socket = net.connect({ host: '127.0.0.1', port });
  const state = { data: '', closed: false, socket };
  socket.on('data', (d) => (state.data += d.toString()));
  socket.on('error', () => undefined);
  socket.on('close', () => (state.closed = true));
  await new Promise<void>((resolve) => {
    socket.once('connect', resolve);
    socket.once('close', resolve);
  });
  return state;
}

describe('TcpProxy', () => {
  it('forwards both ways and reports the bytes', async () => {
    const echo = await echoServer('a');
    const proxy = await TcpProxy.start(echo);
    const seen: string[] = [];
    const off = proxy.onData((direction, bytes) => seen.push(`${direction}${bytes}`));
    expect(proxy.connectString).toBe(`127.0.0.1:${proxy.port}`);
    const c = await dial(proxy.port);
    c.socket.write('hello');
    await waitFor(() => c.data === 'a:hello', { message: 'echo through the proxy' });
    expect(proxy.connections).toBe(1);
    expect(seen).toEqual(['up5', 'down7']);
    off();
    c.socket.end();
    await waitFor(() => proxy.connections === 0 && echo.open === 0, { message: 'connections closed' });
    await proxy.close();
    await echo.close();
  });

  it('blackhole() drops bytes both ways and keeps connections open; restore() destroys them', async () => {
    const echo = await echoServer('a');
    const proxy = await TcpProxy.start(echo);
    const c = await dial(proxy.port);
    c.socket.write('ping');
    await waitFor(() => c.data === 'a:ping');

    proxy.blackhole();
    let up = 0;
    proxy.onData((direction, bytes) => direction === 'up' && (up += bytes));
    c.socket.write('lost');
    await waitFor(() => up === 4, { message: 'the proxy read the bytes' });
    const late = await dial(proxy.port); // accepted but not forwarded
    expect(late.closed).toBe(false);
    late.socket.write('void');
    await waitFor(() => up === 8);
    expect(proxy.connections).toBe(2);
    expect(echo.accepted).toBe(1);

    proxy.restore();
    await waitFor(() => c.closed && late.closed && echo.open === 0, { message: 'blackholed connections closed' });
    // The echo server saw its connection close without ever getting 'lost'.
    expect(echo.received).toEqual(['ping']);
    expect(c.data).toBe('a:ping');

    const fresh = await dial(proxy.port);
    fresh.socket.write('back');
    await waitFor(() => fresh.data === 'a:back');
    fresh.socket.destroy();
    await proxy.close();
    await echo.close();
  });

  it('reset() severs current connections and keeps accepting', async () => {
    const echo = await echoServer('a');
    const proxy = await TcpProxy.start(echo);
    const c = await dial(proxy.port);
    proxy.reset();
    await waitFor(() => c.closed, { message: 'client saw the connection close' });
    expect(proxy.connections).toBe(0);
    const again = await dial(proxy.port);
    again.socket.write('x');
    await waitFor(() => again.data === 'a:x');
    again.socket.destroy();
    await proxy.close();
    await echo.close();
  });

  it('refuse() closes new connections at once until restore()', async () => {
    const echo = await echoServer('a');
    const proxy = await TcpProxy.start(echo);
    const old = await dial(proxy.port);
    proxy.refuse();
    const refused = await dial(proxy.port);
    await waitFor(() => refused.closed, { message: 'refused connection closed' });
    old.socket.write('still');
    await waitFor(() => old.data === 'a:still', { message: 'existing connection still forwards' });
    proxy.restore();
    const fresh = await dial(proxy.port);
    fresh.socket.write('ok');
    await waitFor(() => fresh.data === 'a:ok');
    expect(echo.accepted).toBe(2);
    old.socket.destroy();
    fresh.socket.destroy();
    await proxy.close();
    await echo.close();
  });

  it('pause() holds bytes until resume(); reset() drops held bytes', async () => {
    const echo = await echoServer('a');
    const proxy = await TcpProxy.start(echo);
    const c = await dial(proxy.port);
    proxy.pause('up');
    c.socket.write('held');
    await waitFor(() => proxy.held('up') === 4, { message: 'bytes held' });
    expect(echo.received).toEqual([]);
    proxy.resume('up');
    expect(proxy.held('up')).toBe(0);
    await waitFor(() => c.data === 'a:held');

    proxy.pause('down');
    c.socket.write('reply');
    await waitFor(() => proxy.held('down') === 'a:reply'.length, { message: 'reply held' });
    expect(echo.received).toEqual(['held', 'reply']); // the server got the request...
    proxy.reset(); // ...but the client never sees the answer
    await waitFor(() => c.closed);
    expect(c.data).toBe('a:held');
    proxy.resume('down');
    await proxy.close();
    await echo.close();
  });

  it('setTarget() sends new connections elsewhere', async () => {
    const a = await echoServer('a');
    const b = await echoServer('b');
    const proxy = await TcpProxy.start(a);
    const first = await dial(proxy.port);
    proxy.setTarget(b);
    const second = await dial(proxy.port);
    first.socket.write('1');
    second.socket.write('2');
    await waitFor(() => first.data === 'a:1' && second.data === 'b:2');
    expect([a.received, b.received]).toEqual([['1'], ['2']]);
    first.socket.destroy();
    second.socket.destroy();
    await proxy.close();
    await Promise.all([a.close(), b.close()]);
  });

  it('closes the client connection when the target is down', async () => {
    const echo = await echoServer('a');
    const proxy = await TcpProxy.start(echo);
    await echo.close();
    const c = await dial(proxy.port);
    await waitFor(() => c.closed, { message: 'connection to a dead target closed' });
    expect(proxy.connections).toBe(0);
    await proxy.close();
  });
});

describe('no stray ZooKeeper processes', () => {
  it('stopAllZooKeepers() kills every JVM and removes every temp dir', async () => {
    const servers = await Promise.all([startZooKeeper(), startZooKeeper()]);
    const dirs = servers.map((s) => s.dir);
    for (const dir of dirs) expect(processesMentioning(dir)).toHaveLength(1);
    await stopAllZooKeepers();
    for (const dir of dirs) {
      expect(processesMentioning(dir)).toEqual([]);
      expect(fs.existsSync(dir)).toBe(false);
    }
  }, 60_000);

  it('a SIGKILLed test process leaves no JVM and no temp dir behind', async () => {
    // Run the harness (the testing kit, built into dist/ by the global setup) in a child node process, then SIGKILL it.
    const repo = fileURLToPath(new URL('../../', import.meta.url));
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'nestjs-zk-lock-harness-'));
    try {
      fs.writeFileSync(path.join(out, 'package.json'), '{"type":"module"}');
      // One running server, one stopped (killed, not disposed) server.
      fs.writeFileSync(
        path.join(out, 'child.js'),
        `import { startZooKeeper } from ${JSON.stringify(path.join(repo, 'dist', 'testing', 'index.js'))};
const running = await startZooKeeper();
const stopped = await startZooKeeper();
await stopped.kill();
console.log(JSON.stringify({ dirs: [running.dir, stopped.dir], pid: running.pid }));
setInterval(() => {}, 1000);
`,
      );
      const child = spawn(process.execPath, [path.join(out, 'child.js')], {
        env: { ...process.env, ZK_CLASSPATH: await zooKeeperClasspath() },
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let stdout = '';
      child.stdout.on('data', (d) => (stdout += d));
      const started = await waitFor(
        () => (stdout.includes('\n') ? (JSON.parse(stdout) as { dirs: string[]; pid: number }) : null),
        { timeout: 40_000, message: 'child started ZooKeeper' },
      );
      expect(processesMentioning(started.dirs[0])).toEqual([started.pid]);

      child.kill('SIGKILL');
      await waitFor(() => started.dirs.every((dir) => processesMentioning(dir).length === 0 && !fs.existsSync(dir)), {
        timeout: 10_000,
        message: 'JVM of the killed process gone and the temp dirs removed',
      });
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
    }
  }, 60_000);
});
