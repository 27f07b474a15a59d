/**
 * Nest's console logger writes warnings and debug lines to stdout, where the benchmark's JSON
 * lines go: this one writes warnings and errors to stderr and drops the rest.
 */
import type { LoggerService } from '@nestjs/common';

function write(level: string, message: unknown, rest: unknown[]): void {
  const context = rest.length > 0 && typeof rest.at(-1) === 'string' ? ` [${String(rest.at(-1))}]` : '';
  const text = message instanceof Error ? (message.stack ?? message.message) : String(message);
  process.stderr.write(`${level}${context} ${text}\n`);
}

export class StderrLogger implements LoggerService {
  log(): void {}
  debug(): void {}
  verbose(): void {}
  warn(message: unknown, ...rest: unknown[]): void {
    write('WARN', message, rest);
  }
  error(message: unknown, ...rest: unknown[]): void {
    write('ERROR', message, rest);
  }
  fatal(message: unknown, ...rest: unknown[]): void {
    write('FATAL', message, rest);
  }
}
