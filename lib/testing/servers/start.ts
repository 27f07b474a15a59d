/**
 * Real ZooKeeper servers for e2e and integration tests: a standalone server or an ensemble, each
 * on free loopback ports with its own temp dir and fast ticks (tickTime 200 ms: session timeouts
 * of 0.4-4 s), all four letter words, and containers reclaimed within about a second. From a
 * local ZooKeeper run with java, else the official Docker image (see ./runtime.ts). No server or
 * temp dir outlives the process that started it (see ./server-base.ts).
 */
import { waitFor } from '../wait.js';
import { DockerNetwork, DockerServer, dockerEnvironment } from './docker-server.js';
import { JavaServer, QUORUM_MAIN, STANDALONE_MAIN } from './java-server.js';
import { runtimeFor, type ZooKeeperRuntime } from './runtime.js';
import {
  baseConfig,
  freePort,
  HOST,
  live,
  SERVING_MODES,
  StartError,
  START_TIMEOUT_MS,
  type ServerBase,
} from './server-base.js';
import { secureConfig, serverTls, type ZkServerTls } from './tls.js';
import type { ZkEnsemble, ZkServer, ZkServerOptions } from './types.js';

const ENSEMBLE_ATTEMPT_TIMEOUT_MS = 20_000;
const START_ATTEMPTS = 3;

async function runtimeOf(opts: ZkServerOptions): Promise<ZooKeeperRuntime> {
  if (opts.tls && opts.runtime === 'docker')
    throw new Error('TLS test servers need the java runtime (and its keytool)');
  // TLS servers: keytool makes the certificates, and the JVM is configured here.
  return runtimeFor(opts.tls ? 'java' : (opts.runtime ?? 'auto'), { docker: opts.docker, image: opts.image });
}

/** The TLS settings of a server started with `opts` (undefined: plaintext). */
function tlsOf(opts: ZkServerOptions): Promise<ZkServerTls | undefined> {
  return opts.tls ? serverTls(opts.tls) : Promise.resolve(undefined);
}

/**
 * Starts a standalone server on a free loopback port with a fresh temp dir; resolves when it
 * serves. Rejects with `ZooKeeperNotFoundError` (saying what to install) when there is neither
 * a local ZooKeeper nor a Docker engine.
 *
 * @example
 * const server = await startZooKeeper();
 * // ZkLockModule.forRoot({ connectionString: server.connectString }) ... then: await server.dispose();
 */
export async function startZooKeeper(opts: ZkServerOptions = {}): Promise<ZkServer> {
  const tickTime = opts.tickTime ?? 200;
  const runtime = await runtimeOf(opts);
  const server =
    runtime.kind === 'java'
      ? new JavaServer(runtime, STANDALONE_MAIN, 'standalone')
      : new DockerServer(runtime, 'standalone');
  const tls = await tlsOf(opts).catch(async (error: unknown) => {
    await server.dispose();
    throw error;
  });
  server.tls = tls;
  let lastError: unknown;
  for (let attempt = 1; attempt <= START_ATTEMPTS; attempt++) {
    const port = await freePort();
    if (server instanceof JavaServer) {
      const plain = tls?.alsoPlaintext ? await freePort() : undefined;
      const secure = tls && (await secureConfig(tls, HOST, port, plain));
      server.configure(port, baseConfig(tickTime), undefined, secure, plain);
    } else await server.configure(port, dockerEnvironment(tickTime));
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
  constructor(
    readonly servers: ServerBase[],
    private readonly network?: DockerNetwork,
    readonly tls?: ZkServerTls,
  ) {}

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
    await this.network?.remove();
  }
}

/** Starts an ensemble (default 3 members); resolves when it has a quorum. */
export async function startEnsemble(opts: ZkServerOptions & { size?: number } = {}): Promise<ZkEnsemble> {
  const tickTime = opts.tickTime ?? 200;
  const size = opts.size ?? 3;
  const runtime = await runtimeOf(opts);
  const network = runtime.kind === 'docker' ? new DockerNetwork(runtime) : undefined;
  await network?.create();
  const servers: ServerBase[] = Array.from({ length: size }, (_, i) => {
    const name = `member ${i + 1}/${size}`;
    return runtime.kind === 'java'
      ? new JavaServer(runtime, QUORUM_MAIN, name)
      : new DockerServer(runtime, name, { network: network!, alias: `zk${i + 1}` });
  });
  const tls = await tlsOf(opts).catch(async (error: unknown) => {
    await Promise.all(servers.map((s) => s.dispose()));
    throw error;
  });
  for (const server of servers) server.tls = tls;
  let lastError: unknown;
  for (let attempt = 1; attempt <= START_ATTEMPTS; attempt++) {
    await configureMembers(servers, tickTime, tls);
    const starts = servers.map((s) => s.start(ENSEMBLE_ATTEMPT_TIMEOUT_MS));
    try {
      await Promise.all(starts);
      const ensemble = new Ensemble(servers, network, tls);
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
  await network?.remove();
  throw lastError;
}

/** New ports and configuration for every member (JVMs: client, peer and election ports; containers: the client port). */
async function configureMembers(servers: ServerBase[], tickTime: number, tls?: ZkServerTls): Promise<void> {
  const size = servers.length;
  if (servers[0] instanceof JavaServer) {
    const ports: number[][] = [];
    for (let i = 0; i < size; i++) ports.push([await freePort(), await freePort(), await freePort()]);
    const peers = ports.map(([, peer, election], i) => `server.${i + 1}=${HOST}:${peer}:${election}`);
    for (const [i, server] of servers.entries()) {
      const plain = tls?.alsoPlaintext ? await freePort() : undefined;
      (server as JavaServer).configure(
        ports[i][0],
        [...baseConfig(tickTime), 'initLimit=10', 'syncLimit=5', ...peers],
        i + 1,
        tls && (await secureConfig(tls, HOST, ports[i][0], plain)),
        plain,
      );
    }
    return;
  }
  const members = servers.map((_, i) => `server.${i + 1}=zk${i + 1}:2888:3888;2181`).join(' ');
  for (const [i, server] of servers.entries()) {
    const env = dockerEnvironment(tickTime, {
      ZOO_MY_ID: String(i + 1),
      ZOO_SERVERS: members,
      ZOO_INIT_LIMIT: '10',
      ZOO_SYNC_LIMIT: '5',
    });
    await (server as DockerServer).configure(await freePort(), env);
  }
}

/** Kills every ZooKeeper this process started and removes their temp dirs (and containers). */
export async function stopAllZooKeepers(): Promise<void> {
  await Promise.all([...live].map((s) => s.dispose()));
}
