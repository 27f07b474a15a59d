/**
 * The fencing authority of the chaos run: the ONE place the workers' read-modify-writes go
 * through (chaos/main.ts serves it to them over their IPC channels). It knows nothing of locks or
 * ZooKeeper; it only compares fencing tokens, as a real store would (a database row with a
 * `last_token` column, an object store with a conditional put):
 *
 * - a read carries the reader's token; the store remembers the highest token it has seen and
 *   refuses a read whose token is lower (a newer holder has already been here);
 * - a write is accepted only if its token is strictly greater than the token of the last accepted
 *   write AND not lower than the highest token seen on a read. The second half is what makes the
 *   read-modify-write safe, not just the write: a paused former holder that read counter 5 with
 *   token 10 must not write 6 after the next holder (token 11) has read 5, even when that holder
 *   has not written yet; its write would be accepted by the first rule alone, and the next holder
 *   would then write 6 again.
 *
 * Accepted writes are appended to the log in the sample's line format (sample/verify.ts), so
 * the sample's verifier checks the result: counters 1..N once each, tokens strictly increasing.
 * Refused operations are recorded: they are the stale writes fencing exists to stop.
 */
import * as fs from 'node:fs';
import { formatLine } from '../sample/verify.js';

export interface Writer {
  workerId: number;
  pid: number;
  host: string;
}

export interface Refusal extends Writer {
  op: 'read' | 'write';
  token: bigint;
  /** With `write`: the counter it tried to write. */
  counter?: number;
  /** Why, in words. */
  reason: string;
  /** When (ms since epoch). */
  at: number;
}

export type ReadResult = { ok: true; counter: number } | { ok: false; reason: string };
export type WriteResult = { ok: true } | { ok: false; reason: string };

export class FencedStore {
  /** Counter of the last accepted write (0 before the first). */
  lastCounter = 0;
  /** Token of the last accepted write. */
  lastWriteToken = -1n;
  /** Highest token seen on an accepted read or write. */
  highestToken = -1n;
  accepted = 0;
  readonly refused: Refusal[] = [];

  /** Truncates `file`: the store starts empty. */
  constructor(readonly file: string) {
    fs.writeFileSync(file, '');
  }

  read(writer: Writer, token: bigint): ReadResult {
    if (token < this.highestToken) {
      return this.refuse(writer, 'read', token, undefined, `token ${token} < ${this.highestToken} already seen`);
    }
    this.highestToken = token;
    return { ok: true, counter: this.lastCounter };
  }

  write(writer: Writer, token: bigint, counter: number): WriteResult {
    if (token <= this.lastWriteToken) {
      return this.refuse(writer, 'write', token, counter, `token ${token} <= last written ${this.lastWriteToken}`);
    }
    if (token < this.highestToken) {
      return this.refuse(
        writer,
        'write',
        token,
        counter,
        `token ${token} < ${this.highestToken} read by a later holder`,
      );
    }
    fs.appendFileSync(
      this.file,
      formatLine({ counter, workerId: writer.workerId, pid: writer.pid, host: writer.host, token: token.toString() }),
    );
    this.lastCounter = counter;
    this.lastWriteToken = token;
    this.highestToken = token;
    this.accepted += 1;
    return { ok: true };
  }

  private refuse(
    writer: Writer,
    op: Refusal['op'],
    token: bigint,
    counter: number | undefined,
    reason: string,
  ): { ok: false; reason: string } {
    this.refused.push({ ...writer, op, token, counter, reason, at: Date.now() });
    return { ok: false, reason };
  }
}
