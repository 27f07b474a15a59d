/**
 * A test server as a container of the official `zookeeper` image, for machines without a local
 * ZooKeeper: configured through the image's environment (ZOO_TICK_TIME, ZOO_SERVERS, ...), its
 * client port published on 127.0.0.1 at a port we chose (so it stays the same across restarts),
 * and a watchdog that removes the container when the test process dies (see ./server-base.ts).
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import type { DockerRuntime } from './runtime.js';
import { CONTAINER_CHECK, HOST, ServerBase, Watchdog } from './server-base.js';

// On its stdin: the container's id. At EOF it removes the container and the temp dir.
const WATCHDOG =
  'id=; while read -r line; do id=$line; done; [ -z "$id" ] || "$DOCKER" rm -f "$id" >/dev/null 2>&1; ' +
  'for i in 1 2 3 4 5; do rm -rf "$ZK_DIR" 2>/dev/null && break; sleep 0.2; done';

// On its stdin: a network's name. At EOF it removes the network (once its containers are gone).
const NETWORK_WATCHDOG =
  'net=; while read -r line; do net=$line; done; [ -z "$net" ] || ' +
  'for i in 1 2 3 4 5 6 7 8 9 10; do "$DOCKER" network rm "$net" >/dev/null 2>&1 && break; sleep 1; done';

/** Pulling the image on first use may take a while. */
const CREATE_TIMEOUT_MS = 300_000;
const COMMAND_TIMEOUT_MS = 60_000;

/** Runs the Docker CLI; resolves with its stdout (trimmed), rejects naming the command and its stderr. */
export function runDocker(runtime: DockerRuntime, args: string[], timeout = COMMAND_TIMEOUT_MS): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(runtime.docker, args, { timeout, maxBuffer: 16 << 20 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${runtime.docker} ${args.join(' ')} failed: ${stderr.trim() || error.message}`));
      else resolve(stdout.trim());
    });
  });
}

/** The image's environment for a test server: fast ticks, every four letter word, containers checked often. */
export function dockerEnvironment(tickTime: number, extra: Record<string, string> = {}): Record<string, string> {
  return {
    ZOO_TICK_TIME: String(tickTime),
    ZOO_MAX_CLIENT_CNXNS: '0',
    ZOO_ADMINSERVER_ENABLED: 'false',
    ZOO_4LW_COMMANDS_WHITELIST: '*',
    ZOO_CFG_EXTRA: 'forceSync=no preAllocSize=1024',
    JVMFLAGS: `-Xmx256m -Djava.net.preferIPv4Stack=true ${CONTAINER_CHECK}`,
    ...extra,
  };
}

/** A Docker network for an ensemble's members, removed with the ensemble (or by its watchdog). */
export class DockerNetwork {
  readonly name = `nestjs-zk-lock-test-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  private readonly watchdog: Watchdog;

  constructor(private readonly runtime: DockerRuntime) {
    this.watchdog = new Watchdog(NETWORK_WATCHDOG, { DOCKER: runtime.docker });
  }

  async create(): Promise<void> {
    await runDocker(this.runtime, ['network', 'create', this.name]);
    this.watchdog.tell(this.name);
  }

  async remove(): Promise<void> {
    await runDocker(this.runtime, ['network', 'rm', this.name]).catch(() => undefined);
    await this.watchdog.stop();
  }
}

/** How a member joins an ensemble: its network, and its name there. */
export interface DockerMembership {
  network: DockerNetwork;
  alias: string;
}

/** One start of the container, until it stops. */
interface Run {
  /** Resolves when `docker wait` returns (the container stopped). */
  exited: Promise<void>;
  /** Why it stopped, once it did. */
  exit?: string;
}

export class DockerServer extends ServerBase {
  readonly runtime = 'docker';
  private env: Record<string, string> = {};
  private container: string | undefined;
  private run: Run | undefined;
  private readonly watchdog: Watchdog;

  constructor(
    private readonly docker: DockerRuntime,
    name: string,
    private readonly membership?: DockerMembership,
  ) {
    super(name);
    this.watchdog = new Watchdog(WATCHDOG, { DOCKER: docker.docker, ZK_DIR: this.dir });
  }

  get pid(): undefined {
    return undefined;
  }

  /** The container's id, once created. */
  get containerId(): string | undefined {
    return this.container;
  }

  /** Sets the published client port and the image's environment for the next start (a new container, empty data). */
  async configure(clientPort: number, env: Record<string, string>): Promise<void> {
    await this.removeContainer();
    this.clientPort = clientPort;
    this.env = env;
  }

  isRunning(): boolean {
    return this.run !== undefined && this.run.exit === undefined;
  }

  async stop(): Promise<void> {
    await this.halt(['stop', '-t', '10']);
  }

  async kill(): Promise<void> {
    await this.halt(['kill']);
  }

  async pause(): Promise<void> {
    if (this.isRunning()) await runDocker(this.docker, ['pause', this.container!]);
  }

  async unpause(): Promise<void> {
    if (this.isRunning()) await runDocker(this.docker, ['unpause', this.container!]);
  }

  logTail(lines = 30): string {
    if (!this.container) return '(no container)';
    try {
      const text = execFileSync(this.docker.docker, ['logs', '--tail', String(lines), this.container], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
        timeout: 10_000,
      });
      fs.writeFileSync(this.logFile, text);
      return text.trimEnd();
    } catch (error) {
      return `(docker logs failed: ${(error as Error).message})`;
    }
  }

  /** The exit hook leaves the container to the watchdog, which sees our end and removes it. */
  disposeSync(): void {
    this.disposed = true;
    this.forget();
  }

  protected async release(): Promise<void> {
    await this.removeContainer();
    await this.watchdog.stop();
  }

  protected async launch(timeoutMs: number): Promise<void> {
    if (this.disposed) throw new Error(`ZooKeeper ${this.name}: disposed while starting`);
    if (!this.container) await this.createContainer();
    const id = this.container!;
    try {
      await runDocker(this.docker, ['start', id]);
    } catch (error) {
      throw this.failure(`did not start: ${(error as Error).message}`);
    }
    const run = this.watch(id);
    this.run = run;
    try {
      // (the port is published for this container only: whoever answers there is ours)
      await this.waitUntilServing(
        timeoutMs,
        () => run.exit,
        async () => true,
      );
    } catch (error) {
      await this.kill();
      throw error;
    }
  }

  /** A run of container `id`: `docker wait` returns when it stops, with its exit code. */
  private watch(id: string): Run {
    const waiter = spawn(this.docker.docker, ['wait', id], { stdio: ['ignore', 'pipe', 'ignore'] });
    waiter.unref();
    let output = '';
    waiter.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const run: Run = { exited: Promise.resolve() };
    run.exited = new Promise((resolve) => {
      const done = (why: string) => {
        run.exit ??= why;
        resolve();
      };
      waiter.once('exit', () => done(`code ${output.trim() || '?'}`));
      waiter.once('error', (error) => done(`docker wait failed: ${error.message}`));
    });
    return run;
  }

  /** Stops the current run (`docker stop` or `kill`) and waits until `docker wait` saw it end. */
  private async halt(command: string[]): Promise<void> {
    const run = this.run;
    if (!run || run.exit !== undefined || !this.container) return;
    await runDocker(this.docker, [...command, this.container]).catch(() => undefined);
    await Promise.race([run.exited, new Promise((resolve) => setTimeout(resolve, 15_000).unref())]);
    run.exit ??= command[0];
  }

  private async createContainer(): Promise<void> {
    const args = ['create', '--name', `nestjs-zk-lock-test-${process.pid}-${Math.random().toString(36).slice(2, 10)}`];
    args.push('-p', `${HOST}:${this.clientPort}:2181`);
    if (this.membership) {
      const { network, alias } = this.membership;
      args.push('--network', network.name, '--network-alias', alias, '--hostname', alias);
    }
    for (const [key, value] of Object.entries(this.env)) args.push('-e', `${key}=${value}`);
    args.push(this.docker.image);
    this.container = await runDocker(this.docker, args, CREATE_TIMEOUT_MS);
    this.watchdog.tell(this.container);
    // Data prepared before the first start (e.g. a snapshot) goes into the image's /data.
    if (fs.readdirSync(this.dataDir).length > 0) {
      await runDocker(this.docker, ['cp', `${this.dataDir}/.`, `${this.container}:/data`]);
    }
  }

  private async removeContainer(): Promise<void> {
    const id = this.container;
    if (!id) return;
    this.container = undefined;
    if (this.run) this.run.exit ??= 'removed';
    await runDocker(this.docker, ['rm', '-f', id]).catch(() => undefined);
  }
}
