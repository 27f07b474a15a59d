/**
 * The log's line format and its verifier (pure: text in, verdict out).
 *
 *   <counter> worker=<id> pid=<pid> host=<hostname> token=<fencing token, or - without the lock>
 */

/** One complete log line (without its newline). */
export const LINE_PATTERN = /^(\d+) worker=(\d+) pid=(\d+) host=(\S+) token=(\d+|-)$/;

/** A log line with its newline, as a worker appends it in a single write. */
export function formatLine(line: {
  counter: number;
  workerId: number;
  pid: number;
  host: string;
  token: string;
}): string {
  return `${line.counter} worker=${line.workerId} pid=${line.pid} host=${line.host} token=${line.token}\n`;
}

/** The counter of the last complete line of `tail` (the end of the log), 0 when there is none. */
export function lastCounter(tail: string): number {
  const lines = tail.split('\n');
  lines.pop(); // the part after the last newline: empty, or a line still being written
  const last = lines.at(-1);
  const match = last === undefined ? null : /^(\d+) /.exec(last);
  return match ? Number(match[1]) : 0;
}

export interface VerifyOptions {
  /** Workers x lines per worker: the counters must be exactly 1..expectedLines. */
  expectedLines: number;
  /** Lines carry fencing tokens, which must strictly increase in file order. */
  fenced: boolean;
}

export interface VerifyResult {
  ok: boolean;
  /** Lines in the file, torn ones included. */
  lines: number;
  /** Counters written more than once (lost updates: two writers read the same last line), ascending. */
  duplicates: number[];
  /** Counters from 1..expectedLines never written, ascending. */
  missing: number[];
  /** Lines not in the format (interleaved or cut-off writes), including a last line without its newline. */
  torn: number;
  /** With `fenced`: lines whose token is not greater than the one of the line before (or missing). */
  tokenViolations: number;
  /** One sentence per kind of problem, for people; empty when ok. */
  problems: string[];
}

const SHOW = 10;

/** "3, 4, 9" or "3, 4, 9, ... (25 in all)". */
function list(values: number[]): string {
  const shown = values.slice(0, SHOW).join(', ');
  return values.length > SHOW ? `${shown}, ... (${values.length} in all)` : shown;
}

function plural(count: number, one: string, many = `${one}s`): string {
  return `${count} ${count === 1 ? one : many}`;
}

/**
 * Checks a log written by the sample: every line in the format, counters 1..expectedLines each
 * exactly once and in file order, and (with `fenced`) fencing tokens strictly increasing.
 */
export function verifyLog(text: string, { expectedLines, fenced }: VerifyOptions): VerifyResult {
  const problems: string[] = [];
  const rawLines = text === '' ? [] : text.split('\n');
  const complete = text === '' || text.endsWith('\n');
  if (complete) rawLines.pop(); // the empty string after the final newline

  let torn = 0;
  const tornExamples: string[] = [];
  const seen = new Map<number, number>();
  const outOfRange: number[] = [];
  const orderBreaks: string[] = [];
  let orderBreakCount = 0;
  let tokenViolations = 0;
  const tokenExamples: string[] = [];
  let previousCounter = 0;
  let previousToken: bigint | undefined;

  rawLines.forEach((line, index) => {
    const lineNo = index + 1;
    const match = LINE_PATTERN.exec(line);
    const cutOff = !complete && index === rawLines.length - 1;
    if (!match || cutOff) {
      torn += 1;
      if (tornExamples.length < 3) {
        const shown = line.length > 80 ? `${line.slice(0, 80)}...` : line;
        tornExamples.push(`line ${lineNo} ${JSON.stringify(shown)}${cutOff && match ? ' (no newline)' : ''}`);
      }
      return;
    }
    const counter = Number(match[1]);
    seen.set(counter, (seen.get(counter) ?? 0) + 1);
    if (counter < 1 || counter > expectedLines) outOfRange.push(counter);
    if (counter !== previousCounter + 1) {
      orderBreakCount += 1;
      if (orderBreaks.length < 3) orderBreaks.push(`line ${lineNo} has ${counter} after ${previousCounter}`);
    }
    previousCounter = counter;

    if (fenced) {
      const tokenText = match[5];
      if (tokenText === '-') {
        tokenViolations += 1;
        if (tokenExamples.length < 3) tokenExamples.push(`line ${lineNo} has no token`);
        return;
      }
      const token = BigInt(tokenText);
      if (previousToken !== undefined && token <= previousToken) {
        tokenViolations += 1;
        if (tokenExamples.length < 3) tokenExamples.push(`line ${lineNo} has ${token} after ${previousToken}`);
      }
      previousToken = token;
    }
  });

  const duplicates = [...seen].filter(([, count]) => count > 1).map(([counter]) => counter);
  duplicates.sort((a, b) => a - b);
  const missing: number[] = [];
  for (let counter = 1; counter <= expectedLines; counter++) if (!seen.has(counter)) missing.push(counter);

  if (rawLines.length !== expectedLines) {
    problems.push(`the log has ${plural(rawLines.length, 'line')}, expected ${expectedLines}`);
  }
  if (torn > 0) {
    problems.push(`${plural(torn, 'torn or malformed line')}: ${tornExamples.join('; ')}${torn > 3 ? '; ...' : ''}`);
  }
  if (duplicates.length > 0) {
    problems.push(
      `${plural(duplicates.length, 'duplicate counter')} (written more than once: lost updates): ${list(duplicates)}`,
    );
  }
  if (missing.length > 0) problems.push(`${plural(missing.length, 'missing counter')}: ${list(missing)}`);
  if (outOfRange.length > 0) {
    problems.push(`${plural(outOfRange.length, 'counter')} outside 1..${expectedLines}: ${list(outOfRange)}`);
  }
  // Out-of-order counters are worth a word of their own only when the counts do not explain them.
  if (orderBreakCount > 0 && duplicates.length === 0 && missing.length === 0 && outOfRange.length === 0) {
    problems.push(`${plural(orderBreakCount, 'counter')} out of file order: ${orderBreaks.join('; ')}`);
  }
  if (tokenViolations > 0) {
    problems.push(
      `${plural(tokenViolations, 'fencing token violation')} (tokens must strictly increase): ${tokenExamples.join('; ')}${tokenViolations > 3 ? '; ...' : ''}`,
    );
  }

  return { ok: problems.length === 0, lines: rawLines.length, duplicates, missing, torn, tokenViolations, problems };
}
