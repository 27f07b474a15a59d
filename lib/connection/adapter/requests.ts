/**
 * Requests waiting for their reply, each with a deadline (`operationTimeout`): the client has no
 * read timeout, and a request queued while disconnected never calls back if the session then
 * expires.
 */
import { ZooKeeperError, type ZkErrorCode } from '../../errors/zookeeper.error.js';
import { boundedDelay } from './timers.js';
import { TRANSIENT_SERVER_CODES, type RawException } from './raw-client.js';

/** Error codes the library tells apart; any other (a server code the client does not know included) is OTHER, its number in the message. */
const ERROR_CODES: Record<number, ZkErrorCode> = {
  [-101]: 'NO_NODE',
  [-110]: 'NODE_EXISTS',
  [-111]: 'NOT_EMPTY',
  [-103]: 'BAD_VERSION',
  [-102]: 'NO_AUTH',
  [-114]: 'INVALID_ACL',
  [-4]: 'CONNECTION_LOSS',
  [-112]: 'SESSION_EXPIRED',
  [-7]: 'OPERATION_TIMEOUT',
  [-6]: 'UNIMPLEMENTED',
  [-125]: 'QUOTA_EXCEEDED',
};

/** The library's name for a server error code. */
export function errorCodeOf(code: number): ZkErrorCode {
  return ERROR_CODES[code] ?? (TRANSIENT_SERVER_CODES.has(code) ? 'THROTTLED' : 'OTHER');
}

/** What the client calls back with: an error, or up to two results. */
export type ReplyCallback<A, B> = (error: RawException | null, a?: A, b?: B) => void;

/** A request waiting for its reply. */
class InFlight<A, B, R> {
  constructor(
    readonly operation: string,
    readonly path: string,
    /** performance.now() value after which the request fails with OPERATION_TIMEOUT. */
    readonly deadline: number,
    private readonly inflight: Set<InFlight<unknown, unknown, unknown>>,
    private readonly resolve: (value: R) => void,
    private readonly reject: (error: ZooKeeperError) => void,
    private readonly map: (a: A, b: B) => R,
  ) {}

  /** The client's callback; a reply after the request failed (its deadline, close) is ignored. */
  answer(error: RawException | null, a: A, b: B): void {
    if (!this.inflight.delete(this as InFlight<unknown, unknown, unknown>)) return;
    if (error) this.reject(new ZooKeeperError(errorCodeOf(error.getCode()), this.operation, this.path, error.message));
    else this.resolve(this.map(a, b));
  }

  fail(error: ZooKeeperError): void {
    this.inflight.delete(this as InFlight<unknown, unknown, unknown>);
    this.reject(error);
  }
}

export class Requests {
  /** In the order they were sent. */
  private readonly inflight = new Set<InFlight<unknown, unknown, unknown>>();
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly operationTimeout: number) {}

  /**
   * Runs one request with a deadline; a late reply is ignored (its outcome is unknown to the caller).
   * Deadlines share ONE timer per connection (requests are in flight in the order they were sent,
   * all with the same timeout, so the oldest one's deadline is the next to pass): a timer per
   * request was a measurable part of an acquisition's CPU. `map` turns the client's results into
   * ours (a function made once, not per request).
   */
  run<A, B, R>(
    operation: string,
    path: string,
    send: (cb: ReplyCallback<A, B>) => void,
    map: (a: A, b: B) => R,
  ): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      if (this.closed) {
        reject(new ZooKeeperError('CLOSED', operation, path, 'the connection is closed'));
        return;
      }
      const inflight = this.inflight;
      const request = new InFlight<A, B, R>(
        operation,
        path,
        performance.now() + this.operationTimeout,
        inflight,
        resolve,
        reject,
        map,
      );
      inflight.add(request as InFlight<unknown, unknown, unknown>);
      this.arm();
      try {
        send((error, a, b) => request.answer(error, a as A, b as B));
      } catch (error) {
        request.fail(new ZooKeeperError('OTHER', operation, path, (error as Error).message));
      }
    });
  }

  /** Rejects every request still waiting for a reply (after expiry or close the client would never answer). */
  failAll(code: ZkErrorCode): void {
    for (const request of Array.from(this.inflight))
      request.fail(new ZooKeeperError(code, request.operation, request.path, `session ${code.toLowerCase()}`));
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Fails what is in flight with CLOSED, and every later request at once. */
  close(): void {
    this.closed = true;
    this.failAll('CLOSED');
  }

  /** Arms the deadline timer for the oldest request in flight, unless it is armed already. */
  private arm(): void {
    if (this.timer) return;
    const oldest = this.inflight.values().next().value;
    if (!oldest) return;
    this.timer = setTimeout(() => this.expire(), boundedDelay(oldest.deadline - performance.now()));
    this.timer.unref(); // the socket keeps the process alive while requests are in flight
  }

  /** Fails every request whose deadline has passed, then waits for the next oldest. */
  private expire(): void {
    this.timer = undefined;
    const now = performance.now();
    for (const request of this.inflight) {
      if (request.deadline > now) break; // in sending order: the rest are younger
      request.fail(
        new ZooKeeperError(
          'OPERATION_TIMEOUT',
          request.operation,
          request.path,
          `no reply within ${this.operationTimeout} ms`,
        ),
      );
    }
    this.arm();
  }
}
