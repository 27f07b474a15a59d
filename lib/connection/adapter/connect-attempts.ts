/**
 * How the client's connection attempts end while there is no session. node-zookeeper-client
 * swallows socket errors (a refused connection is only a close, then the next server), so the
 * adapter could only say "no server answered"; this sees which server each attempt went to and
 * how it ended, to tell a refused connection (nothing listens) from a server that did not answer,
 * and a TLS failure (a certificate that does not verify, a refused client certificate, a port
 * that speaks the other protocol) in words that name the fix (see ./tls.ts).
 */
import type { X509Certificate } from 'node:crypto';
import type { RawConnectionManager } from './raw-client.js';
import { describeTlsError, speaksTls } from './tls.js';

/** The outcome of an attempt whose connection was refused (ECONNREFUSED: nothing listens there). */
export const REFUSED = 'refused';
/** An attempt in progress this long (ms) counts as "no answer", whatever the earlier one said. */
const SILENCE_MS = 1_000;
/** Outcomes that are TLS failures start with this. */
export const TLS_FAILURE = 'TLS: ';
/** How a plaintext attempt ended when the server closed it after our connect request. */
const CLOSED = 'closed the connection without a session';
/** How such an attempt ended when the server speaks TLS on that port. */
const SPEAKS_TLS = `${TLS_FAILURE}the server speaks TLS only on this port (a secureClientPort) and closed our plaintext connection; set the tls option`;
/** How long the check whether such a server speaks TLS may take (ms). */
const PROBE_MS = 2_000;

interface ServerAddress {
  host: string;
  port: number | string;
}
/** The connection manager's parts that show its attempts (used only here). */
type AttemptHooks = RawConnectionManager & {
  servers: ServerAddress[];
  findNextServer(callback: (server: ServerAddress) => void): void;
  onSocketError(error: NodeJS.ErrnoException): void;
  onSocketConnectTimeout(): void;
};

/** Told of what a spell without a session looks like, once per spell each. */
export interface AttemptReports {
  /** Every server refused (nothing listens). */
  refused(servers: string[]): void;
  /** Every server failed with a TLS failure; `failure` says how each did. */
  tlsFailed(failure: string): void;
}

/** The TLS side of the attempt in progress: whether it sent a client certificate, and which. */
interface AttemptTls {
  own?: X509Certificate;
  sentCertificate: boolean;
}

export class ConnectAttempts {
  /** While there is no session: how the latest attempt at each server ended (`host:port` -> outcome). */
  readonly outcomes = new Map<string, string>();
  /** The server being tried, and how that attempt ended (its first outcome counts: an error is followed by a close). */
  private attempt:
    | { server: string; address: ServerAddress; since: number; outcome?: string; sent?: boolean; tls?: AttemptTls }
    | undefined;
  /** The reports made in this spell without a session. */
  private readonly said = new Set<keyof AttemptReports>();
  /** A session was established once: a plaintext port does not turn into a TLS one, no more probes. */
  private hadSession = false;
  /** Servers asked in this spell whether they speak TLS: the answer (undefined while it comes). */
  private readonly probed = new Map<string, boolean | undefined>();
  private readonly manager: AttemptHooks;

  /**
   * @param ignore true while attempts do not matter (connected, or closed)
   * @param reports told once per spell without a session when every server refused, or failed TLS
   * @param tls the connection uses TLS (else a server that closes our connections is asked whether it speaks TLS)
   */
  constructor(
    manager: RawConnectionManager,
    private readonly ignore: () => boolean,
    private readonly reports: AttemptReports,
    private readonly tls: boolean,
  ) {
    this.manager = manager as AttemptHooks;
    this.hook(this.manager);
  }

  /** The servers of the connection string, as `host:port`, sorted (the client shuffles them). */
  private servers(): string[] {
    return [...new Set(this.manager.servers.map(serverName))].toSorted((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  }

  /**
   * Why there is no session: "refused by every server: nothing listens at ...", or how the latest
   * attempt at each server ended (`refused`, `no answer` (also the one in progress), `host not
   * found (ENOTFOUND)`, `not tried yet`, ...), or "no server answered" before any attempt.
   */
  failure(): string {
    const servers = this.servers();
    if (servers.every((server) => this.outcomes.get(server) === REFUSED)) {
      return `refused by every server: nothing listens at ${servers.join(', ')}`;
    }
    const attempt = this.attempt;
    if (!attempt && this.outcomes.size === 0) return 'no server answered';
    const outcome = (server: string): string => {
      const earlier = this.outcomes.get(server);
      // The attempt in progress: silent, unless it only just began and an earlier one says more.
      const silent = attempt?.server === server && !attempt.outcome;
      if (silent && (!earlier || performance.now() - attempt.since >= SILENCE_MS)) return 'no answer';
      return earlier ?? 'not tried yet';
    };
    return servers.map((server) => `${server}: ${outcome(server)}`).join('; ');
  }

  /** A session was established: attempts start afresh after the next loss. */
  reset(): void {
    this.hadSession = true;
    this.attempt = undefined;
    this.outcomes.clear();
    this.said.clear();
    this.probed.clear();
  }

  /** The attempt in progress goes over TLS, with a client certificate or without (told by ./tls.ts). */
  usingTls(own: X509Certificate | undefined, sentCertificate: boolean): void {
    if (this.attempt) this.attempt.tls = { own, sentCertificate };
  }

  /** Installed before the first connect: the client binds these when it opens each socket. */
  private hook(manager: AttemptHooks): void {
    const find = manager.findNextServer.bind(manager);
    manager.findNextServer = (callback) =>
      find((server) => {
        this.attempt = { server: serverName(server), address: server, since: performance.now() };
        callback(server);
      });
    const onConnected = manager.onSocketConnected.bind(manager);
    manager.onSocketConnected = () => {
      if (this.attempt) this.attempt.sent = true; // the connect request goes out now
      onConnected();
    };
    const onError = manager.onSocketError.bind(manager);
    manager.onSocketError = (error) => {
      this.ended(
        describeTlsError(error, this.tls ? (this.attempt?.tls ?? { sentCertificate: false }) : undefined) ??
          describeSocketError(error),
      );
      onError(error);
    };
    const onTimeout = manager.onSocketConnectTimeout.bind(manager);
    manager.onSocketConnectTimeout = () => {
      this.ended('no answer');
      onTimeout();
    };
    const onClosed = manager.onSocketClosed.bind(manager);
    manager.onSocketClosed = (hadError) => {
      const attempt = this.attempt;
      this.ended(CLOSED);
      if (attempt?.sent && attempt.outcome === CLOSED && !this.tls && !this.hadSession) {
        this.probe(attempt.server, attempt.address);
      }
      onClosed(hadError);
    };
  }

  private ended(outcome: string): void {
    const attempt = this.attempt;
    if (!attempt || attempt.outcome || this.ignore()) return;
    attempt.outcome = outcome;
    this.record(attempt.server, outcome === CLOSED && this.probed.get(attempt.server) ? SPEAKS_TLS : outcome);
  }

  private record(server: string, outcome: string): void {
    this.outcomes.set(server, outcome);
    const servers = this.servers();
    const all = (test: (outcome: string | undefined) => boolean) => servers.every((s) => test(this.outcomes.get(s)));
    if (all((o) => o === REFUSED)) this.report('refused', () => this.reports.refused(servers));
    if (all((o) => o?.startsWith(TLS_FAILURE) === true))
      this.report('tlsFailed', () => this.reports.tlsFailed(this.failure()));
  }

  private report(kind: keyof AttemptReports, tell: () => void): void {
    if (this.said.has(kind)) return;
    this.said.add(kind);
    tell();
  }

  /**
   * A plaintext attempt's server closed the connection after our connect request, before any
   * session: if it speaks TLS on that port (a secureClientPort), that is why, and the outcome says
   * so. Once per server per spell (a TLS ClientHello that a plaintext server logs as a bad length).
   */
  private probe(server: string, address: ServerAddress): void {
    if (this.probed.has(server)) return;
    this.probed.set(server, undefined);
    void speaksTls(address.host, Number(address.port), PROBE_MS).then((tls) => {
      if (!this.probed.has(server)) return; // a session came meanwhile
      this.probed.set(server, tls);
      if (tls && !this.ignore() && this.outcomes.get(server) === CLOSED) this.record(server, SPEAKS_TLS);
    });
  }
}

function serverName(server: ServerAddress): string {
  return server.host.includes(':') ? `[${server.host}]:${server.port}` : `${server.host}:${server.port}`;
}

/** A socket error of a connection attempt, in a few words. */
function describeSocketError(error: NodeJS.ErrnoException): string {
  switch (error.code) {
    case 'ECONNREFUSED':
      return REFUSED;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `host not found (${error.code})`;
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return `unreachable (${error.code})`;
    case 'ETIMEDOUT':
      return 'no answer';
    case 'ECONNRESET':
      return 'reset the connection';
    default:
      return `failed (${error.code ?? error.message})`;
  }
}
