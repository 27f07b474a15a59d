import { Inject, Injectable, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { BehaviorSubject, defer, of, type Observable } from 'rxjs';
import { ZkConnectError } from '../errors/connect.error.js';
import { NotConnectedError } from '../errors/not-connected.error.js';
import { ZooKeeperError } from '../errors/zookeeper.error.js';
import { ZK_LOCK_RESOLVED_OPTIONS } from '../zk-lock.constants.js';
import { resolveOptions, type ResolvedZkLockOptions, type ZkLockOptions } from '../zk-lock.options.js';
import { timerAt, type DeadlineTimer } from './adapter/timers.js';
import { ConnectionLog } from './connection-log.js';
import { cleartextWarnings } from './tls-options.js';
import { PRESUMED_EXPIRY, presumedLossAt, Session, SessionWaiters } from './session.js';
import { ZooKeeperClientAdapter, type AdapterEvent } from './zookeeper-client.adapter.js';
import type { NodeStat, SessionEndReason, WatchRegistration, ZkCreateMode, ZkPort, ZkSession } from './zk-port.js';

/** Where the connection is. */
export type ZkConnectionState =
  /** Not started yet (lazy connection). */
  | 'idle'
  /** Looking for a server for a new session. */
  | 'connecting'
  /** A session is established; requests flow. */
  | 'connected'
  /** Cut off; the session may still be alive on the server. Held locks are still ours, for now. */
  | 'suspended'
  /** The session is over (expired, or presumed expired after the session timeout). Its locks are lost; a new session follows. */
  | 'expired'
  /** Closed for good. */
  | 'closed';

/** One change of connection state, as `state$` emits it. */
export interface ZkConnectionEvent {
  state: ZkConnectionState;
  /** The session, as 16 hex digits, when there is one. */
  sessionId?: string;
  /** With `connected`: true when this is a new session replacing an expired one. */
  newSession?: boolean;
  /** With `expired` or `closed`: why the session ended. */
  reason?: SessionEndReason;
}

/**
 * One ZooKeeper session for the application, over node-zookeeper-client.
 *
 * Connects on module init (unless `lazyConnect`), makes a new session after the old one expires,
 * presumes the session lost when cut off for the session timeout (without waiting to hear it
 * from a server), and closes the session on shutdown so our ephemeral nodes go at once.
 */
@Injectable()
export class ZkConnectionService implements ZkPort, OnModuleInit, OnApplicationShutdown {
  readonly options: ResolvedZkLockOptions;
  private readonly log = new ConnectionLog(ZkConnectionService.name);
  private readonly events = new BehaviorSubject<ZkConnectionEvent>({ state: 'idle' });
  private adapter: ZooKeeperClientAdapter | undefined;
  private session: Session | undefined;
  private sessionCount = 0;
  private pastNotifications = 0;
  private readonly sessionWaiters = new SessionWaiters();
  /** Presumes the session lost PRESUMED_EXPIRY * T after the last answered send, connected or not. */
  private presumption: DeadlineTimer | undefined;
  private closed = false;
  /** state$ has completed (after close). */
  private finished = false;
  private closing: Promise<void> | undefined;
  private connecting: Promise<void> | undefined;

  /**
   * Connection state changes, starting with the current state. After close, a new subscriber
   * gets the last state (closed), then completion (a completed BehaviorSubject replays nothing).
   */
  readonly state$: Observable<ZkConnectionEvent> = defer(() =>
    this.finished ? of(this.events.value) : this.events.asObservable(),
  );

  /** Nest gives it the module's resolved options; by hand, raw options are resolved here. */
  constructor(@Inject(ZK_LOCK_RESOLVED_OPTIONS) options: ZkLockOptions) {
    this.options = resolveOptions(options);
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

  /**
   * Starts the connection (once) and resolves when the first session is established.
   * Rejects with {@link ZkConnectError}, naming the servers, after `connectTimeout`.
   */
  connect(): Promise<void> {
    this.connecting ??= this.firstConnect();
    return this.connecting;
  }

  /**
   * Closes the session (our ephemeral nodes go at once) and stops reconnecting. The holders are
   * told first (their signals abort before the close request leaves), so none of them still
   * believes it holds a lock when the next holder gets in. Safe to call twice (same promise).
   */
  close(): Promise<void> {
    this.closing ??= this.shutdown(new NotConnectedError('the connection was closed'));
    return this.closing;
  }

  // ---- ZkPort ----

  /**
   * The current session, when there is one. Asked after its presumed loss is due, it ends the
   * session now (its holders told) and answers none, even if the presumption timer has not run
   * yet (an event loop busy past the deadline): a grant made without a round trip (a coalesced
   * hand-off, a reentrant acquisition) must not start after the server may have let others in.
   */
  currentSession(): ZkSession | undefined {
    const { session, adapter } = this;
    if (session && adapter && performance.now() >= presumedLossAt(session, adapter.lastAcknowledgedSend)) {
      this.presumeLost();
      return undefined;
    }
    return session;
  }

  waitForSession(signal?: AbortSignal): Promise<ZkSession> {
    const current = this.currentSession();
    if (current) return Promise.resolve(current);
    if (this.closed) return Promise.reject(new NotConnectedError('the connection is closed'));
    if (!this.adapter && !this.connecting) void this.connect().catch(() => undefined);
    return this.sessionWaiters.wait(signal);
  }

  create(path: string, data: Buffer, mode: ZkCreateMode): Promise<string> {
    return this.adapter ? this.adapter.create(path, data, mode) : this.rejectNotConnected('create', path);
  }

  /** Creates `path` and any missing parents as persistent nodes (e.g. a chroot); existing nodes are fine. */
  ensurePath(path: string): Promise<void> {
    return this.ensure(path, (adapter, node) => adapter.create(node, Buffer.alloc(0), 'persistent'));
  }

  /**
   * Creates a lock directory and any missing parents as CONTAINER nodes: the server deletes them
   * once they have had children and have none left (persistent on servers without containers).
   */
  ensureLockDirectory(path: string): Promise<void> {
    return this.ensure(path, (adapter, node) => adapter.createContainer(node));
  }

  private async ensure(
    path: string,
    create: (adapter: ZooKeeperClientAdapter, node: string) => Promise<unknown>,
  ): Promise<void> {
    const adapter = this.requireAdapter('create', path);
    let current = '';
    for (const segment of path.slice(1).split('/')) {
      current += `/${segment}`;
      try {
        await create(adapter, current);
      } catch (error) {
        if (!ZooKeeperError.is(error, 'NODE_EXISTS')) throw error;
      }
    }
  }

  remove(path: string, version = -1): Promise<void> {
    return this.adapter ? this.adapter.remove(path, version) : this.rejectNotConnected('delete', path);
  }

  getChildren(path: string): Promise<{ children: string[]; stat: NodeStat }> {
    return this.adapter ? this.adapter.getChildren(path) : this.rejectNotConnected('getChildren', path);
  }

  getData(path: string): Promise<{ data: Buffer; stat: NodeStat }> {
    return this.adapter ? this.adapter.getData(path) : this.rejectNotConnected('getData', path);
  }

  exists(path: string): Promise<NodeStat | null> {
    return this.adapter ? this.adapter.exists(path) : this.rejectNotConnected('exists', path);
  }

  setData(path: string, data: Buffer, version = -1): Promise<NodeStat> {
    return this.adapter ? this.adapter.setData(path, data, version) : this.rejectNotConnected('setData', path);
  }

  watch(path: string, onChange: () => void): Promise<WatchRegistration | null> {
    return this.adapter ? this.adapter.watch(path, onChange) : this.rejectNotConnected('watch', path);
  }

  /**
   * Counters for tests and the benchmark: live watch registrations of this process, and watch
   * notifications received over all sessions so far (the herd-effect measure).
   */
  stats(): { watches: number; notifications: number } {
    return {
      watches: this.adapter?.watchCount() ?? 0,
      notifications: this.pastNotifications + (this.adapter?.notifications ?? 0),
    };
  }

  /**
   * While `connected`: encrypted or not (`tls`), the TLS protocol, the certificates' subjects (never
   * keys; no request). Optional in the type only: the in-process stand-in has no wire.
   */
  transport(): ReturnType<ZooKeeperClientAdapter['transport']> {
    return this.state === 'connected' ? this.adapter?.transport() : undefined;
  }

  /**
   * `host:port` of the ZooKeeper server the connection goes to, while `connected` (health checks
   * report it). With a proxy or load balancer in between, its address. Makes no request.
   */
  serverAddress(): string | undefined {
    return this.state === 'connected' ? this.adapter?.serverAddress() : undefined;
  }

  /** Id and password of the current session: another client can resume it (tests use this to expire it). */
  sessionCredentials(): { id: Buffer; password: Buffer } | undefined {
    return this.session ? this.adapter?.sessionCredentials() : undefined;
  }

  // ---- internals ----

  /** Ends the session (holders told), fails the waiters with `reason`, then closes the client. */
  private async shutdown(reason: Error): Promise<void> {
    this.closed = true;
    this.presumption?.cancel();
    this.presumption = undefined;
    const adapter = this.adapter;
    this.adapter = undefined;
    this.endSession('closed');
    this.sessionWaiters.rejectAll(reason);
    this.pastNotifications += adapter?.notifications ?? 0;
    await adapter?.close(Math.min(this.options.connectTimeout, 5_000));
    this.events.next({ state: 'closed', reason: 'closed' });
    this.finished = true;
    this.events.complete();
  }

  private async firstConnect(): Promise<void> {
    const { connectTimeout, connectionString } = this.options;
    this.log.warnOnce(cleartextWarnings(this.options)); // what would cross the network in clear
    this.startAdapter();
    let timer: DeadlineTimer | undefined;
    const deadline = new AbortController();
    try {
      await Promise.race([
        this.waitForSession(deadline.signal),
        new Promise<never>((_, reject) => {
          const fail = () =>
            reject(new ZkConnectError(connectionString, connectTimeout, this.adapter?.connectFailure()));
          timer = timerAt(performance.now() + connectTimeout, fail, false);
        }),
      ]);
    } catch (error) {
      deadline.abort();
      if (this.options.lazyConnect && !this.closed) {
        // A lazy connection fails this use only: the waiters hear why, the next use tries again.
        // All of it before the first await: a use arriving meanwhile starts a new attempt, whose
        // waiters must not hear this attempt's error.
        const adapter = this.adapter;
        this.adapter = undefined;
        this.connecting = undefined;
        this.sessionWaiters.rejectAll(error as Error);
        this.events.next({ state: 'idle' });
        await adapter?.close(0);
      } else {
        await this.close();
      }
      throw error;
    } finally {
      timer?.cancel();
    }
  }

  private startAdapter(): void {
    if (this.closed) return;
    const adapter = new ZooKeeperClientAdapter(this.options);
    this.adapter = adapter;
    adapter.onEvent((event) => {
      if (this.adapter === adapter) this.onAdapterEvent(adapter, event);
    });
    this.events.next({ state: 'connecting' });
    adapter.connect();
  }

  private onAdapterEvent(adapter: ZooKeeperClientAdapter, event: AdapterEvent): void {
    switch (event.type) {
      case 'connected': {
        const sessionId = event.sessionId.toString(16).padStart(16, '0');
        if (this.session?.id === event.sessionId) {
          this.log.recovered(`Reconnected to ZooKeeper, session 0x${sessionId} survives: held locks are still ours`);
          this.events.next({ state: 'connected', sessionId, newSession: false });
          return;
        }
        this.endSession('session-expired');
        const session = new Session(event.sessionId, event.timeout);
        this.session = session;
        this.sessionCount += 1;
        this.log.recovered(
          this.sessionCount > 1
            ? `New ZooKeeper session 0x${sessionId} at ${this.options.connectionString}: locks can be taken again`
            : `Connected to ZooKeeper at ${this.options.connectionString}, session 0x${sessionId}`,
        );
        this.events.next({ state: 'connected', sessionId, newSession: this.sessionCount > 1 });
        this.armPresumption(adapter, session);
        this.sessionWaiters.resolveAll(session);
        return;
      }
      case 'disconnected': {
        const session = this.session;
        if (!session) return;
        const left = presumedLossAt(session, adapter.lastAcknowledgedSend) - performance.now();
        this.log.problem(
          `Disconnected from ZooKeeper; held locks are presumed lost in ${Math.max(0, Math.round(left))} ms unless reconnected`,
        );
        this.events.next({ state: 'suspended' });
        return;
      }
      case 'refused':
      case 'tls-failed':
        this.log.retrying(event, this.sessionCount === 0 ? this.options.connectTimeout : undefined);
        return;
      case 'expired':
        this.log.problem('ZooKeeper session expired: its locks are lost; starting a new session');
        this.replaceSession('session-expired');
        return;
      case 'auth-failed':
        this.log.error('ZooKeeper authentication failed: check the auth option');
        this.closing ??= this.shutdown(new NotConnectedError('ZooKeeper authentication failed: check the auth option'));
        return;
    }
  }

  /**
   * Presumes the session lost (without waiting to hear it from a server) PRESUMED_EXPIRY * T after
   * the latest answered send, connected or not: answers that stop coming count, not the socket's
   * state. Re-armed lazily: each firing looks at the latest answered send.
   */
  private armPresumption(adapter: ZooKeeperClientAdapter, session: Session): void {
    this.presumption?.cancel();
    const deadline = presumedLossAt(session, adapter.lastAcknowledgedSend);
    this.presumption = timerAt(deadline, () => {
      this.presumption = undefined;
      if (this.adapter !== adapter || this.session !== session) return;
      if (performance.now() < presumedLossAt(session, adapter.lastAcknowledgedSend)) {
        this.armPresumption(adapter, session);
        return;
      }
      this.presumeLost();
    });
  }

  private presumeLost(): void {
    this.log.problem(
      `No answer from ZooKeeper for ${PRESUMED_EXPIRY * 100}% of the session timeout: presuming the session expired`,
    );
    this.replaceSession('connection-lost');
  }

  /** The session is over: tell its users, throw the client away, start a fresh one. */
  private replaceSession(reason: SessionEndReason): void {
    this.presumption?.cancel();
    this.presumption = undefined;
    this.endSession(reason);
    const old = this.adapter;
    this.adapter = undefined;
    this.pastNotifications += old?.notifications ?? 0;
    void old?.close(0);
    this.startAdapter();
  }

  private endSession(reason: SessionEndReason): void {
    const session = this.session;
    if (!session) return;
    this.session = undefined;
    if (reason !== 'closed') this.events.next({ state: 'expired', reason });
    session.end(reason);
  }

  /** A request without a client is rejected, not thrown, like any failed request. (Requests are not async functions: fewer ticks per request.) */
  private rejectNotConnected(operation: string, path: string): Promise<never> {
    return Promise.reject(this.notConnected(operation, path));
  }

  private requireAdapter(operation: string, path: string): ZooKeeperClientAdapter {
    if (this.adapter) return this.adapter;
    throw this.notConnected(operation, path);
  }

  private notConnected(operation: string, path: string): NotConnectedError {
    return new NotConnectedError(
      this.closed
        ? `cannot ${operation} ${path}: the connection is closed`
        : `cannot ${operation} ${path}: not connected yet`,
    );
  }
}
