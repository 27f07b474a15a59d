/**
 * Interop with Apache Curator: a Java InterProcessMutex (test/fixtures/CuratorLock.java, driven
 * over stdin/stdout) and our LockService on the same lock path exclude each other, queue behind
 * each other in sequence order, and name their nodes alike.
 *
 * Curator comes from Debian (libcurator-recipes-java): `scripts/curator.sh classpath` installs it
 * when it is missing and we are root with apt-get, hence the long beforeAll.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { LockTimeoutError } from '../../lib/index.js';
import { sortLockNodes } from '../../lib/lock/lock-recipe.js';
import { childrenOf, closeLockClients, lockClient } from '../fixtures/lock-clients.js';
import { startZooKeeper, waitFor, watchesByPath, type ZkServer } from '../support/index.js';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const FIXTURE = fileURLToPath(new URL('../fixtures/CuratorLock.java', import.meta.url));
/** Both sides: `_c_<uuid>-lock-<10-digit sequence>`. */
const NODE_NAME = /^_c_[0-9a-f-]{36}-lock-\d{10}$/;
/** Source launch = an in-memory javac run first: a few seconds, more on a loaded CI machine. */
const READY_TIMEOUT_MS = 60_000;
const ANSWER_TIMEOUT_MS = 30_000;

let server: ZkServer;
let classpath: string;

/** `scripts/curator.sh classpath` (installs Curator with apt-get when it is missing). */
function curatorClasspath(): Promise<string> {
  return new Promise((resolve, reject) => {
    const script = path.join(REPO_ROOT, 'scripts', 'curator.sh');
    execFile('bash', [script, 'classpath'], { maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${script} failed (${err.message.split('\n')[0]}):\n${stderr}`));
      else resolve(stdout.trim());
    });
  });
}

function javaBinary(): string {
  const home = process.env['JAVA_HOME'];
  return home && fs.existsSync(path.join(home, 'bin', 'java')) ? path.join(home, 'bin', 'java') : 'java';
}

/** Reads a stream line by line; `next()` waits for the next line with a deadline. */
class LineReader {
  private readonly lines: string[] = [];
  private partial = '';
  private ended = false;
  private wake: (() => void) | undefined;

  constructor(stream: Readable) {
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      const parts = (this.partial + chunk).split('\n');
      this.partial = parts.pop()!;
      this.lines.push(...parts.map((line) => line.trimEnd()));
      this.wake?.();
    });
    stream.on('close', () => {
      this.ended = true;
      this.wake?.();
    });
  }

  async next(timeoutMs: number, what: string): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (this.lines.length === 0) {
      if (this.ended) throw new Error(`${what}: the stream ended`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${what}: no line within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = undefined;
    }
    return this.lines.shift()!;
  }
}

/** One CuratorLock.java process: an InterProcessMutex on one path, on its own session. */
class CuratorProcess {
  private readonly out: LineReader;
  private readonly stderr: string[] = [];
  private exit: string | undefined;
  private readonly exited: Promise<void>;
  /** Answers come in command order: each command waits for the previous answer to be read. */
  private answered: Promise<unknown> = Promise.resolve();

  constructor(readonly child: ChildProcess) {
    this.out = new LineReader(child.stdout!);
    child.stdin!.on('error', () => undefined); // EPIPE once it died: the missing answer reports it
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (chunk: string) => {
      this.stderr.push(chunk);
      if (this.stderr.length > 200) this.stderr.shift();
    });
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exit = signal ? `signal ${signal}` : `code ${code}`;
        resolve();
      });
      child.once('error', (err) => {
        this.exit = `spawn error: ${err.message}`;
        resolve();
      });
    });
  }

  /** Waits for `ready` (connected, mutex created). */
  async ready(): Promise<void> {
    const line = await this.read(READY_TIMEOUT_MS, 'ready');
    if (line !== 'ready') throw new Error(`CuratorLock: expected 'ready', got '${line}'`);
  }

  /** Sends a command line and resolves with its answer. */
  send(command: string, timeoutMs = ANSWER_TIMEOUT_MS): Promise<string> {
    this.child.stdin!.write(`${command}\n`);
    return this.read(timeoutMs, `answer to '${command}'`);
  }

  /** Waits for the next line that comes unprompted (e.g. `revoke-requested`). */
  nextLine(what: string, timeoutMs = ANSWER_TIMEOUT_MS): Promise<string> {
    return this.read(timeoutMs, what);
  }

  /** SIGKILL; resolves once the JVM is gone. */
  async kill(): Promise<void> {
    if (this.exit === undefined) this.child.kill('SIGKILL');
    await this.exited;
  }

  private read(timeoutMs: number, what: string): Promise<string> {
    const answer = this.answered.then(() =>
      this.out.next(timeoutMs, `CuratorLock ${what}`).catch((err: unknown) => {
        const detail = `${err instanceof Error ? err.message : String(err)}; exit: ${this.exit ?? 'still running'}`;
        throw new Error(`${detail}\n--- CuratorLock stderr:\n${this.stderr.join('').slice(-4000)}`, { cause: err });
      }),
    );
    this.answered = answer.catch(() => undefined);
    return answer;
  }
}

const running = new Set<CuratorProcess>();

// Even if the worker exits without afterAll: no JVM outlives it. (Were it SIGKILLed, the JVM still
// ends on its own: it exits on EOF on stdin, after its current command.)
process.on('exit', () => {
  for (const curator of running) curator.child.kill('SIGKILL');
});

/** Starts CuratorLock.java on `lockPath` and waits until it is connected. */
async function startCurator(
  lockPath: string,
  mode: 'mutex' | 'read' | 'write' | `sem:${number}` = 'mutex',
): Promise<CuratorProcess> {
  const args = [
    '-XX:TieredStopAtLevel=1', // with the serial GC and no perf data: starts in ~1 s instead of ~3
    '-XX:+UseSerialGC',
    '-XX:-UsePerfData',
    '-Xmx128m',
    '-Djava.net.preferIPv4Stack=true',
    '-cp',
    classpath,
    FIXTURE,
    server.connectString,
    lockPath,
    mode,
  ];
  const curator = new CuratorProcess(spawn(javaBinary(), args, { stdio: ['pipe', 'pipe', 'pipe'] }));
  running.add(curator);
  await curator.ready();
  return curator;
}

async function killCurators(): Promise<void> {
  const all = [...running];
  running.clear();
  await Promise.all(all.map((curator) => curator.kill()));
}

/** The order Curator's LockInternals puts children in: String.compareTo of the text after the last `lock-`. */
function curatorOrder(children: string[]): string[] {
  const key = (name: string) => {
    const at = name.lastIndexOf('lock-');
    return at < 0 ? name : name.slice(at + 'lock-'.length);
  };
  return children.toSorted((a, b) => {
    const [x, y] = [key(a), key(b)];
    return x < y ? -1 : x > y ? 1 : 0; // UTF-16 code unit order, as Java's
  });
}

const basename = (node: string) => node.slice(node.lastIndexOf('/') + 1);

/** Waits until some session watches `node` (a waiter queued behind it). */
function waitForWatch(node: string, message: string): Promise<number> {
  return waitFor(async () => (await watchesByPath(server)).get(node), { timeout: 20_000, message });
}

beforeAll(async () => {
  [server, classpath] = await Promise.all([startZooKeeper(), curatorClasspath()]);
}, 180_000);
afterEach(async () => {
  await killCurators();
  await closeLockClients();
});
afterAll(async () => {
  await killCurators();
  await server?.dispose();
});

describe('Curator InterProcessMutex and LockService on the same path', () => {
  it('Curator holds: tryAcquire gets null, and a queued acquire gets the lock right after Curator releases', async () => {
    const lockPath = '/interop/curator-holds';
    const [{ locks, connection }, curator] = await Promise.all([
      lockClient(server.connectString),
      startCurator(lockPath),
    ]);
    expect(await curator.send('acquire 5000')).toBe('acquired');
    const [curatorNode] = (await connection.getChildren(lockPath)).children;
    expect(curatorNode).toMatch(NODE_NAME);

    expect(await locks.tryAcquire(lockPath)).toBeNull();
    expect((await connection.getChildren(lockPath)).children).toEqual([curatorNode]); // nothing left behind

    const events: string[] = [];
    const ours = locks.acquire(lockPath, { timeout: 30_000 }).then((handle) => {
      events.push('ours acquired');
      return handle;
    });
    // Queued: our waiter listed the children, saw Curator's node first and watches it.
    await waitForWatch(`${lockPath}/${curatorNode}`, 'our waiter watches the Curator node');
    expect(events).toEqual([]);

    events.push('curator releasing');
    const releasedAt = Date.now();
    expect(await curator.send('release')).toBe('released');
    const handle = await ours;
    const latency = Date.now() - releasedAt;
    expect(events).toEqual(['curator releasing', 'ours acquired']);
    expect(latency).toBeLessThan(2_000); // woken by the watch, not by a timeout or a session expiry
    expect((await connection.getChildren(lockPath)).children).toEqual([basename(handle.node)]);
    await handle.release();
  }, 90_000);

  it('we hold: Curator times out, then acquires after our release', async () => {
    const lockPath = '/interop/we-hold';
    const [{ locks, connection }, curator] = await Promise.all([
      lockClient(server.connectString),
      startCurator(lockPath),
    ]);
    const handle = await locks.acquire(lockPath, { timeout: 5_000 });

    const askedAt = Date.now();
    expect(await curator.send('acquire 300')).toBe('timeout');
    expect(Date.now() - askedAt).toBeGreaterThanOrEqual(300);
    // Curator deleted its node on giving up.
    expect((await connection.getChildren(lockPath)).children).toEqual([basename(handle.node)]);

    await handle.release();
    expect(await curator.send('acquire 5000')).toBe('acquired');
    const [curatorNode] = (await connection.getChildren(lockPath)).children;
    expect(curatorNode).toMatch(NODE_NAME);
    expect(await locks.tryAcquire(lockPath)).toBeNull();

    expect(await curator.send('release')).toBe('released');
    const again = await locks.tryAcquire(lockPath);
    expect(again).not.toBeNull();
    await again!.release();
  }, 90_000);

  it('queued on either side, both name their nodes alike and both orders agree', async () => {
    const lockPath = '/interop/naming';
    const [{ locks, connection }, curator] = await Promise.all([
      lockClient(server.connectString),
      startCurator(lockPath),
    ]);
    const check = async (expectedFirst: string) => {
      const { children } = await connection.getChildren(lockPath);
      expect(children).toHaveLength(2);
      for (const name of children) expect(name).toMatch(NODE_NAME);
      expect(new Set(children.map((name) => name.slice(0, 39))).size).toBe(2); // distinct `_c_<uuid>`
      const ours = sortLockNodes(children);
      expect(ours).toEqual(curatorOrder(children));
      expect(ours[0]).toBe(expectedFirst);
      return ours;
    };

    // We hold, Curator waits.
    const first = await locks.acquire(lockPath, { timeout: 5_000 });
    const curatorAcquire = curator.send('acquire 30000', 40_000);
    await waitForWatch(first.node, 'the Curator waiter watches our node');
    const [, curatorNode] = await check(basename(first.node));
    await first.release();
    expect(await curatorAcquire).toBe('acquired');

    // Curator holds, we wait.
    const second = locks.acquire(lockPath, { timeout: 30_000 });
    await waitForWatch(`${lockPath}/${curatorNode}`, 'our waiter watches the Curator node');
    const [, ourNode] = await check(curatorNode);
    expect(await curator.send('release')).toBe('released');
    const handle = await second;
    expect(basename(handle.node)).toBe(ourNode);
    await handle.release();
  }, 90_000);
});

describe('revocation between Curator and LockService', () => {
  it('our requestRelease reaches a revocable Curator holder; Curator Revoker reaches our revocable holder', async () => {
    const lockPath = '/interop/revoke';
    const [{ locks, connection }, curator] = await Promise.all([
      lockClient(server.connectString),
      startCurator(lockPath),
    ]);
    expect(await curator.send('acquire 5000')).toBe('acquired');
    expect(await locks.requestRelease(lockPath)).toBe(1);
    expect(await curator.nextLine('the revocation listener')).toBe('revoke-requested');
    expect(await curator.send('release')).toBe('released');

    const ours = await locks.acquire(lockPath, { revocable: true, timeout: 5_000 });
    await waitFor(() => connection.stats().watches === 1, { message: 'our holder watches its node' });
    expect(await curator.send(`revoke ${ours.node}`)).toBe('revoke-sent');
    await waitFor(() => ours.signal.aborted, { message: 'our holder told' });
    expect((ours.signal.reason as { reason: string }).reason).toBe('revoked');
    await ours.release();
    expect(await childrenOf(server.connectString, lockPath)).toEqual([]); // [] also once reclaimed
  }, 90_000);
});

describe("Curator's InterProcessReadWriteLock and our read/write locks on the same path", () => {
  it('a Curator reader shares with ours and excludes our writer; a Curator writer excludes our reader', async () => {
    const lockPath = '/interop/rw';
    const [{ locks, connection }, curatorReader, curatorWriter] = await Promise.all([
      lockClient(server.connectString),
      startCurator(lockPath, 'read'),
      startCurator(lockPath, 'write'),
    ]);
    // Curator reads: our reader gets in at once, our writer may not.
    expect(await curatorReader.send('acquire 5000')).toBe('acquired');
    const ourRead = await locks.acquireRead(lockPath, { timeout: 0 });
    await expect(locks.acquireWrite(lockPath, { timeout: 300 })).rejects.toBeInstanceOf(LockTimeoutError);
    await ourRead.release();
    // Our writer queues behind Curator's reader and gets the lock when it goes.
    const ourWrite = locks.acquireWrite(lockPath, { timeout: 30_000 });
    await waitFor(async () => (await connection.getChildren(lockPath)).children.length === 2, {
      message: 'our writer queued',
    });
    expect(await curatorReader.send('release')).toBe('released');
    const write = await ourWrite;
    expect(basename(write.node)).toMatch(/^_c_[0-9a-f-]{36}-__WRIT__\d{10}$/);
    // While we write, Curator's reader and writer both time out.
    expect(await curatorReader.send('acquire 300')).toBe('timeout');
    expect(await curatorWriter.send('acquire 300')).toBe('timeout');
    await write.release();
    // Curator writes: our reader times out, then gets in after Curator's release.
    expect(await curatorWriter.send('acquire 5000')).toBe('acquired');
    await expect(locks.acquireRead(lockPath, { timeout: 300 })).rejects.toBeInstanceOf(LockTimeoutError);
    const ourReader = locks.acquireRead(lockPath, { timeout: 30_000 });
    await waitFor(async () => (await connection.getChildren(lockPath)).children.length === 2, {
      message: 'our reader queued',
    });
    expect(await curatorWriter.send('release')).toBe('released');
    await (await ourReader).release();
    expect(await childrenOf(server.connectString, lockPath)).toEqual([]); // [] also once reclaimed
  }, 90_000);
});

describe("Curator's InterProcessSemaphoreV2 and our semaphore on the same path", () => {
  it('share one count of leases: with N = 2, one Curator lease and one of ours fill it; each waits for the other', async () => {
    const lockPath = '/interop/sem';
    const [{ locks, connection }, curator] = await Promise.all([
      lockClient(server.connectString),
      startCurator(lockPath, 'sem:2'),
    ]);
    expect(await curator.send('acquire 5000')).toBe('acquired');
    const ours = await locks.acquire(lockPath, { leases: 2, timeout: 5_000 });
    expect((await connection.getChildren(`${lockPath}/leases`)).children).toHaveLength(2);
    // Full: a second lease of ours waits, and gets in when Curator's lease goes.
    await expect(locks.acquire(lockPath, { leases: 2, timeout: 300 })).rejects.toBeInstanceOf(LockTimeoutError);
    const waiting = locks.acquire(lockPath, { leases: 2, timeout: 30_000 });
    await waitFor(async () => (await connection.getChildren(`${lockPath}/leases`)).children.length === 3, {
      message: 'our waiter created its lease',
    });
    expect(await curator.send('release')).toBe('released');
    const second = await waiting;
    // Full again, with two of ours: Curator times out, then gets the lease we return.
    expect(await curator.send('acquire 300')).toBe('timeout');
    await ours.release();
    expect(await curator.send('acquire 5000')).toBe('acquired');
    expect(await curator.send('release')).toBe('released');
    await second.release();
    await waitFor(async () => (await childrenOf(server.connectString, `${lockPath}/leases`)).length === 0, {
      message: 'no lease left', // (or the directory already reclaimed: a container)
    });
  }, 90_000);
});
