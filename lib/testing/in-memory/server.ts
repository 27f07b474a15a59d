/**
 * The server side of the in-process ZooKeeper stand-in: sessions (with their timeouts and their
 * ephemeral nodes), one-shot data watches per session, and the network between it and each
 * connection, which a test can cut ({@link InMemoryZooKeeper.disconnect}) and mend
 * ({@link InMemoryZooKeeper.reconnect}). The data lives in ./tree.ts; the client side, which the
 * lock recipe talks to, in ./connection.ts.
 */
import { randomBytes } from 'node:crypto';
import type { ZkLockOptions } from '../../zk-lock.options.js';
import { timerAt, type DeadlineTimer } from '../../connection/adapter/timers.js';
import { ZNodeTree, type TreeChange } from './tree.js';
import { InMemoryZkConnection } from './connection.js';

/** The client side of a session, as the server talks to it. */
export interface Endpoint {
  /** A data watch of the session on `path` (a server path) fired. */
  notify(path: string): void;
  /** The server expired the session while this endpoint was connected to it. */
  expired(): void;
}

/** A connection as the network sees it: told when its reachability may have changed. */
export interface Peer {
  reachabilityChanged(): void;
}

interface ServerSession {
  id: bigint;
  password: Buffer;
  timeout: number;
  peer: Peer;
  /** The connected client side, while it is connected. */
  endpoint: Endpoint | undefined;
  /** Paths with a data watch of this session. */
  watches: Set<string>;
  /** Notifications for a cut-off client, delivered when it is back (as a real server does after SetWatches). */
  pending: string[];
  /** Expiry, armed while no client is connected to the session. */
  expiry: DeadlineTimer | undefined;
}

/**
 * What a connection may ask of the server (not public API: a connection gets it from
 * {@link InMemoryZooKeeper.connection}).
 */
export class ServerCore {
  readonly tree = new ZNodeTree();
  private readonly sessions = new Map<bigint, ServerSession>();
  private readonly cut = new Set<Peer>();
  private readonly peers = new Set<Peer>();
  private down = false;
  private nextSession = 0n;

  /** True when `peer` can reach the server now. */
  reachable(peer: Peer): boolean {
    return !this.down && !this.cut.has(peer);
  }

  join(peer: Peer): void {
    this.peers.add(peer);
  }

  leave(peer: Peer): void {
    this.peers.delete(peer);
    this.cut.delete(peer);
  }

  openSession(peer: Peer, timeout: number, endpoint: Endpoint): { id: bigint; password: Buffer } {
    this.nextSession += 1n;
    // Like a real server's ids: a server id in the top byte, some random bits, then a counter.
    const id = (1n << 56n) | (BigInt(randomBytes(3).readUIntBE(0, 3)) << 24n) | this.nextSession;
    const password = randomBytes(16);
    this.tree.tick(); // (a session's creation is a transaction of its own on a real server)
    this.sessions.set(id, {
      id,
      password,
      timeout,
      peer,
      endpoint,
      watches: new Set(),
      pending: [],
      expiry: undefined,
    });
    return { id, password };
  }

  /** A client is back on its session: true when the session lives (its missed notifications follow), false when it expired. */
  resumeSession(id: bigint, endpoint: Endpoint): boolean {
    const session = this.sessions.get(id);
    if (!session) return false;
    session.expiry?.cancel();
    session.expiry = undefined;
    session.endpoint = endpoint;
    const missed = session.pending.splice(0);
    for (const path of missed) this.deliver(session, path);
    return true;
  }

  /** The client of a session is cut off: the session expires after its timeout unless the client is back. */
  detach(id: bigint): void {
    const session = this.sessions.get(id);
    if (!session || !session.endpoint) return;
    session.endpoint = undefined;
    session.expiry = timerAt(performance.now() + session.timeout, () => this.endSession(session, false));
  }

  /** The client closed its session: its ephemeral nodes go now. */
  closeSession(id: bigint): void {
    const session = this.sessions.get(id);
    if (session) this.endSession(session, false);
  }

  /** Expires every live session `peer` opened; the connected client hears of it at once. */
  expireSessionsOf(peer: Peer): number {
    const owned = [...this.sessions.values()].filter((session) => session.peer === peer);
    for (const session of owned) this.endSession(session, true);
    return owned.length;
  }

  isAlive(id: bigint): boolean {
    return this.sessions.has(id);
  }

  get liveSessions(): number {
    return this.sessions.size;
  }

  /** Data watches set on the server, over all sessions (what `wchs` counts on a real one). */
  get watchCount(): number {
    let count = 0;
    for (const session of this.sessions.values()) count += session.watches.size;
    return count;
  }

  /** A write of `session`'s client: apply it, then fire the watches it triggers. */
  write<T extends { change: TreeChange }>(apply: () => T): T {
    const result = apply();
    this.fire(result.change);
    return result;
  }

  /** getData with a watch: the node's data, or null when it does not exist (no watch is left then). */
  watchData(sessionId: bigint, path: string): Buffer | null {
    const session = this.sessions.get(sessionId);
    const found = this.tree.exists(path) ? this.tree.getData(path).data : null;
    if (session && found) session.watches.add(path);
    return found;
  }

  removeWatch(sessionId: bigint, path: string): void {
    this.sessions.get(sessionId)?.watches.delete(path);
  }

  // ---- the network ----

  setCut(peer: Peer | undefined, cut: boolean): void {
    if (peer === undefined) {
      this.down = cut;
      if (!cut) this.cut.clear();
      for (const each of Array.from(this.peers)) each.reachabilityChanged();
      return;
    }
    if (cut) this.cut.add(peer);
    else this.cut.delete(peer);
    peer.reachabilityChanged();
  }

  private endSession(session: ServerSession, tell: boolean): void {
    if (this.sessions.get(session.id) !== session) return;
    this.sessions.delete(session.id);
    session.expiry?.cancel();
    session.watches.clear();
    const change = this.tree.closeSession(session.id);
    // The client first (synchronously), then the watches of others (their notifications are
    // delivered later): nobody can act on the nodes' deletion before the holder is told.
    if (tell) session.endpoint?.expired();
    session.endpoint = undefined;
    this.fire(change);
  }

  private fire(change: TreeChange): void {
    const paths = [...change.changed, ...change.deleted];
    if (paths.length === 0) return;
    for (const session of this.sessions.values()) {
      for (const path of paths) {
        if (!session.watches.delete(path)) continue; // one-shot: gone once it fires
        if (session.endpoint) this.deliver(session, path);
        else session.pending.push(path);
      }
    }
  }

  /** A notification travels to the client after the write that caused it has returned. */
  private deliver(session: ServerSession, path: string): void {
    const endpoint = session.endpoint;
    queueMicrotask(() => {
      if (session.endpoint === endpoint) endpoint?.notify(path);
    });
  }
}

/**
 * An in-process stand-in for a ZooKeeper server (or ensemble), for unit tests: the library's real
 * lock recipe runs over {@link InMemoryZkConnection}s to it, without Java or a network. It keeps
 * ZooKeeper's semantics the recipe relies on (sessions and their ephemeral nodes, 10-digit
 * sequences per parent, containers, one-shot data watches, Stat zxids) and lets a test expire a
 * session or cut a connection. A contract suite runs the same checks against it and a real server.
 *
 * @example
 * const zk = new InMemoryZooKeeper();
 * const connection = await zk.connect({ sessionTimeout: 2_000 });
 * const locks = new LockService(connection.asConnectionService());
 * const lock = await locks.acquire('/locks/report');
 * await zk.expireSession(connection); // lock.signal aborts (LockLostError, 'session-expired')
 */
export class InMemoryZooKeeper {
  private readonly core = new ServerCore();

  /**
   * A new connection (a client with one session at a time), not connected yet: `connect()` it,
   * or let Nest's lifecycle do it. `connectionString` defaults to `in-memory:2181` (a chroot in
   * it works as on a real server: the chroot node must exist).
   */
  connection(options: Partial<ZkLockOptions> = {}): InMemoryZkConnection {
    // (options already resolved, e.g. by ZkLockModule, are taken as they are)
    const complete = options.connectionString
      ? (options as ZkLockOptions)
      : { ...options, connectionString: IN_MEMORY_CONNECTION_STRING };
    return new InMemoryZkConnection(this, this.core, complete);
  }

  /** {@link connection}, connected. */
  async connect(options: Partial<ZkLockOptions> = {}): Promise<InMemoryZkConnection> {
    const connection = this.connection(options);
    await connection.connect();
    return connection;
  }

  /**
   * Expires the connection's session on the server, as a real server does when it has not heard
   * from the client for the session timeout: its ephemeral nodes (its locks) go, other sessions'
   * watches fire. Unlike a real server, the stand-in tells the connection at once (when it is
   * connected; a cut-off one hears it when reconnected, or presumes it first), so its holders'
   * signals have aborted (`LockLostError`, reason `session-expired`) when this resolves. A new
   * session follows by itself.
   */
  async expireSession(connection: InMemoryZkConnection): Promise<void> {
    if (this.core.expireSessionsOf(connection.peer) === 0) {
      throw new Error('expireSession: the connection has no live session on this InMemoryZooKeeper');
    }
    await Promise.resolve();
  }

  /**
   * Cuts the network between the server and `connection` (all connections, and new ones, when
   * omitted: a server outage). The connection goes `suspended`; requests wait (up to
   * `operationTimeout`); the connection presumes its session lost after 90% of the session
   * timeout (holders told, reason `connection-lost`) and the server expires it after the whole
   * timeout, unless {@link reconnect} comes first.
   */
  disconnect(connection?: InMemoryZkConnection): void {
    this.core.setCut(connection?.peer, true);
  }

  /** Mends what {@link disconnect} cut (everything, when called without a connection). */
  reconnect(connection?: InMemoryZkConnection): void {
    this.core.setCut(connection?.peer, false);
  }

  /** Every node at or below `under` (default: all), parents first: e.g. to check that nothing is left. */
  nodes(under = '/'): string[] {
    return this.core.tree.paths(under);
  }

  /** Sessions alive on the server. */
  get sessionCount(): number {
    return this.core.liveSessions;
  }

  /** Data watches set on the server, over all sessions (`wchs` of a real server). */
  get watchCount(): number {
    return this.core.watchCount;
  }
}

/** The connection string of a stand-in connection unless given another. */
export const IN_MEMORY_CONNECTION_STRING = 'in-memory:2181';
