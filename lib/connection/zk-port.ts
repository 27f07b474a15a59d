/**
 * The narrow port between the lock recipe and ZooKeeper. The recipe sees only this;
 * the one adapter that talks to node-zookeeper-client hides the client's quirks behind it.
 * Every method rejects with a `ZooKeeperError` whose `zkCode` says how it failed.
 */

/** The parts of a znode's Stat the library reads. zxids and session ids are 64-bit: bigint. */
export interface NodeStat {
  czxid: bigint;
  mzxid: bigint;
  /** zxid of the last change to the node's children (create or delete of a child, also by session end). */
  pzxid: bigint;
  /** Session that owns an ephemeral node; 0n for persistent nodes. */
  ephemeralOwner: bigint;
  version: number;
  cversion: number;
  numChildren: number;
  dataLength: number;
}

export type ZkCreateMode = 'persistent' | 'ephemeral' | 'ephemeral-sequential';

/** Why a session ended, as the lock layer reports it on the held locks of that session. */
export type SessionEndReason = 'session-expired' | 'connection-lost' | 'closed';

/** One ZooKeeper session. A new session is a new object; `ended` aborts once, when it is over. */
export interface ZkSession {
  readonly id: bigint;
  /** The session timeout the server granted, in ms. */
  readonly timeout: number;
  /** Aborts (reason: a {@link SessionEndReason}) when the session is over for us. */
  readonly ended: AbortSignal;
}

/** A registered watch; `cancel()` forgets our interest (and removes the server watch when nobody else wants it). */
export interface WatchRegistration {
  /** The node's data when the watch was set. */
  readonly data: Buffer;
  cancel(): void;
}

/** How the connection reaches its server (health checks and `inspect` show it). Never key material. */
export interface ZkTransport {
  /** True over TLS (the `tls` option). */
  encrypted: boolean;
  /** With TLS: the protocol version, e.g. `TLSv1.2`. */
  protocol?: string;
  /** With TLS: the cipher suite. */
  cipher?: string;
  /** With TLS: the server certificate's subject (RFC 2253, e.g. `CN=zk1,O=example`). */
  peer?: string;
  /** With TLS: who issued the server's certificate (RFC 2253). */
  peerIssuer?: string;
  /** With TLS: when the server's certificate expires (ISO 8601). */
  peerValidTo?: string;
  /**
   * With a client certificate: the session's identity as ZooKeeper's x509 auth provider names it
   * (`x509:CN=billing,O=example`); an `acl` entry `{ scheme: 'x509', id: 'CN=billing,O=example' }` matches it.
   */
  identity?: string;
}

export interface ZkPort {
  /** The current session, when there is one. */
  currentSession(): ZkSession | undefined;
  /** The current session, or the next one; rejects when `signal` aborts or the connection is closed. */
  waitForSession(signal?: AbortSignal): Promise<ZkSession>;
  create(path: string, data: Buffer, mode: ZkCreateMode): Promise<string>;
  /**
   * Creates a lock directory and any missing parents as CONTAINER nodes (the server deletes them
   * once they have had children and have none left; persistent nodes on servers without
   * containers); existing nodes are fine.
   */
  ensureLockDirectory(path: string): Promise<void>;
  remove(path: string, version?: number): Promise<void>;
  getChildren(path: string): Promise<{ children: string[]; stat: NodeStat }>;
  getData(path: string): Promise<{ data: Buffer; stat: NodeStat }>;
  exists(path: string): Promise<NodeStat | null>;
  /** Replaces the node's data (`version` -1: any version). */
  setData(path: string, data: Buffer, version?: number): Promise<NodeStat>;
  /**
   * Sets a one-shot watch on `path` (with getData, which, unlike exists, leaves no watch on a
   * missing node) and calls `onChange` when the node changes or goes. Resolves `null` when the
   * node does not exist (nothing registered).
   */
  watch(path: string, onChange: () => void): Promise<WatchRegistration | null>;
  /** How the connection reaches its server while connected (optional: a stand-in has no wire). */
  transport?(): ZkTransport | undefined;
}
