/**
 * A loopback TCP proxy to put between a ZooKeeper client and its server(s), to simulate
 * partitions, severed connections and refused connections, and to cut a connection at an exact
 * moment (e.g. while a create is in flight).
 *
 * "up" is client -> server, "down" is server -> client.
 *
 * To cut while a request is in flight:
 *   - before it reaches the server: `proxy.pause('up')`, issue the request,
 *     `await waitFor(() => proxy.held('up') > 0)`, then `proxy.reset()` (held bytes are dropped);
 *   - after the server applied it but before the client hears back: `proxy.pause('down')`, issue
 *     the request, `await waitFor(() => proxy.held('down') > 0)` (or watch the server), `proxy.reset()`;
 *   - or from an `onData` listener, which runs before the chunk is forwarded: calling `blackhole()`
 *     or `reset()` there drops that very chunk.
 * Client pings (every third of the session timeout) also travel through, so match on sizes or
 * pause/hold around the request you care about.
 */
import * as net from 'node:net';

export type Direction = 'up' | 'down';
export interface ProxyTarget {
  host: string;
  port: number;
}

/** One client connection and its upstream connection. */
interface Link {
  client: net.Socket;
  upstream: net.Socket | undefined;
  /** Bytes are read and dropped both ways; destroyed on restore(). */
  blackholed: boolean;
  held: Record<Direction, Buffer[]>;
}

const HOST = '127.0.0.1';

export class TcpProxy {
  private mode: 'forward' | 'blackhole' | 'refuse' = 'forward';
  private readonly paused: Record<Direction, boolean> = { up: false, down: false };
  private readonly links = new Set<Link>();
  private readonly listeners = new Set<(direction: Direction, bytes: number) => void>();

  private constructor(
    private readonly server: net.Server,
    private target: ProxyTarget,
    /** The port the proxy listens on (127.0.0.1). */
    readonly port: number,
  ) {}

  /** Starts a proxy to `target`, listening on 127.0.0.1 on a free port. */
  static async start(target: ProxyTarget): Promise<TcpProxy> {
    const server = net.createServer();
    const port = await new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, HOST, () => resolve((server.address() as net.AddressInfo).port));
    });
    const proxy = new TcpProxy(server, target, port);
    server.on('connection', (socket) => proxy.accept(socket));
    return proxy;
  }

  /** `127.0.0.1:<port>`, to give to the client instead of the server's. */
  get connectString(): string {
    return `${HOST}:${this.port}`;
  }

  /** Number of currently open client connections (blackholed ones included). */
  get connections(): number {
    return this.links.size;
  }

  /** Partition: current and new connections stay open but all bytes are silently dropped, both ways. */
  blackhole(): void {
    this.mode = 'blackhole';
    for (const link of this.links) {
      link.blackholed = true;
      link.held = { up: [], down: [] };
    }
  }

  /** Severs every current connection (the client sees a connection loss); new connections are handled as before. */
  reset(): void {
    for (const link of this.links) this.destroy(link);
  }

  /** New connections are reset at once (like a refused connection) until restore(); current ones are kept. */
  refuse(): void {
    this.mode = 'refuse';
  }

  /** Forwards again: new connections work, blackholed connections are destroyed (so the client reconnects). */
  restore(): void {
    this.mode = 'forward';
    for (const link of this.links) if (link.blackholed) this.destroy(link);
  }

  /** Forwards new connections to `target` (current connections keep their server). */
  setTarget(target: ProxyTarget): void {
    this.target = target;
  }

  /** Holds (buffers) bytes going in `direction` on every connection, until resume(). */
  pause(direction: Direction | 'both' = 'both'): void {
    for (const d of directions(direction)) this.paused[d] = true;
  }

  /** Forwards the held bytes, in order, and forwards again in `direction`. */
  resume(direction: Direction | 'both' = 'both'): void {
    for (const d of directions(direction)) {
      this.paused[d] = false;
      for (const link of this.links) {
        const chunks = link.held[d];
        link.held[d] = [];
        for (const chunk of chunks) this.write(link, d, chunk);
      }
    }
  }

  /** Bytes currently held by pause() in `direction`, over all connections. */
  held(direction: Direction): number {
    let bytes = 0;
    for (const link of this.links) for (const chunk of link.held[direction]) bytes += chunk.length;
    return bytes;
  }

  /**
   * Calls `listener` for every chunk the proxy reads (forwarded, held or dropped), before it is
   * forwarded: blackhole()/reset()/pause() called from the listener apply to that chunk.
   * Returns a function that removes the listener.
   */
  onData(listener: (direction: Direction, bytes: number) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Stops listening and destroys every connection. */
  async close(): Promise<void> {
    this.reset();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: net.Socket): void {
    if (this.mode === 'refuse') {
      client.on('error', () => undefined);
      client.resetAndDestroy();
      return;
    }
    const link: Link = {
      client,
      upstream: undefined,
      blackholed: this.mode === 'blackhole',
      held: { up: [], down: [] },
    };
    this.links.add(link);
    client.setNoDelay(true);
    client.on('data', (chunk: Buffer) => this.relay(link, 'up', chunk));
    client.on('error', () => undefined);
    client.on('close', (hadError) => {
      this.links.delete(link);
      closeOther(link.upstream, hadError);
    });
    if (link.blackholed) return;

    const upstream = net.connect(this.target);
    link.upstream = upstream;
    upstream.setNoDelay(true);
    upstream.on('data', (chunk: Buffer) => this.relay(link, 'down', chunk));
    upstream.on('error', () => undefined);
    upstream.on('close', (hadError) => closeOther(client, hadError));
  }

  private relay(link: Link, direction: Direction, chunk: Buffer): void {
    for (const listener of this.listeners) listener(direction, chunk.length);
    if (link.blackholed || !this.links.has(link)) return;
    if (this.paused[direction]) link.held[direction].push(chunk);
    else this.write(link, direction, chunk);
  }

  private write(link: Link, direction: Direction, chunk: Buffer): void {
    const to = direction === 'up' ? link.upstream : link.client;
    if (to && !to.destroyed && to.writable) to.write(chunk);
  }

  private destroy(link: Link): void {
    this.links.delete(link);
    link.client.destroy();
    link.upstream?.destroy();
  }
}

/** One side of a link closed: close the other one too (gracefully, unless it was an error). */
function closeOther(other: net.Socket | undefined, hadError: boolean): void {
  if (hadError) other?.destroy();
  else other?.end();
}

function directions(direction: Direction | 'both'): Direction[] {
  return direction === 'both' ? ['up', 'down'] : [direction];
}
