/**
 * Real ZooKeeper servers for the integration tests: a standalone server or a 3-member ensemble,
 * each JVM on free loopback ports with its own temp dir, fast ticks (tickTime 200 ms, so session
 * timeouts between 400 ms and 4 s) and its log in `<dir>/zookeeper.log` (WARN level).
 *
 * No JVM or temp dir outlives the process that started it: each server has a tiny watchdog shell
 * whose stdin is a pipe from this process. When this process dies, however it dies (even SIGKILL),
 * the kernel closes the pipe, `read` sees EOF and the shell SIGKILLs the JVM and removes the temp
 * dir. On a normal exit a `process.on('exit')` hook does the same synchronously.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { fourLetter, resetPacketsReceived } from './four-letter.js';
import { delay, waitFor } from './wait.js';

export interface ZkServerOptions {
  /** ZooKeeper's tick in ms (default 200): min session timeout is 2 ticks, max 20 ticks. */
  tickTime?: number;
  /**
   * Fills the server's (empty) dataDir before its first start, e.g. with a snapshot written by a
   * Java fixture (see {@link runJavaFixture}); a standalone server loads it as its own data.
   */
  prepareData?: (dataDir: string) => void | Promise<void>;
}

export interface ZkServer {
  readonly host: string;
  /** Client port. */
  readonly port: number;
  /** `127.0.0.1:<port>` */
  readonly connectString: string;
  /** ZooKeeper's dataDir (inside `dir`). */
  readonly dataDir: string;
  /** The server's temp dir (config, data, log). */
  readonly dir: string;
  /** The JVM's stdout/stderr and log4j output. */
  readonly logFile: string;
  /** Pid of the running JVM (e.g. to SIGSTOP it), undefined when stopped. */
  readonly pid: number | undefined;
  isRunning(): boolean;
  /** (Re)starts on the same port and data dir; resolves when it serves requests. */
  start(): Promise<void>;
  /** SIGTERM (graceful shutdown); resolves when the JVM exited. Data is kept for start(). */
  stop(): Promise<void>;
  /** SIGKILL of the JVM (a crash); resolves when it exited. Data is kept for start(). */
  kill(): Promise<void>;
  /** Kills the JVM and removes the temp dir; the server cannot be started again. */
  dispose(): Promise<void>;
  /** Last lines of the log file. */
  logTail(lines?: number): string;
}

export interface ZkEnsemble {
  /** The members, `servers[i]` has myid i + 1. */
  readonly servers: ZkServer[];
  /** `h:p,h:p,h:p` */
  readonly connectString: string;
  /** Index in `servers` of the current leader (by `srvr` Mode), -1 when there is none right now. */
  leaderIndex(): Promise<number>;
  /** Waits until there is one leader and every running member serves (default timeout 30 s). */
  waitForQuorum(timeoutMs?: number): Promise<void>;
  /** Kills every member and removes the temp dirs. */
  stop(): Promise<void>;
}

const HOST = '127.0.0.1';
const START_TIMEOUT_MS = 30_000;
const ENSEMBLE_ATTEMPT_TIMEOUT_MS = 20_000;
const START_ATTEMPTS = 3;
const SERVING_MODES = new Set(['standalone', 'leader', 'follower', 'observer']);
const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

const LOG4J_PROPERTIES = `log4j.rootLogger=WARN, CONSOLE
log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender
log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout
log4j.appender.CONSOLE.layout.ConversionPattern=%d{ISO8601} %-5p [%t:%C{1}@%L] - %m%n
`;
// For an Apache 3.8+ release, which logs with logback instead of log4j.
const LOGBACK_XML = `<configuration>
  <appender name="CONSOLE" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>%d{ISO8601} %-5p [%t:%C{1}@%L] - %m%n</pattern></encoder>
  </appender>
  <root level="WARN"><appender-ref ref="CONSOLE"/></root>
</configuration>
`;

// A server's watchdog, from its creation to its disposal. On its stdin we write the pid of each JVM
// we start ('-' once it has exited). At EOF, i.e. when this process is gone, it SIGKILLs the last JVM
// and removes the temp dir. Its own session keeps it out of signals to our process group (Ctrl-C).
const WATCHDOG =
  'pid=-; while read -r line; do pid=$line; done; [ "$pid" = - ] || kill -9 "$pid" 2>/dev/null; ' +
  'for i in 1 2 3 4 5; do rm -rf "$ZK_DIR" 2>/dev/null && break; sleep 0.2; done';

let classpathPromise: Promise<string> | undefined;

/** ZooKeeper's Java classpath: $ZK_CLASSPATH or `scripts/zookeeper.sh classpath` (run once). */
export function zooKeeperClasspath(): Promise<string> {
  const fromEnv = process.env['ZK_CLASSPATH'];
  classpathPromise ??= fromEnv
    ? Promise.resolve(fromEnv)
    : new Promise((resolve, reject) => {
        const script = path.join(REPO_ROOT, 'scripts', 'zookeeper.sh');
        execFile('bash', [script, 'classpath'], { maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
          if (err) reject(new Error(`${script} failed (${err.message.split('\n')[0]}):\n${stderr}`));
          else resolve(stdout.trim());
        });
      });
  return classpathPromise;
}

/**
 * Runs a source-launched Java fixture (`test/fixtures/<name>.java`) on ZooKeeper's classpath and
 * resolves with its stdout; rejects with its stderr when it exits non-zero.
 */
export async function runJavaFixture(name: string, args: string[], timeoutMs = 120_000): Promise<string> {
  const classpath = await zooKeeperClasspath();
  const source = path.join(REPO_ROOT, 'test', 'fixtures', `${name}.java`);
  return new Promise((resolve, reject) => {
    execFile(
      javaBinary(),
      ['-XX:-UsePerfData', '-Dlog4j.rootLogger=OFF', '-cp', classpath, source, ...args],
      { timeout: timeoutMs, maxBuffer: 16 << 20 },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`${name}.java failed (${err.message.split('\n')[0]}):\n${stderr}`));
        else resolve(stdout);
      },
    );
  });
}

function javaBinary(): string {
  const home = process.env['JAVA_HOME'];
  return home && fs.existsSync(path.join(home, 'bin', 'java')) ? path.join(home, 'bin', 'java') : 'java';
}

const handedOut = new Set<number>();

/** A loopback port that was free a moment ago (never the same one twice in this process). */
async function freePort(): Promise<number> {
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

/** One JVM run of a server. */
interface Run {
  jvm: ChildProcess;
  exited: Promise<void>;
  /** Set when the JVM has exited, e.g. 'code 1' or 'signal SIGKILL'. */
  exit?: string;
}

/** A JVM that did not come up; `timedOut` if it ran but never served (else: it exited, or a port was taken). */
class StartError extends Error {
  constructor(
    message: string,
    readonly timedOut: boolean,
  ) {
    super(message);
  }
}

/** Every server not yet disposed, for stopAllZooKeepers() and the exit hook. */
const live = new Set<ZkProcess>();

process.on('exit', () => {
  for (const server of live) server.disposeSync();
});

class ZkProcess implements ZkServer {
  readonly host = HOST;
  readonly dir: string;
  readonly dataDir: string;
  readonly logFile: string;
  private clientPort = 0;
  private config = '';
  private run: Run | undefined;
  private starting: Promise<void> | undefined;
  private disposed = false;
  private readonly watchdog: ChildProcess;
  private readonly watchdogExited: Promise<unknown>;

  constructor(
    private readonly mainClass: string,
    readonly name: string,
  ) {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zk-lock-test-'));
    this.watchdog = spawn('/bin/sh', ['-c', WATCHDOG], {
      stdio: ['pipe', 'ignore', 'ignore'],
      env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', ZK_DIR: this.dir },
      detached: true,
    });
    this.watchdog.unref();
    (this.watchdog.stdin as net.Socket).unref();
    this.watchdog.stdin!.on('error', () => undefined);
    this.watchdogExited = new Promise((resolve) => {
      this.watchdog.once('exit', resolve);
      this.watchdog.once('error', resolve);
    });
    this.dataDir = path.join(this.dir, 'data');
    this.logFile = path.join(this.dir, 'zookeeper.log');
    fs.mkdirSync(this.dataDir);
    fs.writeFileSync(path.join(this.dir, 'log4j.properties'), LOG4J_PROPERTIES);
    fs.writeFileSync(path.join(this.dir, 'logback.xml'), LOGBACK_XML);
    live.add(this);
  }

  get port(): number {
    return this.clientPort;
  }

  get connectString(): string {
    return `${HOST}:${this.clientPort}`;
  }

  get pid(): number | undefined {
    return this.isRunning() ? this.run?.jvm.pid : undefined;
  }

  /** Sets the client port and the zoo.cfg contents for the next start (and wipes the data). */
  configure(clientPort: number, config: string, myid?: number): void {
    this.clientPort = clientPort;
    this.config = config;
    fs.rmSync(this.dataDir, { recursive: true, force: true });
    fs.mkdirSync(this.dataDir);
    if (myid !== undefined) fs.writeFileSync(path.join(this.dataDir, 'myid'), `${myid}\n`);
  }

  isRunning(): boolean {
    return this.run !== undefined && this.run.exit === undefined;
  }

  start(timeoutMs = START_TIMEOUT_MS): Promise<void> {
    if (this.disposed) return Promise.reject(new Error(`ZooKeeper ${this.name}: start() after dispose()`));
    if (this.starting) return this.starting;
    if (this.isRunning()) return Promise.resolve();
    this.starting = this.launch(timeoutMs).finally(() => (this.starting = undefined));
    return this.starting;
  }

  async stop(): Promise<void> {
    await this.signal('SIGTERM');
  }

  async kill(): Promise<void> {
    await this.signal('SIGKILL');
  }

  async dispose(): Promise<void> {
    this.disposed = true;
    await this.kill();
    await this.starting?.catch(() => undefined);
    fs.rmSync(this.dir, { recursive: true, force: true, maxRetries: 3 });
    this.watchdog.ref();
    this.watchdog.kill('SIGKILL'); // nothing left to watch
    await this.watchdogExited;
    live.delete(this);
  }

  /** For the exit hook: SIGKILL the JVM and the watchdog, remove the temp dir, synchronously. */
  disposeSync(): void {
    this.disposed = true;
    for (const pid of [this.watchdog.pid, this.pid]) {
      try {
        if (pid !== undefined) process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    fs.rmSync(this.dir, { recursive: true, force: true, maxRetries: 3 });
    live.delete(this);
  }

  logTail(lines = 30): string {
    try {
      return fs.readFileSync(this.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log file)';
    }
  }

  /** `srvr` Mode (leader, follower, standalone...), undefined if it does not answer or serve. */
  async mode(): Promise<string | undefined> {
    if (!this.isRunning()) return undefined;
    try {
      return /^Mode: (\w+)/m.exec(await fourLetter(this, 'srvr', 2000))?.[1];
    } catch {
      return undefined;
    }
  }

  private async launch(timeoutMs: number): Promise<void> {
    const classpath = await zooKeeperClasspath();
    if (this.disposed) throw new Error(`ZooKeeper ${this.name}: disposed while starting`);
    fs.writeFileSync(path.join(this.dir, 'zoo.cfg'), this.config);
    const run = this.spawn(classpath);
    this.run = run;
    try {
      await this.waitUntilServing(run, timeoutMs);
    } catch (err) {
      await this.signal('SIGKILL', run);
      throw err;
    }
  }

  private spawn(classpath: string): Run {
    const log = fs.openSync(this.logFile, 'a');
    fs.writeSync(log, `\n=== ${new Date().toISOString()} starting ${this.mainClass} on ${this.connectString}\n`);
    const args = [
      '-Xmx256m',
      '-XX:+UseSerialGC',
      '-XX:TieredStopAtLevel=1', // faster start-up
      '-XX:-UsePerfData', // no /tmp/hsperfdata_* files
      '-Djava.net.preferIPv4Stack=true',
      '-Dzookeeper.root.logger=WARN,CONSOLE',
      // Empty container nodes (lock directories) are deleted within about a second, not a minute.
      '-Dznode.container.checkIntervalMs=500',
      `-Dlog4j.configuration=file:${path.join(this.dir, 'log4j.properties')}`,
      `-Dlogback.configurationFile=${path.join(this.dir, 'logback.xml')}`,
      '-cp',
      classpath,
      this.mainClass,
      path.join(this.dir, 'zoo.cfg'),
    ];
    const jvm = spawn(javaBinary(), args, { stdio: ['ignore', log, log] });
    fs.closeSync(log);
    jvm.unref(); // a forgotten server must not keep the test process alive (the exit hook kills it)
    if (jvm.pid !== undefined) this.watchdog.stdin!.write(`${jvm.pid}\n`);

    const run: Run = { jvm, exited: Promise.resolve() };
    run.exited = new Promise((resolve) => {
      const exited = (exit: string) => {
        if (run.exit !== undefined) return;
        run.exit = exit;
        if (this.run === run) this.watchdog.stdin!.write('-\n');
        resolve();
      };
      jvm.once('exit', (code, signal) => exited(signal ? `signal ${signal}` : `code ${code}`));
      jvm.once('error', (err) => exited(`spawn error: ${err.message}`));
    });
    return run;
  }

  private async waitUntilServing(run: Run, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (run.exit !== undefined) throw this.failure(`exited (${run.exit}) before serving`);
      if (SERVING_MODES.has((await this.mode()) ?? '')) {
        // Make sure it is our JVM answering, not another test process's server on a reused port.
        const conf = await fourLetter(this, 'conf', 2000).catch(() => '');
        if (conf.includes(`dataDir=${this.dataDir}`)) return resetPacketsReceived(this).catch(() => undefined);
        if (conf) throw this.failure(`port ${this.port} is served by another ZooKeeper`);
      }
      if (Date.now() > deadline) throw this.failure(`did not serve within ${timeoutMs} ms`, true);
      await delay(50);
    }
  }

  private failure(what: string, timedOut = false): StartError {
    return new StartError(
      `ZooKeeper ${this.name} (${this.connectString}, ${this.dir}) ${what}.\n` +
        `--- last lines of ${this.logFile}:\n${this.logTail()}`,
      timedOut,
    );
  }

  /** Signals the JVM of `run` (default: the current one) and waits until it exited. */
  private async signal(signal: 'SIGTERM' | 'SIGKILL', run = this.run): Promise<void> {
    if (!run || run.exit !== undefined) return;
    run.jvm.ref(); // keep the event loop alive until the exit event
    run.jvm.kill(signal);
    let escalate: NodeJS.Timeout | undefined;
    if (signal === 'SIGTERM') {
      run.jvm.kill('SIGCONT'); // in case a test SIGSTOPped it
      escalate = setTimeout(() => run.jvm.kill('SIGKILL'), 10_000);
    }
    await run.exited;
    clearTimeout(escalate);
  }
}

function baseConfig(server: ZkProcess, clientPort: number, tickTime: number): string {
  return [
    `tickTime=${tickTime}`,
    `dataDir=${server.dataDir}`,
    `clientPort=${clientPort}`,
    `clientPortAddress=${HOST}`,
    'maxClientCnxns=0',
    'admin.enableServer=false',
    '4lw.commands.whitelist=*',
    'forceSync=no', // no fsync: the data survives a JVM SIGKILL anyway (OS page cache)
    'preAllocSize=1024', // KB; the default preallocates 64 MB per transaction log
    '',
  ].join('\n');
}

/** Starts a standalone server on a free loopback port with a fresh temp dir. */
export async function startZooKeeper(opts: ZkServerOptions = {}): Promise<ZkServer> {
  const tickTime = opts.tickTime ?? 200;
  const server = new ZkProcess('org.apache.zookeeper.server.ZooKeeperServerMain', 'standalone');
  let lastError: unknown;
  for (let attempt = 1; attempt <= START_ATTEMPTS; attempt++) {
    const port = await freePort();
    server.configure(port, baseConfig(server, port, tickTime));
    try {
      await opts.prepareData?.(server.dataDir);
      await server.start();
      return server;
    } catch (err) {
      lastError = err;
      // It exited (or another server answers): probably lost a race for the port, try another one.
      if (!(err instanceof StartError) || err.timedOut) break;
    }
  }
  await server.dispose();
  throw lastError;
}

class Ensemble implements ZkEnsemble {
  constructor(readonly servers: ZkProcess[]) {}

  get connectString(): string {
    return this.servers.map((s) => s.connectString).join(',');
  }

  async leaderIndex(): Promise<number> {
    const modes = await Promise.all(this.servers.map((s) => s.mode()));
    return modes.indexOf('leader');
  }

  async waitForQuorum(timeoutMs = START_TIMEOUT_MS): Promise<void> {
    let modes: (string | undefined)[] = [];
    await waitFor(
      async () => {
        modes = await Promise.all(this.servers.map((s) => s.mode()));
        const running = modes.filter((_, i) => this.servers[i].isRunning());
        return running.filter((m) => m === 'leader').length === 1 && running.every((m) => SERVING_MODES.has(m ?? ''));
      },
      { timeout: timeoutMs, interval: 100, message: 'no quorum' },
    ).catch((err: Error) => {
      const state = modes.map((m, i) => `${i}: ${this.servers[i].isRunning() ? (m ?? 'not serving') : 'stopped'}`);
      throw new Error(`${err.message} (members ${state.join(', ')})`);
    });
  }

  async stop(): Promise<void> {
    await Promise.all(this.servers.map((s) => s.dispose()));
  }
}

/** Starts an ensemble (default 3 members) of QuorumPeerMain JVMs; resolves when it has a quorum. */
export async function startEnsemble(opts: ZkServerOptions & { size?: number } = {}): Promise<ZkEnsemble> {
  const tickTime = opts.tickTime ?? 200;
  const size = opts.size ?? 3;
  const servers = Array.from(
    { length: size },
    (_, i) => new ZkProcess('org.apache.zookeeper.server.quorum.QuorumPeerMain', `member ${i + 1}/${size}`),
  );
  let lastError: unknown;
  for (let attempt = 1; attempt <= START_ATTEMPTS; attempt++) {
    const ports: number[][] = [];
    for (let i = 0; i < size; i++) ports.push([await freePort(), await freePort(), await freePort()]);
    const peers = ports.map(([, peer, election], i) => `server.${i + 1}=${HOST}:${peer}:${election}`);
    servers.forEach((server, i) => {
      const clientPort = ports[i][0];
      const config =
        baseConfig(server, clientPort, tickTime) + ['initLimit=10', 'syncLimit=5', ...peers, ''].join('\n');
      server.configure(clientPort, config, i + 1);
    });
    const starts = servers.map((s) => s.start(ENSEMBLE_ATTEMPT_TIMEOUT_MS));
    try {
      await Promise.all(starts);
      const ensemble = new Ensemble(servers);
      await ensemble.waitForQuorum();
      return ensemble;
    } catch (err) {
      lastError = err;
      await Promise.all(servers.map((s) => s.kill()));
      await Promise.allSettled(starts);
      // A member exited or never served (a leader that cannot bind its peer port keeps trying):
      // probably lost a race for a port, try new ones.
      if (!(err instanceof StartError)) break;
    }
  }
  await Promise.all(servers.map((s) => s.dispose()));
  throw lastError;
}

/** Kills every ZooKeeper this process started and removes their temp dirs. */
export async function stopAllZooKeepers(): Promise<void> {
  await Promise.all([...live].map((s) => s.dispose()));
}
