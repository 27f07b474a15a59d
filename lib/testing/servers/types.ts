import type { ZooKeeperRuntimeChoice } from './runtime.js';
import type { ZkServerTls, ZkServerTlsOptions } from './tls.js';

export interface ZkServerOptions {
  /** ZooKeeper's tick in ms (default 200): session timeouts are clamped to [2, 20] ticks (0.4-4 s). */
  tickTime?: number;
  /**
   * Fills the server's (empty) dataDir before its first start, e.g. with a snapshot; a standalone
   * server loads it as its own data. (Docker: copied into the container's /data.)
   */
  prepareData?: (dataDir: string) => void | Promise<void>;
  /**
   * `auto` (default): a local ZooKeeper run with java (ZK_CLASSPATH, ZOOKEEPER_HOME, or Debian's
   * zookeeper package), else the official Docker image when a Docker engine answers.
   * `java` or `docker`: only that.
   */
  runtime?: ZooKeeperRuntimeChoice;
  /** The Docker image (default `zookeeper:3.9`). */
  image?: string;
  /** The Docker CLI (default `docker`; e.g. `podman`). */
  docker?: string;
  /**
   * Serve TLS only (a `secureClientPort`, no plaintext client port; the Netty connection factory),
   * with throwaway certificates from the JDK's keytool (see `server.tls`). `true`: server
   * authentication only; `{ clientAuth: 'need' }`: mutual TLS, with ZooKeeper's x509 auth provider.
   * Java runtime only.
   */
  tls?: boolean | ZkServerTlsOptions;
}

export interface ZkServer {
  /** How it runs: a JVM on this machine, or a Docker container. */
  readonly runtime: 'java' | 'docker';
  readonly host: string;
  /** Client port (on 127.0.0.1; for Docker, the published port). */
  readonly port: number;
  /** `127.0.0.1:<port>` */
  readonly connectString: string;
  /** With the `tls` option: its certificates, and the `tls` option for its clients (`tls.clientOptions`). */
  readonly tls?: ZkServerTls;
  /** With `tls: { alsoPlaintext: true }`: `127.0.0.1:<its plaintext clientPort>`. */
  readonly plaintextConnectString?: string;
  /** ZooKeeper's dataDir (inside `dir`; for Docker, the staging dir copied into the container). */
  readonly dataDir: string;
  /** The server's temp dir (config, data, log). */
  readonly dir: string;
  /** The JVM's stdout/stderr and log output (for Docker: refreshed from `docker logs` by logTail()). */
  readonly logFile: string;
  /** Pid of the running JVM (e.g. to SIGSTOP it); undefined when stopped, and for Docker. */
  readonly pid: number | undefined;
  isRunning(): boolean;
  /** (Re)starts on the same port and data dir; resolves when it serves requests. */
  start(): Promise<void>;
  /** SIGTERM (graceful shutdown); resolves when it exited. Data is kept for start(). */
  stop(): Promise<void>;
  /** SIGKILL (a crash); resolves when it exited. Data is kept for start(). */
  kill(): Promise<void>;
  /** Freezes the server (SIGSTOP, `docker pause`): connections stay open, nothing answers. */
  pause(): Promise<void>;
  /** Undoes {@link pause}. */
  unpause(): Promise<void>;
  /** Kills it and removes its temp dir (and container); it cannot be started again. */
  dispose(): Promise<void>;
  /** Last lines of the log. */
  logTail(lines?: number): string;
}

export interface ZkEnsemble {
  /** The members, `servers[i]` has myid i + 1. */
  readonly servers: ZkServer[];
  /** `h:p,h:p,h:p` */
  readonly connectString: string;
  /** With the `tls` option: as each member's `tls`. */
  readonly tls?: ZkServerTls;
  /** Index in `servers` of the current leader (by `srvr` Mode), -1 when there is none right now. */
  leaderIndex(): Promise<number>;
  /** Waits until there is one leader and every running member serves (default timeout 30 s). */
  waitForQuorum(timeoutMs?: number): Promise<void>;
  /** Kills every member and removes the temp dirs. */
  stop(): Promise<void>;
}
