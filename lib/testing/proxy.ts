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
 *
 * ZooKeeper-aware cuts: the proxy also cuts each direction's stream into ZooKeeper frames
 * (`ZkFrame`: the connect request/response first, then requests and replies with their xid), so a
 * test can act on one exact packet, wherever the chunk boundaries fall:
 *   - `cutAfter('down', isNotification)`: deliver the next watch notification, then blackhole;
 *   - `cutBefore('up', isPing)`: blackhole just before the client's next ping leaves;
 *   - `onFrame(listener)`: see every frame (e.g. when the client's last ping went up).
 * And `setLatency(direction, ms)` delays every chunk (and the close behind them) by `ms`.
 */
import * as net from 'node:net';

export type Direction = 'up' | 'down';
export interface ProxyTarget {
  host: string;
  port: number;
}

/** One ZooKeeper packet as the proxy saw it go by. */
export interface ZkFrame {
  /** 0 for the connection's first frame in that direction: the connect request (up) or response (down). */
  index: number;
  /** Bytes, with the 4-byte length prefix. */
  size: number;
  /** The request's or reply's xid (not for index 0): -1 notification, -2 ping, -4 auth, >= 0 a request. */
  xid?: number;
  /** Up: the request's opcode (11 ping, 1 create, 2 delete, 4 getData, 12 getChildren2, -11 closeSession). */
  opcode?: number;
  /** Down: the reply's error code (0 ok). */
  err?: number;
}
/** A frame at which a cut happened, and when (performance.now()). */
export type CutFrame = ZkFrame & { at: number };

/** A watch notification (server to client). */
export const isNotification = (frame: ZkFrame): boolean => frame.index > 0 && frame.xid === -1;
/** A ping request (up) or its reply (down). */
export const isPing = (frame: ZkFrame): boolean => frame.index > 0 && frame.xid === -2;

/** One client connection and its upstream connection. */
interface Link {
  client: net.Socket;
  upstream: net.Socket | undefined;
  /** Bytes are read and dropped both ways; destroyed on restore(). */
  blackholed: boolean;
  held: Record<Direction, Buffer[]>;
  framers: Record<Direction, Framer>;
  /** Chunks (or the close) waiting for their latency to pass, in order. */
  delayed: Record<Direction, { due: number; item: Buffer | { hadError: boolean } }[]>;
  timers: Record<Direction, NodeJS.Timeout | undefined>;
}

interface Cut {
  direction: Direction;
  before: boolean;
  match: (frame: ZkFrame) => boolean;
  resolve: (frame: CutFrame) => void;
}

const HOST = '127.0.0.1';

export class TcpProxy {
  private mode: 'forward' | 'blackhole' | 'refuse' = 'forward';
  private readonly paused: Record<Direction, boolean> = { up: false, down: false };
  private readonly latency: Record<Direction, number> = { up: 0, down: 0 };
  private readonly links = new Set<Link>();
  private readonly listeners = new Set<(direction: Direction, bytes: number, chunk: Buffer) => void>();
  private readonly frameListeners = new Set<(direction: Direction, frame: ZkFrame) => void>();
  private readonly cuts = new Set<Cut>();

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

  /**
   * Partition: current and new connections stay open but all bytes are silently dropped, both ways
   * (held bytes too; bytes already delayed by `setLatency` were on the wire and still arrive).
   */
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
        for (const chunk of chunks) this.deliver(link, d, chunk);
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
  onData(listener: (direction: Direction, bytes: number, chunk: Buffer) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Calls `listener` for every ZooKeeper frame completed by a chunk the proxy forwards (after the
   * onData listeners, before the chunk is forwarded: blackhole()/reset() apply to the whole chunk).
   * Returns a function that removes the listener.
   */
  onFrame(listener: (direction: Direction, frame: ZkFrame) => void): () => void {
    this.frameListeners.add(listener);
    return () => this.frameListeners.delete(listener);
  }

  /**
   * Once, at the next frame going `direction` that `match`es: forwards the bytes up to the end of
   * that frame, then blackholes (bytes after it in the same chunk are dropped). Resolves with the
   * frame and the time of the cut.
   */
  cutAfter(direction: Direction, match: (frame: ZkFrame) => boolean): Promise<CutFrame> {
    return new Promise((resolve) => this.cuts.add({ direction, before: false, match, resolve }));
  }

  /**
   * Once, at the next frame going `direction` that `match`es: forwards the bytes before that frame,
   * then blackholes (the frame never arrives). Resolves with the frame and the time of the cut.
   */
  cutBefore(direction: Direction, match: (frame: ZkFrame) => boolean): Promise<CutFrame> {
    return new Promise((resolve) => this.cuts.add({ direction, before: true, match, resolve }));
  }

  /** Delays every chunk going `direction` (and a close behind them) by `ms`, in order; 0 forwards at once again. */
  setLatency(direction: Direction | 'both', ms: number): void {
    for (const d of directions(direction)) this.latency[d] = ms;
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
      framers: { up: new Framer('up'), down: new Framer('down') },
      delayed: { up: [], down: [] },
      timers: { up: undefined, down: undefined },
    };
    this.links.add(link);
    client.setNoDelay(true);
    client.on('data', (chunk: Buffer) => this.relay(link, 'up', chunk));
    client.on('error', () => undefined);
    client.on('close', (hadError) => {
      this.links.delete(link);
      this.deliver(link, 'up', { hadError });
    });
    if (link.blackholed) return;

    const upstream = net.connect(this.target);
    link.upstream = upstream;
    upstream.setNoDelay(true);
    upstream.on('data', (chunk: Buffer) => this.relay(link, 'down', chunk));
    upstream.on('error', () => undefined);
    upstream.on('close', (hadError) => this.deliver(link, 'down', { hadError }));
  }

  private relay(link: Link, direction: Direction, chunk: Buffer): void {
    for (const listener of this.listeners) listener(direction, chunk.length, chunk);
    if (link.blackholed || !this.links.has(link)) return;
    const frames = link.framers[direction].feed(chunk);
    for (const { frame } of frames) for (const listener of this.frameListeners) listener(direction, frame);
    if (link.blackholed || !this.links.has(link)) return;
    for (const { frame, start, end } of frames) {
      const cut = Array.from(this.cuts).find((c) => c.direction === direction && c.match(frame));
      if (!cut) continue;
      this.cuts.delete(cut);
      const until = cut.before ? Math.max(0, start) : end;
      if (until > 0) this.forward(link, direction, chunk.subarray(0, until));
      this.blackhole();
      cut.resolve({ ...frame, at: performance.now() });
      return;
    }
    this.forward(link, direction, chunk);
  }

  private forward(link: Link, direction: Direction, chunk: Buffer): void {
    if (this.paused[direction]) link.held[direction].push(chunk);
    else this.deliver(link, direction, chunk);
  }

  /** Writes a chunk (or passes a close on) now, or after the direction's latency, in order. */
  private deliver(link: Link, direction: Direction, item: Buffer | { hadError: boolean }): void {
    const queue = link.delayed[direction];
    if (this.latency[direction] <= 0 && queue.length === 0) {
      this.write(link, direction, item);
      return;
    }
    queue.push({ due: performance.now() + this.latency[direction], item });
    if (!link.timers[direction]) this.drain(link, direction);
  }

  private drain(link: Link, direction: Direction): void {
    link.timers[direction] = undefined;
    const queue = link.delayed[direction];
    while (queue.length > 0 && queue[0].due <= performance.now()) this.write(link, direction, queue.shift()!.item);
    if (queue.length === 0) return;
    const wait = Math.max(1, Math.ceil(queue[0].due - performance.now()));
    link.timers[direction] = setTimeout(() => this.drain(link, direction), wait);
  }

  private write(link: Link, direction: Direction, item: Buffer | { hadError: boolean }): void {
    const to = direction === 'up' ? link.upstream : link.client;
    if (!Buffer.isBuffer(item)) closeOther(to, item.hadError);
    else if (to && !to.destroyed && to.writable) to.write(item);
  }

  private destroy(link: Link): void {
    this.links.delete(link);
    for (const d of ['up', 'down'] as const) {
      clearTimeout(link.timers[d]);
      link.timers[d] = undefined;
      link.delayed[d] = [];
    }
    link.client.destroy();
    link.upstream?.destroy();
  }
}

/** Frames larger than this are not ZooKeeper (or not a stream we follow): the framer gives up. */
const MAX_FRAME = 16 * 1024 * 1024;

/** Cuts one direction of one connection into ZooKeeper frames (length-prefixed), across chunks. */
class Framer {
  private index = 0;
  private pending = Buffer.alloc(0);
  private lost = false;

  constructor(private readonly direction: Direction) {}

  /** The frames this chunk completes, with their start and end offsets in the chunk (start < 0: began in an earlier chunk). */
  feed(chunk: Buffer): { frame: ZkFrame; start: number; end: number }[] {
    if (this.lost) return [];
    const before = this.pending.length;
    const buffer = before > 0 ? Buffer.concat([this.pending, chunk]) : chunk;
    const frames: { frame: ZkFrame; start: number; end: number }[] = [];
    let offset = 0;
    while (buffer.length - offset >= 4) {
      const size = buffer.readInt32BE(offset);
      if (size < 0 || size > MAX_FRAME) {
        this.lost = true;
        this.pending = Buffer.alloc(0);
        return frames;
      }
      if (buffer.length - offset < size + 4) break;
      frames.push({
        frame: this.describe(buffer.subarray(offset, offset + size + 4)),
        start: offset - before,
        end: offset + size + 4 - before,
      });
      offset += size + 4;
    }
    this.pending = Buffer.from(buffer.subarray(offset));
    return frames;
  }

  private describe(bytes: Buffer): ZkFrame {
    const frame: ZkFrame = { index: this.index++, size: bytes.length };
    if (frame.index === 0 || bytes.length < 12) return frame;
    frame.xid = bytes.readInt32BE(4);
    // A request header is xid, opcode; a reply header is xid, zxid (8 bytes), err.
    if (this.direction === 'up') frame.opcode = bytes.readInt32BE(8);
    else if (bytes.length >= 20) frame.err = bytes.readInt32BE(16);
    return frame;
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
