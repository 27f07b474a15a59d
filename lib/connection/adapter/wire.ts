/**
 * What the client library sends and what the server answers, watched from inside the client's
 * connection manager (hooks on the instance; the client binds them to each new socket).
 *
 * It gives the connection service the one time that bounds the server's session clock from below:
 * the SEND time of the latest request or ping whose reply came back (`lastAcknowledgedSend`). The
 * server expires a session its timeout after it last RECEIVED a packet of the session, and it
 * received an answered packet no earlier than we sent it. Watch notifications are the server
 * talking, not hearing us: they renew nothing and count for nothing here.
 *
 * It also cuts the server's byte stream into replies before the client parses them, one reply at a
 * time, which closes three holes of the client's parser:
 * - a reply with an error code the client does not know (QUOTAEXCEEDED, THROTTLEDOP, ... of newer
 *   servers) made it throw in its socket handler: the code is rewritten to one it knows, and the
 *   request's callback receives an error carrying the real code;
 * - any other throw (a misaligned stream) drops the connection instead of crashing the process;
 * - it kept a partly received reply across a reconnect and glued the next connection's bytes to
 *   it: our partial reply is forgotten when the socket closes, and the client never holds one.
 */
import {
  CLIENT_KNOWN_CODES,
  jute,
  serverException,
  STATES,
  SUBSTITUTE_CODE,
  XID_NOTIFICATION,
  type RawConnectionManager,
  type RawPacket,
} from './raw-client.js';

/** A packet handed to the socket, and when (performance.now()). */
interface Sent {
  packet: RawPacket;
  at: number;
}

/** Replies larger than this are a broken stream (the server's jute.maxbuffer default is 1 MiB; lists can be larger). */
const MAX_REPLY_BYTES = 256 * 1024 * 1024;
/** Request xids are int32; negative ones are the protocol's own (-1 notification, -2 ping, -4 auth, -8 set watches). */
const MAX_XID = 2 ** 31 - 1;
/** Reply header: length (4), xid (4), zxid (8), err (4). */
const REPLY_HEADER_BYTES = 20;

export class Wire {
  /** performance.now() when the latest packet whose reply (or connect response) came back was handed to the socket. */
  lastAcknowledgedSend = 0;
  /** performance.now() when a packet was last handed to the socket. */
  lastSend = 0;
  /**
   * Sent packets waiting for their reply, in sending order. A reply answers the oldest packet with
   * its xid (pings, xid -2, and auth, -4, share theirs); the server answers a session's requests
   * in order, so that is nearly always the first one (an auth reply may come before a request's).
   * The client gives a packet its xid right after taking it from its queue, so xids are read when
   * the reply comes.
   */
  private sent: Sent[] = [];
  private connectSentAt = 0;
  private partial: Buffer | null = null;

  /** Drops a socket whose server has not answered the connect request in time (see handshakeTimeout). */
  private handshakeTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly manager: RawConnectionManager,
    /**
     * How long a server may take to answer the connect request before the socket is dropped and
     * the next server tried (ms): the client has no such timeout (it stops its connect timer once
     * TCP is up), so a server that accepts but never answers (a hung JVM) held it forever.
     */
    private readonly handshakeTimeout: number,
  ) {
    this.hook();
  }

  /** Queues a ping now (when connected): the server answers it, which renews the session and shows it hears us. */
  sendPing(): void {
    const state = this.manager.state;
    if (state !== STATES.CONNECTED && state !== STATES.CONNECTED_READ_ONLY) return;
    this.manager.queue(new jute.Request(new jute.protocol.RequestHeader(jute.XID_PING, jute.OP_CODES.PING), null));
  }

  private hook(): void {
    const manager = this.manager;
    const shift = manager.packetQueue.shift.bind(manager.packetQueue);
    const connected = manager.onSocketConnected.bind(manager);
    const parse = manager.onSocketData.bind(manager);
    const closed = manager.onSocketClosed.bind(manager);
    // The client writes every packet it takes from its queue at once (same tick), so taking is sending.
    manager.packetQueue.shift = () => {
      // The client gives the packet the next xid right after this: keep it an int32 (it never wraps,
      // and a long session's 2^31st request would throw in its serializer from then on).
      if (manager.xid > MAX_XID) manager.xid = 1;
      const packet = shift();
      if (packet) {
        this.lastSend = performance.now();
        if (packet.request.header) this.sent.push({ packet, at: this.lastSend });
      }
      return packet;
    };
    // The client writes the connect request here.
    manager.onSocketConnected = () => {
      this.connectSentAt = performance.now();
      this.lastSend = this.connectSentAt;
      clearTimeout(this.handshakeTimer);
      const socket = manager.socket;
      this.handshakeTimer = setTimeout(() => {
        if (manager.socket === socket && manager.state === STATES.CONNECTING) this.drop();
      }, this.handshakeTimeout);
      this.handshakeTimer.unref();
      connected();
    };
    manager.onSocketData = (chunk: Buffer) => this.receive(chunk, parse);
    manager.onSocketClosed = (hadError: boolean) => {
      clearTimeout(this.handshakeTimer);
      this.partial = null;
      this.sent = [];
      manager.pendingBuffer = null;
      closed(hadError);
    };
  }

  /** Cuts the stream into whole replies and hands them to the client's parser one at a time. */
  private receive(chunk: Buffer, parse: (reply: Buffer) => void): void {
    const socket = this.manager.socket;
    let buffer = this.partial ? Buffer.concat([this.partial, chunk]) : chunk;
    this.partial = null;
    while (buffer.length >= 4) {
      const size = buffer.readInt32BE(0);
      if (size < 0 || size > MAX_REPLY_BYTES) {
        this.drop();
        return;
      }
      if (buffer.length < size + 4) break;
      if (buffer.length === size + 4) {
        // The rest is one whole reply (nearly always the whole chunk): handed over as it is.
        this.deliver(buffer, parse);
        return;
      }
      const reply = buffer.subarray(0, size + 4);
      buffer = buffer.subarray(size + 4);
      this.deliver(reply, parse);
      // The client (or we) dropped the connection: the rest belongs to a dead connection.
      if (socket?.destroyed || this.manager.socket !== socket) return;
    }
    this.partial = buffer.length > 0 ? Buffer.from(buffer) : null;
  }

  private deliver(reply: Buffer, parse: (reply: Buffer) => void): void {
    if (this.manager.state === STATES.CONNECTING) {
      // The connect response: a positive timeout means the server took (or resumed) the session
      // on receiving our connect request.
      clearTimeout(this.handshakeTimer);
      if (reply.length >= 12 && reply.readInt32BE(8) > 0) this.acknowledge(this.connectSentAt);
    } else if (reply.length >= REPLY_HEADER_BYTES) {
      const xid = reply.readInt32BE(4);
      const err = reply.readInt32BE(16);
      if (xid !== XID_NOTIFICATION) {
        const sent = this.answered(xid);
        if (sent) this.acknowledge(sent.at);
        if (err !== 0 && !CLIENT_KNOWN_CODES.has(err)) {
          reply = Buffer.from(reply); // a copy: the chunk may be the socket's
          reply.writeInt32BE(SUBSTITUTE_CODE, 16);
          if (sent) reportAs(sent.packet, err);
        }
      }
    }
    try {
      parse(reply);
    } catch {
      this.drop();
    }
  }

  private acknowledge(sentAt: number): void {
    if (sentAt > this.lastAcknowledgedSend) this.lastAcknowledgedSend = sentAt;
  }

  /** The sent packet this reply answers (the oldest with its xid), no longer waiting. */
  private answered(xid: number): Sent | undefined {
    const sent = this.sent;
    for (let i = 0; i < sent.length; i += 1) {
      if (sent[i].packet.request.header?.xid !== xid) continue;
      const found = sent[i];
      if (i === 0) sent.shift();
      else sent.splice(i, 1);
      return found;
    }
    return undefined;
  }

  /** Drops the connection (the client reconnects to the same session); pending requests fail with CONNECTION_LOSS. */
  private drop(): void {
    this.partial = null;
    this.manager.pendingBuffer = null;
    this.manager.socket?.destroy();
  }
}

/** Makes the packet's callback receive an error with `code` instead of the substitute the client parsed. */
function reportAs(packet: RawPacket, code: number): void {
  const callback = packet.callback;
  if (!callback) return;
  packet.callback = (error, response) => callback(error ? serverException(code) : error, response);
}
