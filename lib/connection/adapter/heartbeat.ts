/**
 * Pings on our schedule, and a read timeout that counts answers only.
 *
 * node-zookeeper-client pings after a third of the session timeout without ANY socket traffic, so
 * a stream of watch notifications (server to client) starved the session of pings and the server
 * expired it while the client was receiving. Here, like the Java client: a ping when nothing has
 * been SENT for a third of the timeout. And it has no read timeout: a half-open socket looks
 * connected forever. Here: the socket is dropped (the client tries the next server) when nothing
 * sent in the last two thirds of the timeout has been answered; notifications do not count, they
 * do not show that the server hears us.
 */
import type { RawConnectionManager } from './raw-client.js';
import { boundedDelay } from './timers.js';
import type { Wire } from './wire.js';

/** A ping is sent after this share of the session timeout without sending anything (the Java client's rate). */
const PING_AFTER_IDLE = 1 / 3;
/** The socket is dropped after this share of the session timeout without an answered send. */
const LIVENESS = 2 / 3;

export class Heartbeat {
  private timer: NodeJS.Timeout | undefined;
  private running = false;

  constructor(
    private readonly wire: Wire,
    private readonly manager: RawConnectionManager,
    /** The session timeout the server granted (ms). */
    private readonly sessionTimeout: () => number,
  ) {}

  /** Connected: beat until stop() (after a drop, start again on the next connect). */
  start(): void {
    this.running = true;
    this.arm();
  }

  stop(): void {
    this.running = false;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Arms the timer for the next thing due: a ping, or the liveness check. */
  private arm(): void {
    if (this.timer || !this.running) return;
    const timeout = this.sessionTimeout();
    const next = Math.min(
      this.wire.lastSend + timeout * PING_AFTER_IDLE,
      this.wire.lastAcknowledgedSend + timeout * LIVENESS,
    );
    this.timer = setTimeout(() => this.beat(), boundedDelay(Math.max(1, Math.ceil(next - performance.now()))));
    this.timer.unref();
  }

  private beat(): void {
    this.timer = undefined;
    if (!this.running) return;
    const timeout = this.sessionTimeout();
    const now = performance.now();
    if (now - this.wire.lastAcknowledgedSend >= timeout * LIVENESS) {
      this.running = false;
      this.manager.socket?.destroy();
      return;
    }
    if (now - this.wire.lastSend >= timeout * PING_AFTER_IDLE) this.wire.sendPing();
    this.arm();
  }
}
