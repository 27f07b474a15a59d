import { setMaxListeners } from 'node:events';
import { NotConnectedError } from '../errors/not-connected.error.js';
import type { SessionEndReason, ZkSession } from './zk-port.js';

/**
 * Share of the session timeout T after which the session is presumed lost, counted from the SEND
 * time S (performance.now()) of the latest request or ping whose reply came back. The server got
 * that packet at R >= S and cannot expire the session before R + T on its clock, so nobody else
 * can take our locks before S + T. Presuming at S + 0.9 T leaves 0.1 T (400 ms at T = 4 s) for
 * clock rates (monotonic clocks off by up to 1000 ppm each: under 0.002 T) and for our abort to
 * reach the holders (the timer's lateness, i.e. event-loop lag; the session's `ended` signal then
 * aborts every holder's signal synchronously). Remaining window: an event loop blocked for more
 * than about 0.1 T just then, or a paused process or machine. Pings (T/3 after the last send, see
 * adapter/heartbeat.ts) keep S within about T/3 of now, so a cut leaves holders about 0.57 T.
 */
export const PRESUMED_EXPIRY = 0.9;

export class Session implements ZkSession {
  private readonly controller = new AbortController();
  readonly ended: AbortSignal = this.controller.signal;

  constructor(
    readonly id: bigint,
    readonly timeout: number,
  ) {
    // Every held lock and every waiter of the session listens here: no listener limit.
    setMaxListeners(0, this.ended);
  }

  end(reason: SessionEndReason): void {
    this.controller.abort(reason);
  }
}

/** When a session whose latest answered send was at `lastAcknowledgedSend` (performance.now()) is presumed lost. */
export function presumedLossAt(session: ZkSession, lastAcknowledgedSend: number): number {
  return lastAcknowledgedSend + session.timeout * PRESUMED_EXPIRY;
}

/** Callers waiting for the next session, each until it comes, its signal aborts, or they are all failed. */
export class SessionWaiters {
  private readonly waiters = new Set<{ resolve: (s: Session) => void; reject: (e: Error) => void }>();

  /** Waits for {@link resolveAll}; rejects on {@link rejectAll} or when `signal` aborts (with its reason). */
  wait(signal?: AbortSignal): Promise<Session> {
    return new Promise<Session>((resolve, reject) => {
      const waiter = {
        resolve: (session: Session) => {
          cleanup();
          resolve(session);
        },
        reject: (error: Error) => {
          cleanup();
          reject(error);
        },
      };
      const onAbort = () =>
        waiter.reject(signal?.reason instanceof Error ? signal.reason : new NotConnectedError('aborted'));
      const cleanup = () => {
        this.waiters.delete(waiter);
        signal?.removeEventListener('abort', onAbort);
      };
      if (signal?.aborted) {
        onAbort();
        return;
      }
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.add(waiter);
    });
  }

  resolveAll(session: Session): void {
    for (const waiter of Array.from(this.waiters)) waiter.resolve(session);
  }

  rejectAll(error: Error): void {
    for (const waiter of Array.from(this.waiters)) waiter.reject(error);
  }
}
