/**
 * The sample's one critical section: append the next numbered line to the shared log, a
 * read-modify-write (read the last counter, write counter + 1). Correct only while the caller
 * holds the distributed lock LOCK_PATH; the worker processes (sample/worker.ts) and the HTTP app
 * (sample/http-app.ts) both call it, with and without the lock.
 */
import * as fs from 'node:fs';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { formatLine, lastCounter } from './verify.js';

/** The lock every writer takes around its read-modify-write. */
export const LOCK_PATH = '/locks/write_lock';

const HOST = hostname() || 'unknown';

/** The end of the log, enough for its last line. */
export function readTail(file: string, bytes = 4096): string {
  const fd = fs.openSync(file, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    const length = Math.min(size, bytes);
    const buffer = Buffer.alloc(length);
    fs.readSync(fd, buffer, 0, length, size - length);
    return buffer.toString('utf8');
  } finally {
    fs.closeSync(fd);
  }
}

export interface AppendLine {
  /** The writer's number, written into the line (`worker=`): a worker process or an app instance. */
  workerId: number;
  /** The fencing token of the held lock as a decimal string, or `-` without the lock. */
  token: string;
  /** The held lock's lost-lock signal: when it fires between the read and the write, nothing is written. */
  signal?: AbortSignal;
}

/**
 * Appends the next numbered line (the last counter + 1) to `file` and resolves with that counter.
 * Not atomic: two callers that overlap read the same last counter and write the same number.
 */
export async function appendNextLine(file: string, { workerId, token, signal }: AppendLine): Promise<number> {
  const counter = lastCounter(readTail(file)) + 1;
  // Yield to the event loop between read and write, as real work would: without the lock,
  // other writers read the same last line meanwhile and write the same counter.
  await sleep(Math.random() * 2);
  signal?.throwIfAborted(); // the lock was lost meanwhile (session expired): do not write
  fs.appendFileSync(file, formatLine({ counter, workerId, pid: process.pid, host: HOST, token })); // one write(2) on an O_APPEND file
  return counter;
}
