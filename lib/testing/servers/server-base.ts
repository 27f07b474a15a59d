/**
 * What a test server is, however it runs (a JVM, a container): its temp dir, its port, starting
 * once at a time, waiting until it serves, disposal, and the watchdog that cleans up after a test
 * process that dies without disposing of it.
 *
 * Watchdog: a tiny shell per server (or network) whose stdin is a pipe from this process, in its
 * own session (out of reach of signals to our process group, e.g. Ctrl-C). We write to it what
 * to clean up; when this process dies, however it dies (even SIGKILL), the kernel closes the pipe,
 * `read` sees EOF, and the shell kills the JVM or removes the container, and removes the temp dir.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { fourLetter } from '../four-letter.js';
import { delay } from '../wait.js';
import { tlsFourLetter, type ZkServerTls } from './tls.js';
import type { ZkServer } from './types.js';

export { Watchdog } from './watchdog.js';

export const HOST = '127.0.0.1';
export const START_TIMEOUT_MS = 30_000;
export const SERVING_MODES = new Set(['standalone', 'leader', 'follower', 'observer']);

/** A server that did not come up; `timedOut` if it ran but never served (else: it exited, or a port was taken). */
export class StartError extends Error {
  constructor(
    message: string,
    readonly timedOut: boolean,
  ) {
    super(message);
  }
}

/** Every server not yet disposed, for stopAllZooKeepers() and the exit hook. */
export const live = new Set<ServerBase>();
let exitHooked = false;

export abstract class ServerBase implements ZkServer {
  abstract readonly runtime: 'java' | 'docker';
  readonly host = HOST;
  readonly dir: string;
  readonly dataDir: string;
  readonly logFile: string;
  protected clientPort = 0;
  protected disposed = false;
  /** Set for a TLS server (before its first start). */
  tls: ZkServerTls | undefined;
  /** A TLS server's plaintext clientPort, when it has one too. */
  protected plaintextPort: number | undefined;
  private starting: Promise<void> | undefined;

  constructor(readonly name: string) {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nestjs-zk-lock-test-'));
    this.dataDir = path.join(this.dir, 'data');
    this.logFile = path.join(this.dir, 'zookeeper.log');
    fs.mkdirSync(this.dataDir);
    live.add(this);
    if (!exitHooked) {
      exitHooked = true;
      process.on('exit', () => {
        for (const server of live) server.disposeSync();
      });
    }
  }

  get port(): number {
    return this.clientPort;
  }

  get connectString(): string {
    return `${HOST}:${this.clientPort}`;
  }

  get plaintextConnectString(): string | undefined {
    return this.plaintextPort === undefined ? undefined : `${HOST}:${this.plaintextPort}`;
  }

  abstract get pid(): number | undefined;
  abstract isRunning(): boolean;
  abstract stop(): Promise<void>;
  abstract kill(): Promise<void>;
  abstract pause(): Promise<void>;
  abstract unpause(): Promise<void>;
  abstract logTail(lines?: number): string;
  /** Starts it; resolves when it serves (else rejects with a StartError, leaving it stopped). */
  protected abstract launch(timeoutMs: number): Promise<void>;
  /** After the last kill: what else goes (the watchdog, a container). */
  protected abstract release(): Promise<void>;
  /** For the exit hook: synchronous, best effort. */
  abstract disposeSync(): void;

  start(timeoutMs = START_TIMEOUT_MS): Promise<void> {
    if (this.disposed) return Promise.reject(new Error(`ZooKeeper ${this.name}: start() after dispose()`));
    if (this.starting) return this.starting;
    if (this.isRunning()) return Promise.resolve();
    this.starting = this.launch(timeoutMs).finally(() => (this.starting = undefined));
    return this.starting;
  }

  async dispose(): Promise<void> {
    this.disposed = true;
    await this.kill();
    await this.starting?.catch(() => undefined);
    await this.release();
    fs.rmSync(this.dir, { recursive: true, force: true, maxRetries: 3 });
    live.delete(this);
  }

  /** `srvr` Mode (leader, follower, standalone...), undefined if it does not answer or serve. */
  async mode(): Promise<string | undefined> {
    if (!this.isRunning()) return undefined;
    try {
      return /^Mode: (\w+)/m.exec(await this.ask('srvr', 2000))?.[1];
    } catch {
      return undefined;
    }
  }

  /** A four letter word, over TLS for a TLS-only server. */
  protected ask(cmd: string, timeoutMs: number): Promise<string> {
    const tls = this.tls;
    return tls
      ? tlsFourLetter({ host: this.host, port: this.port, tls }, cmd, timeoutMs)
      : fourLetter(this, cmd, timeoutMs);
  }

  /**
   * Waits until it serves. `exitedWith` says why it stopped (undefined while it runs); `isOurs`
   * checks that the answer comes from this server, not another one on a reused port (undefined:
   * cannot tell yet).
   */
  protected async waitUntilServing(
    timeoutMs: number,
    exitedWith: () => string | undefined,
    isOurs: () => Promise<boolean | undefined>,
  ): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const exit = exitedWith();
      if (exit !== undefined) throw this.failure(`exited (${exit}) before serving`);
      if (SERVING_MODES.has((await this.mode()) ?? '')) {
        const ours = await isOurs();
        if (ours) return;
        if (ours === false) throw this.failure(`port ${this.port} is served by another ZooKeeper`);
      }
      if (performance.now() > deadline) throw this.failure(`did not serve within ${timeoutMs} ms`, true);
      await delay(50);
    }
  }

  protected failure(what: string, timedOut = false): StartError {
    return new StartError(
      `ZooKeeper ${this.name} (${this.runtime}, ${this.connectString}, ${this.dir}) ${what}.\n` +
        `--- last lines of its log:\n${this.logTail()}`,
      timedOut,
    );
  }

  protected forget(): void {
    live.delete(this);
  }
}

const handedOut = new Set<number>();

/** A loopback port that was free a moment ago (never the same one twice in this process). */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const server = net.createServer();
      server.unref();
      server.on('error', reject);
      server.listen(0, HOST, () => {
        const bound = (server.address() as net.AddressInfo).port;
        server.close(() => resolve(bound));
      });
    });
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
}

/** ZooKeeper's zoo.cfg lines shared by every test server. */
export function baseConfig(tickTime: number): string[] {
  return [
    `tickTime=${tickTime}`,
    'maxClientCnxns=0',
    'admin.enableServer=false',
    '4lw.commands.whitelist=*',
    'forceSync=no', // no fsync: the data survives a JVM SIGKILL anyway (OS page cache)
    'preAllocSize=1024', // KB; the default preallocates 64 MB per transaction log
  ];
}

/** Empty container nodes (lock directories) are deleted within about a second, not a minute. */
export const CONTAINER_CHECK = '-Dznode.container.checkIntervalMs=500';
