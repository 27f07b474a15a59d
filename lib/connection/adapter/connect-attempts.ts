/**
 * How the client's connection attempts end while there is no session. node-zookeeper-client
 * swallows socket errors (a refused connection is only a close, then the next server), so the
 * adapter could only say "no server answered"; this sees which server each attempt went to and
 * how it ended, to tell a refused connection (nothing listens) from a server that did not answer.
 */
import type { RawConnectionManager } from './raw-client.js';

/** The outcome of an attempt whose connection was refused (ECONNREFUSED: nothing listens there). */
export const REFUSED = 'refused';
/** An attempt in progress this long (ms) counts as "no answer", whatever the earlier one said. */
const SILENCE_MS = 1_000;

interface ServerAddress {
  host: string;
  port: number;
}
/** The connection manager's parts that show its attempts (used only here). */
type AttemptHooks = RawConnectionManager & {
  servers: ServerAddress[];
  findNextServer(callback: (server: ServerAddress) => void): void;
  onSocketError(error: NodeJS.ErrnoException): void;
  onSocketConnectTimeout(): void;
};

export class ConnectAttempts {
  /** While there is no session: how the latest attempt at each server ended (`host:port` -> outcome). */
  readonly outcomes = new Map<string, string>();
  /** The server being tried, and how that attempt ended (its first outcome counts: an error is followed by a close). */
  private attempt: { server: string; since: number; outcome?: string } | undefined;
  /** `onRefused` was called in this spell without a session. */
  private refusedSaid = false;
  private readonly manager: AttemptHooks;

  /**
   * @param ignore true while attempts do not matter (connected, or closed)
   * @param onRefused called once per spell without a session, when every server refused
   */
  constructor(
    manager: RawConnectionManager,
    private readonly ignore: () => boolean,
    private readonly onRefused: (servers: string[]) => void,
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
    this.attempt = undefined;
    this.outcomes.clear();
    this.refusedSaid = false;
  }

  /** Installed before the first connect: the client binds these when it opens each socket. */
  private hook(manager: AttemptHooks): void {
    const find = manager.findNextServer.bind(manager);
    manager.findNextServer = (callback) =>
      find((server) => {
        this.attempt = { server: serverName(server), since: performance.now() };
        callback(server);
      });
    const onError = manager.onSocketError.bind(manager);
    manager.onSocketError = (error) => {
      this.ended(describeSocketError(error));
      onError(error);
    };
    const onTimeout = manager.onSocketConnectTimeout.bind(manager);
    manager.onSocketConnectTimeout = () => {
      this.ended('no answer');
      onTimeout();
    };
    const onClosed = manager.onSocketClosed.bind(manager);
    manager.onSocketClosed = (hadError) => {
      this.ended('closed the connection without a session');
      onClosed(hadError);
    };
  }

  private ended(outcome: string): void {
    const attempt = this.attempt;
    if (!attempt || attempt.outcome || this.ignore()) return;
    attempt.outcome = outcome;
    this.outcomes.set(attempt.server, outcome);
    const servers = this.servers();
    if (this.refusedSaid || !servers.every((server) => this.outcomes.get(server) === REFUSED)) return;
    this.refusedSaid = true;
    this.onRefused(servers);
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
