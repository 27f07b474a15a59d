/**
 * The ONE file that imports node-zookeeper-client (1.1.3). Everything the client gets wrong
 * (see docs/architecture.md, "The client library") is handled here, so the rest of the
 * library sees a small promise API with deadlines and a single watch dispatcher per path.
 *
 * One adapter wraps one client object, and a client object lives for at most one session:
 * after expiry (or a presumed expiry) the connection service throws it away and makes another.
 */
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { createRequire } from 'node:module';
import { ZooKeeperError, type ZkErrorCode } from '../errors/zookeeper.error.js';
import type { ZkAclEntry, ZkAuth } from '../zk-lock.options.js';
import type { NodeStat, WatchRegistration, ZkCreateMode } from './zk-port.js';

// ---- the parts of the client we use, typed here (the package ships no types) ----

interface RawStat {
  czxid: Buffer;
  mzxid: Buffer;
  pzxid: Buffer;
  ephemeralOwner: Buffer;
  version: number;
  cversion: number;
  numChildren: number;
  dataLength: number;
}
interface RawException {
  getCode(): number;
  message: string;
}
type Callback<T extends unknown[]> = (error: RawException | null, ...result: T) => void;
interface RawPacket {
  request: unknown;
  callback: ((...args: unknown[]) => void) | null;
}
interface RawConnectionManager {
  socket?: Socket;
  chrootPath?: string;
  connect(): void;
  onSocketConnected(): void;
  onSocketData(buffer: Buffer): void;
  onSocketClosed(hadError: boolean): void;
  pendingBuffer: Buffer | null;
  connectTimeoutHandler?: NodeJS.Timeout;
  watcherManager: { dataWatchers: Record<string, EventEmitter | undefined> };
  packetQueue: { push(packet: RawPacket): void };
  queue(request: unknown, callback: (error: RawException | null, response?: unknown) => void): void;
}
interface RawClient extends EventEmitter {
  connect(): void;
  close(): void;
  getSessionId(): Buffer;
  getSessionPassword(): Buffer;
  getSessionTimeout(): number;
  addAuthInfo(scheme: string, auth: Buffer): void;
  create(path: string, data: Buffer, acls: unknown[], mode: number, cb: Callback<[string]>): void;
  remove(path: string, version: number, cb: Callback<[]>): void;
  getChildren(path: string, cb: Callback<[string[], RawStat]>): void;
  getData(path: string, watcher: ((event: unknown) => void) | undefined, cb: Callback<[Buffer | null, RawStat]>): void;
  exists(path: string, cb: Callback<[RawStat | null]>): void;
  setData(path: string, data: Buffer, version: number, cb: Callback<[RawStat]>): void;
  connectionManager: RawConnectionManager;
}
interface RawModule {
  createClient(connectionString: string, options: Record<string, unknown>): RawClient;
  ACL: new (perms: number, id: unknown) => unknown;
  Id: new (scheme: string, id: string) => unknown;
}
/** The client's protocol records, for the one request it cannot make itself (createContainer). */
interface RawJute {
  OP_CODES: { CREATE: number };
  Request: new (header: unknown, payload: unknown) => unknown;
  protocol: {
    RequestHeader: new () => {
      type: number;
      serialize(buffer: Buffer, offset: number): number;
    };
    CreateRequest: new () => { path: string; data: Buffer; acl: unknown[]; flags: number };
  };
}
// Loaded with require: the package is CommonJS and ships no types (the ones above are ours).
const load = createRequire(import.meta.url);
const zk = load('node-zookeeper-client') as RawModule;
const jute = load('node-zookeeper-client/lib/jute') as RawJute;

// ---- constants of the protocol ----

const CREATE_MODES: Record<ZkCreateMode, number> = { persistent: 0, ephemeral: 1, 'ephemeral-sequential': 3 };
const PERMISSION_BITS: Record<string, number> = { r: 1, w: 2, c: 4, d: 8, a: 16 };
const ERROR_CODES: Record<number, ZkErrorCode> = {
  [-101]: 'NO_NODE',
  [-110]: 'NODE_EXISTS',
  [-111]: 'NOT_EMPTY',
  [-103]: 'BAD_VERSION',
  [-102]: 'NO_AUTH',
  [-114]: 'INVALID_ACL',
  [-4]: 'CONNECTION_LOSS',
  [-112]: 'SESSION_EXPIRED',
  [-7]: 'OPERATION_TIMEOUT',
  [-6]: 'UNIMPLEMENTED',
};
const OP_REMOVE_WATCHES = 18;
const OP_CREATE_CONTAINER = 19;
const CONTAINER_FLAGS = 4;
const OP_DELETE = 2;
const WATCHER_TYPE_DATA = 2;

export type AdapterEvent =
  | { type: 'connected'; sessionId: bigint; timeout: number }
  | { type: 'disconnected' }
  | { type: 'expired' }
  | { type: 'auth-failed' };

export interface AdapterOptions {
  connectionString: string;
  sessionTimeout: number;
  operationTimeout: number;
  reconnectDelay: number;
  auth: ZkAuth[];
  acl: ZkAclEntry[];
  /** Resume an existing session (tests use this to expire a session on purpose). */
  session?: { id: Buffer; password: Buffer };
}

/** A request waiting for its reply. */
interface InFlight {
  /** performance.now() value after which the request fails with OPERATION_TIMEOUT. */
  deadline: number;
  fail(error: ZooKeeperError): void;
  timeout(): ZooKeeperError;
}

interface PathWatch {
  listeners: Set<() => void>;
  /** Resolves with the node's data once the server watch is set, null when the node did not exist. */
  ready: Promise<Buffer | null>;
  armed: boolean;
  dispatch: () => void;
}

export class ZooKeeperClientAdapter {
  private readonly client: RawClient;
  private readonly acl: unknown[];
  private readonly events = new EventEmitter();
  /** Requests waiting for a reply, in the order they were sent. */
  private readonly inflight = new Set<InFlight>();
  private deadlineTimer: NodeJS.Timeout | undefined;
  private readonly watches = new Map<string, PathWatch>();
  private livenessTimer: NodeJS.Timeout | undefined;
  private closed = false;
  /** False once the server said it has no containers: lock directories are persistent then. */
  private containers = true;
  private connected = false;
  /** When we last received bytes from a server (ms since epoch). */
  lastHeard = 0;
  /** Watch notifications received from the server (one per fired server watch). */
  notifications = 0;

  constructor(private readonly options: AdapterOptions) {
    const clientOptions: Record<string, unknown> = {
      sessionTimeout: options.sessionTimeout,
      spinDelay: options.reconnectDelay,
      // Never re-send: a re-sent sequential create makes a duplicate node that nobody owns.
      retries: 0,
    };
    if (options.session) {
      clientOptions.sessionId = options.session.id;
      clientOptions.sessionPassword = options.session.password;
    }
    this.client = zk.createClient(options.connectionString, clientOptions);
    this.acl = options.acl.map(
      (entry) =>
        new zk.ACL(
          Array.from(entry.perms).reduce((bits, p) => bits | (PERMISSION_BITS[p] ?? 0), 0),
          new zk.Id(entry.scheme, entry.scheme === 'world' ? entry.id || 'anyone' : entry.id),
        ),
    );
    for (const { credentials } of options.auth) this.client.addAuthInfo('digest', Buffer.from(credentials));
    this.guardReplies();
    this.client.on('connected', () => this.onConnected());
    this.client.on('connectedReadOnly', () => this.onConnected());
    this.client.on('disconnected', () => {
      if (!this.connected) return;
      this.connected = false;
      this.emit({ type: 'disconnected' });
    });
    this.client.on('expired', () => {
      this.connected = false;
      this.failAll('SESSION_EXPIRED');
      this.emit({ type: 'expired' });
    });
    this.client.on('authenticationFailed', () => {
      this.connected = false;
      this.failAll('NO_AUTH');
      this.emit({ type: 'auth-failed' });
    });
  }

  onEvent(listener: (event: AdapterEvent) => void): void {
    this.events.on('event', listener);
  }

  connect(): void {
    this.client.connect();
    // The client has no read timeout: a half-open socket looks connected forever. Check that the
    // server has spoken (it answers the pings the client sends every third of the timeout).
    const period = Math.max(50, Math.floor(this.options.sessionTimeout / 6));
    this.livenessTimer = setInterval(() => this.checkLiveness(), period);
    this.livenessTimer.unref();
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

  /** `host:port` of the server this client's socket goes to (`[addr]:port` for IPv6), while connected. */
  serverAddress(): string | undefined {
    const socket = this.client.connectionManager.socket;
    if (!this.connected || !socket?.remoteAddress || !socket.remotePort) return undefined;
    const host = socket.remoteAddress.includes(':') ? `[${socket.remoteAddress}]` : socket.remoteAddress;
    return `${host}:${socket.remotePort}`;
  }

  // ---- requests ----

  create(path: string, data: Buffer, mode: ZkCreateMode): Promise<string> {
    return this.call(
      'create',
      path,
      (cb: Callback<[string]>) => this.client.create(path, data, this.acl, CREATE_MODES[mode], cb),
      ([created]) => created,
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
      await this.call(
        'create',
        path,
        (cb: Callback<[unknown]>) => {
          const header = new jute.protocol.RequestHeader();
          header.type = jute.OP_CODES.CREATE; // how the reply is parsed
          const serialize = header.serialize.bind(header);
          header.serialize = (buffer, offset) => {
            const written = serialize(buffer, offset);
            buffer.writeInt32BE(OP_CREATE_CONTAINER, offset + 4); // what the server is asked
            return written;
          };
          const payload = new jute.protocol.CreateRequest();
          payload.path = path;
          payload.data = Buffer.alloc(0);
          payload.acl = this.acl.map((entry) => (entry as { toRecord(): unknown }).toRecord());
          payload.flags = CONTAINER_FLAGS;
          this.client.connectionManager.queue(new jute.Request(header, payload), cb);
        },
        () => undefined,
      );
    } catch (error) {
      if (!(error instanceof ZooKeeperError && error.zkCode === 'UNIMPLEMENTED')) throw error;
      this.containers = false;
      await this.create(path, Buffer.alloc(0), 'persistent');
    }
  }

  remove(path: string, version = -1): Promise<void> {
    return this.call(
      'delete',
      path,
      (cb: Callback<[]>) => this.client.remove(path, version, cb),
      () => undefined,
    );
  }

  getChildren(path: string): Promise<{ children: string[]; stat: NodeStat }> {
    return this.call(
      'getChildren',
      path,
      (cb: Callback<[string[], RawStat]>) => this.client.getChildren(path, cb),
      ([children, stat]) => ({ children, stat: toStat(stat) }),
    );
  }

  getData(path: string): Promise<{ data: Buffer; stat: NodeStat }> {
    return this.call(
      'getData',
      path,
      (cb: Callback<[Buffer | null, RawStat]>) => this.client.getData(path, undefined, cb),
      ([data, stat]) => ({ data: data ?? Buffer.alloc(0), stat: toStat(stat) }),
    );
  }

  exists(path: string): Promise<NodeStat | null> {
    return this.call(
      'exists',
      path,
      (cb: Callback<[RawStat | null]>) => this.client.exists(path, cb),
      ([stat]) => (stat ? toStat(stat) : null),
    );
  }

  setData(path: string, data: Buffer, version = -1): Promise<NodeStat> {
    return this.call(
      'setData',
      path,
      (cb: Callback<[RawStat]>) => this.client.setData(path, data, version, cb),
      ([stat]) => toStat(stat),
    );
  }

  /**
   * One server watch per path, however many local waiters: the client would add a listener per
   * call and leak them. When the last local waiter cancels, the server watch is removed too.
   */
  async watch(path: string, onChange: () => void): Promise<WatchRegistration | null> {
    let entry = this.watches.get(path);
    if (!entry) {
      const created: PathWatch = {
        listeners: new Set(),
        armed: false,
        ready: Promise.resolve(null),
        dispatch: () => {
          this.notifications += 1;
          if (this.watches.get(path) === created) this.watches.delete(path);
          created.armed = false;
          for (const listener of Array.from(created.listeners)) listener();
        },
      };
      created.ready = this.call(
        'getData',
        path,
        (cb: Callback<[Buffer | null, RawStat]>) => this.client.getData(path, created.dispatch, cb),
        ([data]) => data,
      ).then(
        (data) => {
          created.armed = true;
          if (created.listeners.size === 0) this.unwatch(path, created);
          return data ?? Buffer.alloc(0);
        },
        (error: unknown) => {
          if (this.watches.get(path) === created) this.watches.delete(path);
          if (error instanceof ZooKeeperError && error.zkCode === 'NO_NODE') return null;
          throw error;
        },
      );
      this.watches.set(path, created);
      entry = created;
    }
    const watch = entry;
    watch.listeners.add(onChange);
    let data: Buffer | null;
    try {
      data = await watch.ready;
    } catch (error) {
      watch.listeners.delete(onChange);
      throw error;
    }
    if (data === null) {
      watch.listeners.delete(onChange);
      return null;
    }
    return {
      data,
      cancel: () => {
        if (!watch.listeners.delete(onChange)) return;
        if (watch.listeners.size === 0 && watch.armed) this.unwatch(path, watch);
      },
    };
  }

  /** Number of paths with a live watch registration (tests check that nothing is left). */
  watchCount(): number {
    return this.watches.size;
  }

  /**
   * Closes the session (its ephemeral nodes go at once) and waits up to `timeout` ms for the
   * server; then, or when the client is cut off, tears the socket down without waiting.
   * No reconnect loop survives this.
   */
  async close(timeout: number): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.livenessTimer);
    this.failAll('CLOSED');
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
        const timer = setTimeout(resolve, timeout);
        timer.unref();
        this.client.once('disconnected', () => {
          clearTimeout(timer);
          resolve();
        });
        this.client.close();
      });
    } else {
      this.client.close();
    }
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
    this.connected = true;
    this.lastHeard = Date.now();
    const socket = this.client.connectionManager.socket;
    socket?.on('data', () => {
      this.lastHeard = Date.now();
    });
    this.emit({ type: 'connected', sessionId: this.sessionId(), timeout: this.client.getSessionTimeout() });
  }

  /**
   * Two holes in the client's reply parsing, closed here (on the instance: the client binds these
   * methods to each new socket):
   * - it throws inside its socket handler on a reply it cannot parse (an error code it does not
   *   know, a misaligned stream), which would crash the process: drop the connection instead;
   *   pending requests fail with CONNECTION_LOSS and the client reconnects to the same session;
   * - it keeps a partly received reply across a reconnect and glues the next connection's first
   *   bytes to it: forget it when the socket closes.
   */
  private guardReplies(): void {
    const manager = this.client.connectionManager;
    const parse = manager.onSocketData.bind(manager);
    const closed = manager.onSocketClosed.bind(manager);
    manager.onSocketData = (buffer: Buffer) => {
      try {
        parse(buffer);
      } catch {
        manager.pendingBuffer = null;
        manager.socket?.destroy();
      }
    };
    manager.onSocketClosed = (hadError: boolean) => {
      manager.pendingBuffer = null;
      closed(hadError);
    };
  }

  private checkLiveness(): void {
    if (!this.connected) return;
    const silentFor = Date.now() - this.lastHeard;
    if (silentFor > (this.client.getSessionTimeout() * 2) / 3) {
      // Like the Java client's read timeout: drop the socket so the client tries the next server.
      this.client.connectionManager.socket?.destroy();
    }
  }

  private unwatch(path: string, watch: PathWatch): void {
    if (this.watches.get(path) === watch) this.watches.delete(path);
    watch.armed = false;
    const emitter = this.client.connectionManager.watcherManager.dataWatchers[path];
    emitter?.removeListener('notification', watch.dispatch);
    if (emitter && emitter.listenerCount('notification') === 0) {
      delete this.client.connectionManager.watcherManager.dataWatchers[path];
    }
    if (this.connected) this.sendRemoveWatches(path);
  }

  /**
   * removeWatches (opcode 18) is missing from the client. We queue it ourselves, fire and forget:
   * with no callback the client never looks at the reply, so a NOWATCHER (-121) reply, a code
   * the client does not know and would throw on, is harmless. The header reports DELETE to the
   * client's reply parser (a reply without a body, like removeWatches') and writes 18 on the wire.
   */
  private sendRemoveWatches(path: string): void {
    const fullPath = (this.client.connectionManager.chrootPath ?? '') + path;
    const pathBytes = Buffer.from(fullPath, 'utf8');
    const header = {
      xid: 0,
      type: OP_DELETE,
      byteLength: () => 8,
      serialize(buffer: Buffer, offset: number): number {
        buffer.writeInt32BE(header.xid, offset);
        buffer.writeInt32BE(OP_REMOVE_WATCHES, offset + 4);
        return 8;
      },
    };
    const payload = {
      byteLength: () => 8 + pathBytes.length,
      serialize(buffer: Buffer, offset: number): number {
        buffer.writeInt32BE(pathBytes.length, offset);
        pathBytes.copy(buffer, offset + 4);
        buffer.writeInt32BE(WATCHER_TYPE_DATA, offset + 4 + pathBytes.length);
        return 8 + pathBytes.length;
      },
    };
    const request = {
      header,
      payload,
      toBuffer(): Buffer {
        const size = header.byteLength() + payload.byteLength();
        const buffer = Buffer.alloc(size + 4);
        buffer.writeInt32BE(size, 0);
        header.serialize(buffer, 4);
        payload.serialize(buffer, 12);
        return buffer;
      },
    };
    this.client.connectionManager.packetQueue.push({ request, callback: null });
  }

  /**
   * Runs one request with a deadline; a late reply is ignored (its outcome is unknown to the caller).
   * Deadlines share ONE timer per connection (requests are in flight in the order they were sent,
   * all with the same timeout, so the oldest one's deadline is the next to pass): a timer per
   * request was a measurable part of an acquisition's CPU.
   */
  private call<T extends unknown[], R>(
    operation: string,
    path: string,
    send: (cb: Callback<T>) => void,
    map: (result: T) => R,
  ): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      if (this.closed) {
        reject(new ZooKeeperError('CLOSED', operation, path, 'the connection is closed'));
        return;
      }
      const request: InFlight = {
        deadline: performance.now() + this.options.operationTimeout,
        fail: (error) => {
          this.inflight.delete(request);
          reject(error);
        },
        timeout: () =>
          new ZooKeeperError(
            'OPERATION_TIMEOUT',
            operation,
            path,
            `no reply within ${this.options.operationTimeout} ms`,
          ),
      };
      this.inflight.add(request);
      this.armDeadline();
      try {
        send((error, ...result) => {
          if (!this.inflight.delete(request)) return;
          if (error) {
            reject(new ZooKeeperError(ERROR_CODES[error.getCode()] ?? 'OTHER', operation, path, error.message));
            return;
          }
          resolve(map(result));
        });
      } catch (error) {
        request.fail(new ZooKeeperError('OTHER', operation, path, (error as Error).message));
      }
    });
  }

  /** Arms the deadline timer for the oldest request in flight, unless it is armed already. */
  private armDeadline(): void {
    if (this.deadlineTimer) return;
    const oldest = this.inflight.values().next().value;
    if (!oldest) return;
    this.deadlineTimer = setTimeout(() => this.expireRequests(), Math.max(0, oldest.deadline - performance.now()));
    this.deadlineTimer.unref(); // the socket keeps the process alive while requests are in flight
  }

  /** Fails every request whose deadline has passed, then waits for the next oldest. */
  private expireRequests(): void {
    this.deadlineTimer = undefined;
    const now = performance.now();
    for (const request of this.inflight) {
      if (request.deadline > now) break; // in sending order: the rest are younger
      request.fail(request.timeout());
    }
    this.armDeadline();
  }

  /** Rejects every request still waiting for a reply: after expiry or close the client would never answer. */
  private failAll(code: ZkErrorCode): void {
    for (const request of Array.from(this.inflight))
      request.fail(new ZooKeeperError(code, 'request', '', `session ${code.toLowerCase()}`));
    clearTimeout(this.deadlineTimer);
    this.deadlineTimer = undefined;
  }
}

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
