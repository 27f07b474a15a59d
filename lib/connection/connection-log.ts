import { Logger } from '@nestjs/common';
import type { AdapterEvent } from './zookeeper-client.adapter.js';

/**
 * The connection's log lines, at the level of what they tell: a problem (cut off, refused,
 * session lost) is a warning, and so is its end (reconnected, a new session), so that a
 * production log that shows one shows the other; a start without trouble is a log line.
 */
export class ConnectionLog {
  private readonly logger: Logger;
  /** A problem was logged and has not ended yet. */
  private troubled = false;
  /** warnOnce() was called. */
  private warned = false;

  constructor(context: string) {
    this.logger = new Logger(context);
  }

  /** A problem: a warning; its end will be one too. */
  problem(message: string): void {
    this.troubled = true;
    this.logger.warn(message);
  }

  /** The connection works (again): a warning when it ends a problem, else a log line. */
  recovered(message: string): void {
    this.logger[this.troubled ? 'warn' : 'log'](message);
    this.troubled = false;
  }

  /**
   * No server can be used (all refuse, or all fail TLS), and the client keeps trying: a problem,
   * until `connectTimeout` when given (start-up), else until a server answers.
   */
  retrying(event: Extract<AdapterEvent, { type: 'refused' | 'tls-failed' }>, connectTimeout?: number): void {
    const problem =
      event.type === 'refused'
        ? `Every ZooKeeper server refused the connection: nothing listens at ${event.servers.join(', ')}`
        : `TLS to every ZooKeeper server failed (${event.failure})`;
    const until = connectTimeout === undefined ? '' : ` until connectTimeout (${connectTimeout} ms)`;
    this.problem(`${problem}; retrying${until}`);
  }

  /** Warnings that are no connection problem (about the configuration), logged by the first call only. */
  warnOnce(messages: string[]): void {
    if (this.warned) return;
    this.warned = true;
    for (const message of messages) this.logger.warn(message);
  }

  error(message: string): void {
    this.logger.error(message);
  }
}
