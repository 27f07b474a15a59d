/**
 * The one place (with ./adapter/) that uses node-zookeeper-client (1.1.3). Everything the client
 * gets wrong (docs/architecture.md, "node-zookeeper-client 1.1.3: its gaps, and where they are
 * handled") is handled here, so the rest of the library sees a small promise API with deadlines
 * and a single watch dispatcher per path.
 *
 * One adapter wraps one client object, and a client object lives for at most one session:
 * after expiry (or a presumed expiry) the connection service throws it away and makes another.
 */
import { EventEmitter } from 'node:events';
import { ZooKeeperError } from '../errors/zookeeper.error.js';
import type { ZkAclEntry, ZkAuth } from '../zk-lock.options.js';
import type { ResolvedTls } from './tls-options.js';
import { ConnectAttempts } from './adapter/connect-attempts.js';
import { connectOverTls, ownCertificate, transportOf } from './adapter/tls.js';
import { createContainerRequest } from './adapter/packets.js';
import { PathWatches } from './adapter/watches.js';
import { zk, type RawClient, type RawConnectionManager, type RawStat } from './adapter/raw-client.js';
import { Requests, type ReplyCallback } from './adapter/requests.js';
import { Heartbeat } from './adapter/heartbeat.js';
import { boundedDelay, MAX_TIMER_DELAY } from './adapter/timers.js';
import { Wire } from './adapter/wire.js';
import type { NodeStat, WatchRegistration, ZkCreateMode, ZkTransport } from './zk-port.js';

const CREATE_MODES: Record<ZkCreateMode, number> = { persistent: 0, ephemeral: 1, 'ephemeral-sequential': 3 };
const PERMISSION_BITS: Record<string, number> = { r: 1, w: 2, c: 4, d: 8, a: 16 };
export type AdapterEvent =
  | { type: 'connected'; sessionId: bigint; timeout: number }
  | { type: 'disconnected' }
  | { type: 'expired' }
  | { type: 'auth-failed' }
  /** Without a session, every server refused the connection (nothing listens there); once until connected. */
  | { type: 'refused'; servers: string[] }
  /** Without a session, every server failed with a TLS failure (`failure`: how, per server); once until connected. */
  | { type: 'tls-failed'; failure: string };

export interface AdapterOptions {
  connectionString: string;
  sessionTimeout: number;
  operationTimeout: number;
  reconnectDelay: number;
  auth: ZkAuth[];
  acl: ZkAclEntry[];
  /** TLS for every connection attempt (the resolved `tls` option); plaintext without. */
  tls?: ResolvedTls | undefined;
  /** Resume an existing session (tests use this to expire a session on purpose). */
  session?: { id: Buffer; password: Buffer };
}

export class ZooKeeperClientAdapter {
  private readonly client: RawClient;
  private readonly acl: unknown[];
  private readonly events = new EventEmitter();
  private readonly requests: Requests;
  private readonly watches: PathWatches;
  private readonly wire: Wire;
  /** Pings, and drops a socket whose server stopped answering (see heartbeat.ts). */
  private readonly heartbeat: Heartbeat;
  private closed = false;
  /** How the connection attempts end while there is no session (the client swallows socket errors). */
  private readonly attempts: ConnectAttempts;
  /** False once the server said it has no containers: lock directories are persistent then. */
  private containers = true;
  private connected = false;

  constructor(options: AdapterOptions) {
    this.requests = new Requests(options.operationTimeout);
    this.client = createRawClient(options);
    this.acl = options.acl.map(toRawAcl);
    // As the Java client: a server gets the session timeout divided by the number of servers to
    // answer the connect request (bounded: a timer cannot wait longer than 2^31-1 ms).
    const serverCount = options.connectionString.split('/')[0].split(',').length;
    this.wire = new Wire(
      this.client.connectionManager,
      Math.max(100, Math.min(MAX_TIMER_DELAY, Math.floor(options.sessionTimeout / serverCount))),
    );
    this.attempts = new ConnectAttempts(
      this.client.connectionManager,
      () => this.connected || this.closed,
      {
        refused: (refusing) => this.emit({ type: 'refused', servers: refusing }),
        tlsFailed: (failure) => this.emit({ type: 'tls-failed', failure }),
      },
      options.tls !== undefined,
    );
    if (options.tls) {
      connectOverTls(
        this.client.connectionManager,
        options.tls,
        () => this.closed,
        (tls) => this.attempts.usingTls(ownCertificate(tls), tls.cert !== undefined || tls.pfx !== undefined),
      );
    }
    this.heartbeat = new Heartbeat(this.wire, this.client.connectionManager, () => this.client.getSessionTimeout());
    this.watches = new PathWatches(
      this.client.connectionManager,
      (path, dispatch, answered) =>
        this.requests.run(
          'getData',
          path,
          (cb: ReplyCallback<Buffer | null, RawStat>) =>
            this.client.getData(path, dispatch, (error, data, stat) => {
              if (!error) answered();
              cb(error, data, stat);
            }),
          dataOnly,
        ),
      () => this.connected,
    );
    this.listen();
  }

  /** The client's own events, turned into ours. */
  private listen(): void {
    this.client.on('connected', () => this.onConnected());
    this.client.on('connectedReadOnly', () => this.onConnected());
    this.client.on('disconnected', () => {
      this.heartbeat.stop();
      if (!this.connected) return;
      this.connected = false;
      this.emit({ type: 'disconnected' });
    });
    this.client.on('expired', () => {
      this.connected = false;
      this.heartbeat.stop();
      this.requests.failAll('SESSION_EXPIRED');
      this.emit({ type: 'expired' });
    });
    this.client.on('authenticationFailed', () => {
      this.connected = false;
      this.heartbeat.stop();
      this.requests.failAll('NO_AUTH');
      this.emit({ type: 'auth-failed' });
    });
  }

  onEvent(listener: (event: AdapterEvent) => void): void {
    this.events.on('event', listener);
  }

  connect(): void {
    this.client.connect();
  }

  /**
   * performance.now() when the latest request or ping whose reply came back was sent (the connect
   * request for a session just established or resumed): the server received it no earlier, so it
   * cannot expire the session before this + the session timeout (on its clock).
   */
  get lastAcknowledgedSend(): number {
    return this.wire.lastAcknowledgedSend;
  }

  sessionId(): bigint {
    return this.client.getSessionId().readBigUInt64BE(0);
  }

  /** Session id and password, to resume this session from another client (tests expire sessions this way). */
  sessionCredentials(): { id: Buffer; password: Buffer } {
    return { id: this.client.getSessionId(), password: this.client.getSessionPassword() };
  }

  isConnected(): boolean {
    return this.connected;
  }

  /** Why there is no session, from how the latest attempt at each server ended (for ZkConnectError). */
  connectFailure(): string {
    return this.attempts.failure();
  }

  /** `host:port` of the server this client's socket goes to (`[addr]:port` for IPv6), while connected. */
  serverAddress(): string | undefined {
    const socket = this.client.connectionManager.socket;
    if (!this.connected || !socket?.remoteAddress || !socket.remotePort) return undefined;
    const host = socket.remoteAddress.includes(':') ? `[${socket.remoteAddress}]` : socket.remoteAddress;
    return `${host}:${socket.remotePort}`;
  }

  /** Whether the connection is encrypted, and the certificates' subjects, while connected. */
  transport(): ZkTransport | undefined {
    return this.connected ? transportOf(this.client.connectionManager.socket) : undefined;
  }

  // ---- requests ----

  create(path: string, data: Buffer, mode: ZkCreateMode): Promise<string> {
    return this.requests.run(
      'create',
      path,
      (cb: ReplyCallback<string, undefined>) => this.client.create(path, data, this.acl, CREATE_MODES[mode], cb),
      createdPath,
    );
  }

  /**
   * Creates a CONTAINER node (ZooKeeper 3.5+): the server deletes it once it has had children and
   * has none left, so the directories of many short-lived lock keys do not pile up. The client
   * lacks the request (createContainer, opcode 19): we queue it ourselves with the client's own
   * CreateRequest record, its header telling the client's reply parser to read a create reply
   * (createContainer's reply starts with the same path; the Stat after it is left unread). A
   * server without containers (UNIMPLEMENTED) gets persistent nodes from then on.
   */
  async createContainer(path: string): Promise<void> {
    if (!this.containers) {
      await this.create(path, Buffer.alloc(0), 'persistent');
      return;
    }
    try {
      await this.requests.run(
        'create',
        path,
        (cb: ReplyCallback<undefined, undefined>) =>
          this.client.connectionManager.queue(createContainerRequest(path, this.acl), (error) => cb(error)),
        nothing,
      );
    } catch (error) {
      if (!ZooKeeperError.is(error, 'UNIMPLEMENTED')) throw error;
      this.containers = false;
      await this.create(path, Buffer.alloc(0), 'persistent');
    }
  }

  remove(path: string, version = -1): Promise<void> {
    return this.requests.run(
      'delete',
      path,
      (cb: ReplyCallback<undefined, undefined>) => this.client.remove(path, version, cb),
      nothing,
    );
  }

  getChildren(path: string): Promise<{ children: string[]; stat: NodeStat }> {
    return this.requests.run(
      'getChildren',
      path,
      (cb: ReplyCallback<string[], RawStat>) => this.client.getChildren(path, cb),
      childrenAndStat,
    );
  }

  getData(path: string): Promise<{ data: Buffer; stat: NodeStat }> {
    return this.requests.run(
      'getData',
      path,
      (cb: ReplyCallback<Buffer | null, RawStat>) => this.client.getData(path, undefined, cb),
      dataAndStat,
    );
  }

  exists(path: string): Promise<NodeStat | null> {
    return this.requests.run(
      'exists',
      path,
      (cb: ReplyCallback<RawStat | null, undefined>) => this.client.exists(path, cb),
      statOrNull,
    );
  }

  setData(path: string, data: Buffer, version = -1): Promise<NodeStat> {
    return this.requests.run(
      'setData',
      path,
      (cb: ReplyCallback<RawStat, undefined>) => this.client.setData(path, data, version, cb),
      toStat,
    );
  }

  /** One server watch per path, however many local waiters (see adapter/watches.ts). */
  watch(path: string, onChange: () => void): Promise<WatchRegistration | null> {
    return this.watches.watch(path, onChange);
  }

  /** Number of paths with a live watch registration (tests check that nothing is left). */
  watchCount(): number {
    return this.watches.size;
  }

  /** Watch notifications received from the server (one per fired server watch). */
  get notifications(): number {
    return this.watches.notifications;
  }

  /**
   * Closes the session (its ephemeral nodes go at once) and waits up to `timeout` ms for the
   * server; then, or when the client is cut off, tears the socket down without waiting.
   * No reconnect loop survives this.
   */
  async close(timeout: number): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.heartbeat.stop();
    this.requests.close();
    const manager = this.client.connectionManager;
    manager.connect = () => undefined; // no more reconnect attempts, whatever state we are in
    // A connect already scheduled (the client waits between rounds of servers) would open a socket
    // later and, closing, read the server's connect reply as a request reply: drop such a socket.
    manager.onSocketConnected = function (this: RawConnectionManager) {
      this.socket?.destroy();
    };
    const wasConnected = this.connected;
    this.connected = false;
    if (wasConnected) {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(timer);
          this.client.removeListener('disconnected', done);
          resolve();
        };
        const timer = setTimeout(done, boundedDelay(timeout));
        timer.unref();
        this.client.once('disconnected', done);
        this.client.close();
      });
    } else if (manager.socket) {
      this.client.close();
    } // (else no socket was ever opened, e.g. the tls function failed every time: nothing to close)
    clearTimeout(manager.connectTimeoutHandler);
    manager.socket?.destroy();
    this.watches.clear();
    this.events.removeAllListeners();
  }

  // ---- internals ----

  private emit(event: AdapterEvent): void {
    if (!this.closed) this.events.emit('event', event);
  }

  private onConnected(): void {
    this.attempts.reset();
    this.connected = true;
    this.heartbeat.start();
    this.emit({ type: 'connected', sessionId: this.sessionId(), timeout: this.client.getSessionTimeout() });
  }
}

// What the client's results become (made once: a request is on every lock's path).
const createdPath = (created: string): string => created;
const nothing = (): undefined => undefined;
const dataOnly = (data: Buffer | null): Buffer | null => data;
const childrenAndStat = (children: string[], stat: RawStat) => ({ children, stat: toStat(stat) });
const dataAndStat = (data: Buffer | null, stat: RawStat) => ({ data: data ?? Buffer.alloc(0), stat: toStat(stat) });
const statOrNull = (stat: RawStat | null): NodeStat | null => (stat ? toStat(stat) : null);

function toStat(raw: RawStat): NodeStat {
  return {
    czxid: raw.czxid.readBigInt64BE(0),
    mzxid: raw.mzxid.readBigInt64BE(0),
    pzxid: raw.pzxid.readBigInt64BE(0),
    ephemeralOwner: raw.ephemeralOwner.readBigUInt64BE(0),
    version: raw.version,
    cversion: raw.cversion,
    numChildren: raw.numChildren,
    dataLength: raw.dataLength,
  };
}

/** One client object (one session) with our settings, and the digest credentials added. */
function createRawClient(options: AdapterOptions): RawClient {
  const clientOptions: Record<string, unknown> = {
    // The client arms timers with these (connect timeout, ping, reconnect spin): keep them in range.
    sessionTimeout: Math.min(options.sessionTimeout, MAX_TIMER_DELAY),
    spinDelay: Math.min(options.reconnectDelay, MAX_TIMER_DELAY),
    // Never re-send: a re-sent sequential create makes a duplicate node that nobody owns.
    retries: 0,
  };
  if (options.session) {
    clientOptions.sessionId = options.session.id;
    clientOptions.sessionPassword = options.session.password;
  }
  const client = zk.createClient(options.connectionString, clientOptions);
  for (const { credentials } of options.auth) client.addAuthInfo('digest', Buffer.from(credentials));
  return client;
}

/** An ACL entry of the options, as the client's record. */
function toRawAcl(entry: ZkAclEntry): unknown {
  return new zk.ACL(
    Array.from(entry.perms).reduce((bits, p) => bits | (PERMISSION_BITS[p] ?? 0), 0),
    new zk.Id(entry.scheme, entry.scheme === 'world' ? entry.id || 'anyone' : entry.id),
  );
}
