import { Injectable } from '@nestjs/common';
import { HealthIndicatorService, type HealthIndicatorResult } from '@nestjs/terminus';
import { ZkConnectionService, type ZkConnectionState } from '../connection/zk-connection.service.js';
import type { ZkTransport } from '../connection/zk-port.js';

/** What {@link ZkHealthIndicator} reports under its key, next to `status`. Never credentials. */
export type ZkHealthDetails = {
  /** The connection state ({@link ZkConnectionState}); `up` only when `connected`. */
  state: ZkConnectionState;
  /** The session, as 16 hex digits, while there is one (`connected`, and `suspended`: it may survive). */
  sessionId?: string;
  /** The session timeout the server granted, in ms, while there is a session. */
  sessionTimeout?: number;
  /** `host:port` of the server the connection goes to, when `connected` and the socket knows it. */
  server?: string;
  /** `true` when `connected` over TLS (the `tls` option); absent over plaintext. */
  encrypted?: true;
  /**
   * When `connected` over TLS: the protocol and cipher, the server certificate's subject, issuer
   * and expiry, and the session's x509 identity when a client certificate was sent. Never a key.
   */
  tls?: Omit<ZkTransport, 'encrypted'>;
  /** With `down`: why, in words. */
  reason?: string;
};

/** Why each state but `connected` is down. */
const DOWN_REASONS: Record<Exclude<ZkConnectionState, 'connected'>, string> = {
  idle: 'idle: not connected yet (the connection starts at module init)',
  connecting: 'connecting: looking for a server for a new session',
  suspended:
    'suspended: cut off; the session and its locks survive only if a server answers within the session timeout',
  expired: 'expired: the session is over and its locks are lost; a new session is being made',
  closed: 'closed: the connection is closed for good (application shutdown, or authentication failed)',
};

/**
 * A `@nestjs/terminus` health indicator for the ZooKeeper connection of {@link ZkConnectionService}:
 * `up` while the connection has a live session, `down` otherwise, with {@link ZkHealthDetails}.
 * Import it from `zk-lock/health` (the main entry never loads `@nestjs/terminus`) and provide it
 * in a module that imports `TerminusModule`; `ZkConnectionService` comes from `ZkLockModule`
 * (global by default).
 *
 * A check reads the connection's state and makes no ZooKeeper request, and never connects (with
 * `lazyConnect` it reports `down` until something has used ZooKeeper). That is honest because the
 * state is kept current without us: the client pings every third of the session timeout, and a
 * connection that has heard nothing from its server for two thirds of it is dropped, which makes
 * the state `suspended`. So a partitioned server shows as `down` within about 5/6 of the session
 * timeout, a refused or closed connection at once. A request per check would cost a round trip
 * and add load on the ensemble for every probe, and would prove no more than the pings do.
 *
 * @example
 * \@Controller('health')
 * class HealthController {
 *   constructor(private readonly health: HealthCheckService, private readonly zk: ZkHealthIndicator) {}
 *   \@Get() \@HealthCheck()
 *   check() { return this.health.check([() => this.zk.isHealthy()]); }
 * }
 * \@Module({ imports: [TerminusModule], controllers: [HealthController], providers: [ZkHealthIndicator] })
 * class HealthModule {}
 */
@Injectable()
export class ZkHealthIndicator {
  constructor(
    private readonly health: HealthIndicatorService,
    private readonly connection: ZkConnectionService,
  ) {}

  /** `up` when the connection has a live session, else `down`; both with {@link ZkHealthDetails} under `key`. */
  isHealthy<const Key extends string = 'zookeeper'>(key: Key = 'zookeeper' as Key): HealthIndicatorResult<Key> {
    const check = this.health.check(key);
    const state = this.connection.state;
    const session = this.connection.currentSession();
    const details: ZkHealthDetails = { state };
    if (session) {
      details.sessionId = session.id.toString(16).padStart(16, '0');
      details.sessionTimeout = session.timeout;
    }
    if (state === 'connected' && session) {
      const server = this.connection.serverAddress();
      if (server) details.server = server;
      const transport = this.connection.transport();
      if (transport?.encrypted) {
        const { encrypted: _, ...tls } = transport;
        details.encrypted = true;
        details.tls = tls;
      }
      return check.up(details);
    }
    if (state === 'connected') details.reason = 'connected, but no session';
    else if (state === 'idle' && this.connection.options.lazyConnect)
      details.reason = 'lazy connect: not connected yet (connects on first use)';
    else details.reason = DOWN_REASONS[state];
    return check.down(details);
  }
}
