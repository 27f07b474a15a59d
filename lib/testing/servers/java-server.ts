/**
 * A test server as a JVM on this machine, from a local ZooKeeper's classpath: its own temp dir
 * (zoo.cfg, data, log at WARN level), fast ticks, and a watchdog that kills the JVM when the
 * test process dies (see ./server-base.ts).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { resetPacketsReceived } from '../four-letter.js';
import type { JavaRuntime } from './runtime.js';
import { CONTAINER_CHECK, HOST, ServerBase, Watchdog } from './server-base.js';
import { withNettyJars } from './tls.js';

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

// On its stdin: the pid of each JVM we start ('-' once it has exited). At EOF it SIGKILLs the last
// JVM and removes the temp dir.
const WATCHDOG =
  'pid=-; while read -r line; do pid=$line; done; [ "$pid" = - ] || kill -9 "$pid" 2>/dev/null; ' +
  'for i in 1 2 3 4 5; do rm -rf "$ZK_DIR" 2>/dev/null && break; sleep 0.2; done';

export const STANDALONE_MAIN = 'org.apache.zookeeper.server.ZooKeeperServerMain';
export const QUORUM_MAIN = 'org.apache.zookeeper.server.quorum.QuorumPeerMain';

/** One JVM run of a server. */
interface Run {
  jvm: ChildProcess;
  exited: Promise<void>;
  /** Set when the JVM has exited, e.g. 'code 1' or 'signal SIGKILL'. */
  exit?: string;
}

export class JavaServer extends ServerBase {
  readonly runtime = 'java';
  private config = '';
  private run: Run | undefined;
  private readonly watchdog: Watchdog;

  constructor(
    private readonly java: JavaRuntime,
    private readonly mainClass: string,
    name: string,
  ) {
    super(name);
    this.watchdog = new Watchdog(WATCHDOG, { ZK_DIR: this.dir });
    fs.writeFileSync(path.join(this.dir, 'log4j.properties'), LOG4J_PROPERTIES);
    fs.writeFileSync(path.join(this.dir, 'logback.xml'), LOGBACK_XML);
  }

  get pid(): number | undefined {
    return this.isRunning() ? this.run?.jvm.pid : undefined;
  }

  /**
   * Sets the client port and the zoo.cfg lines for the next start (and wipes the data). A TLS
   * server gets `secure` (its secureClientPort lines, see ./tls.ts) instead of a clientPort (and
   * `plaintextPort`, when those lines also open a plaintext one).
   */
  configure(clientPort: number, config: string[], myid?: number, secure?: string[], plaintextPort?: number): void {
    this.clientPort = clientPort;
    this.plaintextPort = plaintextPort;
    this.config = [
      ...config,
      `dataDir=${this.dataDir}`,
      ...(secure ?? [`clientPort=${clientPort}`, `clientPortAddress=${HOST}`]),
      '',
    ].join('\n');
    fs.rmSync(this.dataDir, { recursive: true, force: true });
    fs.mkdirSync(this.dataDir);
    if (myid !== undefined) fs.writeFileSync(path.join(this.dataDir, 'myid'), `${myid}\n`);
  }

  isRunning(): boolean {
    return this.run !== undefined && this.run.exit === undefined;
  }

  async stop(): Promise<void> {
    await this.signal('SIGTERM');
  }

  async kill(): Promise<void> {
    await this.signal('SIGKILL');
  }

  async pause(): Promise<void> {
    if (this.isRunning()) this.run!.jvm.kill('SIGSTOP');
  }

  async unpause(): Promise<void> {
    if (this.isRunning()) this.run!.jvm.kill('SIGCONT');
  }

  logTail(lines = 30): string {
    try {
      return fs.readFileSync(this.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log file)';
    }
  }

  disposeSync(): void {
    this.disposed = true;
    this.watchdog.killSync();
    try {
      if (this.pid !== undefined) process.kill(this.pid, 'SIGKILL');
    } catch {
      // already gone
    }
    fs.rmSync(this.dir, { recursive: true, force: true, maxRetries: 3 });
    this.forget();
  }

  protected async release(): Promise<void> {
    await this.watchdog.stop(); // nothing left to watch
  }

  protected async launch(timeoutMs: number): Promise<void> {
    if (this.disposed) throw new Error(`ZooKeeper ${this.name}: disposed while starting`);
    fs.writeFileSync(path.join(this.dir, 'zoo.cfg'), this.config);
    const run = this.spawn();
    this.run = run;
    try {
      await this.waitUntilServing(
        timeoutMs,
        () => run.exit,
        async () => {
          // Our JVM answering, not another test process's server on a reused port.
          const conf = await this.ask('conf', 2000).catch(() => '');
          if (!conf) return undefined;
          if (!conf.includes(`dataDir=${this.dataDir}`)) return false;
          // (Four letter words of the kit go plaintext: a TLS server's packets are not counted.)
          if (!this.tls) await resetPacketsReceived(this).catch(() => undefined);
          return true;
        },
      );
    } catch (err) {
      await this.signal('SIGKILL', run);
      throw err;
    }
  }

  private spawn(): Run {
    const log = fs.openSync(this.logFile, 'a');
    fs.writeSync(log, `\n=== ${new Date().toISOString()} starting ${this.mainClass} on ${this.connectString}\n`);
    const args = [
      '-Xmx256m',
      '-XX:+UseSerialGC',
      '-XX:TieredStopAtLevel=1', // faster start-up
      '-XX:-UsePerfData', // no /tmp/hsperfdata_* files
      '-Djava.net.preferIPv4Stack=true',
      '-Dzookeeper.root.logger=WARN,CONSOLE',
      CONTAINER_CHECK,
      `-Dlog4j.configuration=file:${path.join(this.dir, 'log4j.properties')}`,
      `-Dlogback.configurationFile=${path.join(this.dir, 'logback.xml')}`,
      '-cp',
      this.tls ? withNettyJars(this.java.classpath) : this.java.classpath,
      this.mainClass,
      path.join(this.dir, 'zoo.cfg'),
    ];
    const jvm = spawn(this.java.java, args, { stdio: ['ignore', log, log] });
    fs.closeSync(log);
    jvm.unref(); // a forgotten server must not keep the test process alive (the exit hook kills it)
    if (jvm.pid !== undefined) this.watchdog.tell(String(jvm.pid));

    const run: Run = { jvm, exited: Promise.resolve() };
    run.exited = new Promise((resolve) => {
      const exited = (exit: string) => {
        if (run.exit !== undefined) return;
        run.exit = exit;
        if (this.run === run) this.watchdog.tell('-');
        resolve();
      };
      jvm.once('exit', (code, signal) => exited(signal ? `signal ${signal}` : `code ${code}`));
      jvm.once('error', (err) => exited(`spawn error: ${err.message}`));
    });
    return run;
  }

  /** Signals the JVM of `run` (default: the current one) and waits until it exited. */
  private async signal(signal: 'SIGTERM' | 'SIGKILL', run = this.run): Promise<void> {
    if (!run || run.exit !== undefined) return;
    run.jvm.ref(); // keep the event loop alive until the exit event
    run.jvm.kill(signal);
    let escalate: NodeJS.Timeout | undefined;
    if (signal === 'SIGTERM') {
      run.jvm.kill('SIGCONT'); // in case it was paused (SIGSTOP)
      escalate = setTimeout(() => run.jvm.kill('SIGKILL'), 10_000);
    }
    await run.exited;
    clearTimeout(escalate);
  }
}
