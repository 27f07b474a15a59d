/**
 * One client session of the in-process stand-in, as node-zookeeper-client plus the adapter are
 * one for the real server: it opens (or resumes) its session when the network lets it, runs the
 * requests (waiting while cut off, each up to `operationTimeout`), and keeps one server watch per
 * path with local listener sets, exactly as lib/connection/adapter/watches.ts does. A link lives
 * for at most one session; the connection makes a new one after the session ended.
 */
import { ZooKeeperError, type ZkErrorCode } from '../../errors/zookeeper.error.js';
import type { WatchRegistration } from '../../connection/zk-port.js';
import type { Endpoint, Peer, ServerCore } from './server.js';
import { TreeError } from './tree.js';

/** What a link tells its connection. */
export interface LinkEvents {
  connected(link: Link, sessionId: bigint, timeout: number): void;
  disconnected(link: Link): void;
  expired(link: Link): void;
}

export interface LinkOptions {
  sessionTimeout: number;
  operationTimeout: number;
  /** Prefix of every server path (the connection string's chroot), or ''. */
  chroot: string;
}

interface Parked {
  operation: string;
  path: string;
  run(): void;
  fail(code: ZkErrorCode): void;
}

interface LocalWatch {
  listeners: Set<() => void>;
  ready: Promise<Buffer | null>;
  armed: boolean;
}

export class Link implements Endpoint {
  sessionId: bigint | undefined;
  password: Buffer | undefined;
  /** performance.now() when it was cut off (while it is). */
  disconnectedAt = 0;
  /** Watch notifications received (one per fired server watch). */
  notifications = 0;
  private connected = false;
  private closed = false;
  private readonly parked = new Set<Parked>();
  private readonly watches = new Map<string, LocalWatch>();

  constructor(
    private readonly core: ServerCore,
    private readonly peer: Peer,
    private readonly options: LinkOptions,
    private readonly events: LinkEvents,
  ) {}

  get isConnected(): boolean {
    return this.connected;
  }

  /** Gets on the server (a new session, or back on ours) or off it, as the network now allows. */
  update(): void {
    if (this.closed) return;
    const reachable = this.core.reachable(this.peer);
    if (this.connected) {
      if (reachable) return;
      this.connected = false;
      this.disconnectedAt = performance.now();
      this.core.detach(this.sessionId!);
      this.events.disconnected(this);
      return;
    }
    if (!reachable) return;
    if (this.sessionId === undefined) {
      const { id, password } = this.core.openSession(this.peer, this.options.sessionTimeout, this);
      this.sessionId = id;
      this.password = password;
    } else if (!this.core.resumeSession(this.sessionId, this)) {
      this.expired();
      return;
    }
    this.connected = true;
    this.events.connected(this, this.sessionId, this.options.sessionTimeout);
    for (const parked of Array.from(this.parked)) parked.run();
  }

  /** Endpoint: the server says the session is over. */
  expired(): void {
    if (this.closed) return;
    this.connected = false;
    this.failAll('SESSION_EXPIRED');
    this.events.expired(this);
  }

  /** Endpoint: a data watch of ours fired (`path` on the server). */
  notify(path: string): void {
    if (this.closed) return;
    const local = this.options.chroot ? path.slice(this.options.chroot.length) || '/' : path;
    const watch = this.watches.get(local);
    if (!watch) return; // taken back meanwhile
    this.notifications += 1;
    this.watches.delete(local);
    watch.armed = false;
    for (const listener of Array.from(watch.listeners)) listener();
  }

  /** Closes the session on the server if it can reach it (else the server expires it later); fails what waits. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.connected && this.sessionId !== undefined) this.core.closeSession(this.sessionId);
    this.connected = false;
    this.failAll('CLOSED');
    this.watches.clear();
  }

  /** One request: now when connected, else when (re)connected, failing at `operationTimeout`. */
  run<T>(operation: string, path: string, apply: (serverPath: string, sessionId: bigint) => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const attempt = () => {
        try {
          resolve(apply(this.serverPath(path), this.sessionId!));
        } catch (error) {
          reject(
            error instanceof TreeError
              ? new ZooKeeperError(error.zkCode, operation, path, error.detail)
              : new ZooKeeperError('OTHER', operation, path, (error as Error).message),
          );
        }
      };
      if (this.closed) {
        reject(new ZooKeeperError('CLOSED', operation, path, 'the connection is closed'));
        return;
      }
      if (this.connected) {
        attempt();
        return;
      }
      const timer = setTimeout(() => parked.fail('OPERATION_TIMEOUT'), this.options.operationTimeout);
      timer.unref();
      const parked: Parked = {
        operation,
        path,
        run: () => {
          clearTimeout(timer);
          this.parked.delete(parked);
          attempt();
        },
        fail: (code) => {
          clearTimeout(timer);
          this.parked.delete(parked);
          reject(new ZooKeeperError(code, operation, path, `session ${code.toLowerCase().replaceAll('_', ' ')}`));
        },
      };
      this.parked.add(parked);
    });
  }

  /** The port's watch: one server watch per path, local listener sets (see the file comment). */
  async watch(path: string, onChange: () => void): Promise<WatchRegistration | null> {
    const watch = this.watches.get(path) ?? this.startWatch(path);
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

  /** Paths with a live watch registration. */
  get watchCount(): number {
    return this.watches.size;
  }

  private startWatch(path: string): LocalWatch {
    const created: LocalWatch = { listeners: new Set(), armed: false, ready: Promise.resolve(null) };
    this.watches.set(path, created);
    created.ready = this.run('getData', path, (serverPath, sessionId) =>
      this.core.watchData(sessionId, serverPath),
    ).then(
      (data) => {
        if (data === null) {
          if (this.watches.get(path) === created) this.watches.delete(path);
          return null;
        }
        created.armed = true;
        if (created.listeners.size === 0) this.unwatch(path, created);
        return data;
      },
      (error: unknown) => {
        if (this.watches.get(path) === created) this.watches.delete(path);
        throw error;
      },
    );
    return created;
  }

  private unwatch(path: string, watch: LocalWatch): void {
    if (this.watches.get(path) === watch) this.watches.delete(path);
    watch.armed = false;
    if (this.sessionId !== undefined) this.core.removeWatch(this.sessionId, this.serverPath(path));
  }

  /** The path on the server: behind the chroot, if any. */
  private serverPath(path: string): string {
    const { chroot } = this.options;
    return chroot && path === '/' ? chroot : chroot + path;
  }

  private failAll(code: ZkErrorCode): void {
    for (const parked of Array.from(this.parked)) parked.fail(code);
  }
}
