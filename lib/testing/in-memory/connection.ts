/**
 * The client side of the in-process stand-in: what `ZkConnectionService` is over a real server,
 * over an {@link InMemoryZooKeeper}. It has every public member of `ZkConnectionService` (the
 * compiler checks it), with the same states, events, session handling (a new session after
 * expiry; presumed loss at 90% of the session timeout without an answer) and request semantics,
 * so `LockService`, `@DistributedLock`, the health indicator and the jobs run on it unchanged.
 * It logs nothing: its `state$` tells what happens.
 */
import { BehaviorSubject, defer, of, type Observable } from 'rxjs';
import type {
  ZkConnectionEvent,
  ZkConnectionService,
  ZkConnectionState,
} from '../../connection/zk-connection.service.js';
import { timerAt, type DeadlineTimer } from '../../connection/adapter/timers.js';
import { presumedLossAt, Session, SessionWaiters } from '../../connection/session.js';
import type {
  NodeStat,
  SessionEndReason,
  WatchRegistration,
  ZkCreateMode,
  ZkSession,
} from '../../connection/zk-port.js';
import { ZkConnectError } from '../../errors/connect.error.js';
import { NotConnectedError } from '../../errors/not-connected.error.js';
import { ZooKeeperError } from '../../errors/zookeeper.error.js';
import { resolveOptions, type ResolvedZkLockOptions, type ZkLockOptions } from '../../zk-lock.options.js';
import { Link } from './link.js';
import type { InMemoryZooKeeper, Peer, ServerCore } from './server.js';

/** The public members of a class (what code outside it can use). */
type PublicMembers<T> = { [K in keyof T]: T[K] };

/**
 * A connection to an {@link InMemoryZooKeeper}: one session at a time, like `ZkConnectionService`.
 * Get one from `InMemoryZooKeeper.connection()` / `connect()`, or from `ZkLockTestingModule`.
 */
export class InMemoryZkConnection implements PublicMembers<ZkConnectionService> {
  readonly options: ResolvedZkLockOptions;
  /** How the server's network sees this connection (internal). */
  readonly peer: Peer = { reachabilityChanged: () => this.link?.update() };
  private readonly events = new BehaviorSubject<ZkConnectionEvent>({ state: 'idle' });
  private link: Link | undefined;
  private session: Session | undefined;
  private sessionCount = 0;
  private pastNotifications = 0;
  private readonly sessionWaiters = new SessionWaiters();
  private presumption: DeadlineTimer | undefined;
  private closed = false;
  private finished = false;
  private closing: Promise<void> | undefined;
  private connecting: Promise<void> | undefined;

  /** Connection state changes, starting with the current state (as `ZkConnectionService.state$`). */
  readonly state$: Observable<ZkConnectionEvent> = defer(() =>
    this.finished ? of(this.events.value) : this.events.asObservable(),
  );

  constructor(
    /** The stand-in this connection talks to. */
    readonly zooKeeper: InMemoryZooKeeper,
    private readonly core: ServerCore,
    options: ZkLockOptions,
  ) {
    this.options = resolveOptions(options);
    core.join(this.peer);
  }

  /**
   * This connection typed as the `ZkConnectionService` that `LockService` takes:
   * `new LockService(connection.asConnectionService())`.
   */
  asConnectionService(): ZkConnectionService {
    return this as unknown as ZkConnectionService;
  }

  get state(): ZkConnectionState {
    return this.events.value.state;
  }

  async onModuleInit(): Promise<void> {
    if (!this.options.lazyConnect) await this.connect();
  }

  async onApplicationShutdown(): Promise<void> {
    await this.close();
  }

  connect(): Promise<void> {
    this.connecting ??= this.firstConnect();
    return this.connecting;
  }

  close(): Promise<void> {
    this.closing ??= this.shutdown(new NotConnectedError('the connection was closed'));
    return this.closing;
  }

  // ---- ZkPort ----

  currentSession(): ZkSession | undefined {
    const { session, link } = this;
    if (session && link && !link.isConnected && performance.now() >= presumedLossAt(session, link.disconnectedAt)) {
      this.presumeLost();
      return undefined;
    }
    return session;
  }

  waitForSession(signal?: AbortSignal): Promise<ZkSession> {
    const current = this.currentSession();
    if (current) return Promise.resolve(current);
    if (this.closed) return Promise.reject(new NotConnectedError('the connection is closed'));
    if (!this.link && !this.connecting) void this.connect().catch(() => undefined);
    return this.sessionWaiters.wait(signal);
  }

  create(path: string, data: Buffer, mode: ZkCreateMode): Promise<string> {
    return this.request('create', path, (core, serverPath, sessionId) =>
      this.clientPath(core.write(() => core.tree.create(serverPath, data, mode, sessionId)).path),
    );
  }

  ensurePath(path: string): Promise<void> {
    return this.ensure(path, 'persistent');
  }

  ensureLockDirectory(path: string): Promise<void> {
    return this.ensure(path, 'container');
  }

  remove(path: string, version = -1): Promise<void> {
    return this.request('delete', path, (core, serverPath) => {
      core.write(() => ({ change: core.tree.remove(serverPath, version) }));
    });
  }

  getChildren(path: string): Promise<{ children: string[]; stat: NodeStat }> {
    return this.request('getChildren', path, (core, serverPath) => core.tree.getChildren(serverPath));
  }

  getData(path: string): Promise<{ data: Buffer; stat: NodeStat }> {
    return this.request('getData', path, (core, serverPath) => core.tree.getData(serverPath));
  }

  exists(path: string): Promise<NodeStat | null> {
    return this.request('exists', path, (core, serverPath) => core.tree.exists(serverPath));
  }

  setData(path: string, data: Buffer, version = -1): Promise<NodeStat> {
    return this.request(
      'setData',
      path,
      (core, serverPath) => core.write(() => core.tree.setData(serverPath, data, version)).stat,
    );
  }

  watch(path: string, onChange: () => void): Promise<WatchRegistration | null> {
    return this.link ? this.link.watch(path, onChange) : Promise.reject(this.notConnected('watch', path));
  }

  stats(): { watches: number; notifications: number } {
    return {
      watches: this.link?.watchCount ?? 0,
      notifications: this.pastNotifications + (this.link?.notifications ?? 0),
    };
  }

  /** The stand-in has no wire: never encrypted. */
  transport(): undefined {
    return undefined;
  }

  serverAddress(): string | undefined {
    if (this.state !== 'connected') return undefined;
    const [first] = this.options.servers;
    return `${first.host}:${first.port}`;
  }

  sessionCredentials(): { id: Buffer; password: Buffer } | undefined {
    const { link } = this;
    if (!this.session || link?.sessionId === undefined || !link.password) return undefined;
    const id = Buffer.alloc(8);
    id.writeBigUInt64BE(link.sessionId);
    return { id, password: Buffer.from(link.password) };
  }

  // ---- internals (the same state machine as ZkConnectionService) ----

  private request<T>(
    operation: string,
    path: string,
    apply: (core: ServerCore, serverPath: string, sessionId: bigint) => T,
  ): Promise<T> {
    const { link } = this;
    if (!link) return Promise.reject(this.notConnected(operation, path));
    return link.run(operation, path, (serverPath, sessionId) => apply(this.core, serverPath, sessionId));
  }

  private async ensure(path: string, mode: 'persistent' | 'container'): Promise<void> {
    if (!this.link) throw this.notConnected('create', path);
    let current = '';
    for (const segment of path.slice(1).split('/')) {
      current += `/${segment}`;
      const node = current;
      try {
        await this.request('create', node, (core, serverPath, sessionId) =>
          core.write(() => core.tree.create(serverPath, Buffer.alloc(0), mode, sessionId)),
        );
      } catch (error) {
        if (!ZooKeeperError.is(error, 'NODE_EXISTS')) throw error;
      }
    }
  }

  private clientPath(serverPath: string): string {
    const chroot = this.options.chroot ?? '';
    return chroot ? serverPath.slice(chroot.length) || '/' : serverPath;
  }

  private async shutdown(reason: Error): Promise<void> {
    this.closed = true;
    this.presumption?.cancel();
    this.presumption = undefined;
    const link = this.link;
    this.link = undefined;
    this.endSession('closed');
    this.sessionWaiters.rejectAll(reason);
    this.pastNotifications += link?.notifications ?? 0;
    link?.close();
    this.core.leave(this.peer);
    await Promise.resolve();
    this.events.next({ state: 'closed', reason: 'closed' });
    this.finished = true;
    this.events.complete();
  }

  private async firstConnect(): Promise<void> {
    const { connectTimeout, connectionString } = this.options;
    this.startLink();
    let timer: DeadlineTimer | undefined;
    const deadline = new AbortController();
    try {
      await Promise.race([
        this.waitForSession(deadline.signal),
        new Promise<never>((_, reject) => {
          const error = new ZkConnectError(connectionString, connectTimeout, 'the in-memory server is disconnected');
          timer = timerAt(performance.now() + connectTimeout, () => reject(error), false);
        }),
      ]);
    } catch (error) {
      deadline.abort();
      if (this.options.lazyConnect && !this.closed) {
        const link = this.link;
        this.link = undefined;
        this.connecting = undefined;
        this.sessionWaiters.rejectAll(error as Error);
        this.events.next({ state: 'idle' });
        link?.close();
      } else {
        await this.close();
      }
      throw error;
    } finally {
      timer?.cancel();
    }
  }

  private startLink(): void {
    if (this.closed) return;
    const { sessionTimeout, operationTimeout, chroot } = this.options;
    const link: Link = new Link(
      this.core,
      this.peer,
      { sessionTimeout, operationTimeout, chroot: chroot ?? '' },
      {
        connected: (from, sessionId, timeout) => {
          if (this.link === from) this.onConnected(sessionId, timeout);
        },
        disconnected: (from) => {
          if (this.link === from) this.onDisconnected(from);
        },
        expired: (from) => {
          if (this.link !== from) return;
          this.replaceSession('session-expired');
        },
      },
    );
    this.link = link;
    this.events.next({ state: 'connecting' });
    queueMicrotask(() => link.update()); // (the network answers later, never inside the caller)
  }

  private onConnected(sessionId: bigint, timeout: number): void {
    const hex = sessionId.toString(16).padStart(16, '0');
    this.presumption?.cancel();
    this.presumption = undefined;
    if (this.session?.id === sessionId) {
      this.events.next({ state: 'connected', sessionId: hex, newSession: false });
      return;
    }
    this.endSession('session-expired');
    const session = new Session(sessionId, timeout);
    this.session = session;
    this.sessionCount += 1;
    this.events.next({ state: 'connected', sessionId: hex, newSession: this.sessionCount > 1 });
    this.sessionWaiters.resolveAll(session);
  }

  private onDisconnected(link: Link): void {
    const session = this.session;
    if (!session) return;
    this.events.next({ state: 'suspended' });
    this.presumption?.cancel();
    this.presumption = timerAt(presumedLossAt(session, link.disconnectedAt), () => {
      this.presumption = undefined;
      if (this.link === link && this.session === session && !link.isConnected) this.presumeLost();
    });
  }

  private presumeLost(): void {
    this.replaceSession('connection-lost');
  }

  private replaceSession(reason: SessionEndReason): void {
    this.presumption?.cancel();
    this.presumption = undefined;
    this.endSession(reason);
    const old = this.link;
    this.link = undefined;
    this.pastNotifications += old?.notifications ?? 0;
    old?.close();
    this.startLink();
  }

  private endSession(reason: SessionEndReason): void {
    const session = this.session;
    if (!session) return;
    this.session = undefined;
    if (reason !== 'closed') this.events.next({ state: 'expired', reason });
    session.end(reason);
  }

  private notConnected(operation: string, path: string): NotConnectedError {
    return new NotConnectedError(
      this.closed
        ? `cannot ${operation} ${path}: the connection is closed`
        : `cannot ${operation} ${path}: not connected yet`,
    );
  }
}
