import { Logger } from '@nestjs/common';

/**
 * The connection's log lines, at the level of what they tell: a problem (cut off, refused,
 * session lost) is a warning, and so is its end (reconnected, a new session), so that a
 * production log that shows one shows the other; a start without trouble is a log line.
 */
export class ConnectionLog {
  private readonly logger: Logger;
  /** A problem was logged and has not ended yet. */
  private troubled = false;

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

  error(message: string): void {
    this.logger.error(message);
  }
}
