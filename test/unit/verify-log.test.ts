/**
 * The verifiers of the sample and of the chaos run (pure): the log's verifier (sample/verify.ts),
 * the chaos run's fenced store (chaos/fenced-store.ts), and its belief-interval check
 * (chaos/beliefs.ts), which is what tells a broken lock from a working one: the fenced store
 * alone keeps the log correct whatever the lock does.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { clip, effectiveEnd, findOverlaps, type Belief, type PathRule } from '../../chaos/beliefs.js';
import { FencedStore } from '../../chaos/fenced-store.js';
import { formatLine, lastCounter, verifyLog } from '../../sample/verify.js';

/** A log of `counters` in file order, with the given tokens (default: increasing). */
function log(counters: number[], tokens: (bigint | '-')[] = counters.map((_, i) => (7n << 32n) + BigInt(i))): string {
  return counters
    .map((counter, i) =>
      formatLine({ counter, workerId: (i % 3) + 1, pid: 1000 + (i % 3), host: 'box-1', token: String(tokens[i]) }),
    )
    .join('');
}

describe('verifyLog', () => {
  it('accepts a good log', () => {
    const result = verifyLog(log([1, 2, 3, 4, 5]), { expectedLines: 5, fenced: true });
    expect(result).toEqual({
      ok: true,
      lines: 5,
      duplicates: [],
      missing: [],
      torn: 0,
      tokenViolations: 0,
      problems: [],
    });
  });

  it('accepts an unfenced log without tokens when not fenced', () => {
    const text = log([1, 2, 3], ['-', '-', '-']);
    expect(verifyLog(text, { expectedLines: 3, fenced: false }).ok).toBe(true);
    const fenced = verifyLog(text, { expectedLines: 3, fenced: true });
    expect(fenced.ok).toBe(false);
    expect(fenced.tokenViolations).toBe(3);
  });

  it('reports a duplicate counter (a lost update) and the counter it pushed out', () => {
    const result = verifyLog(log([1, 2, 2, 3]), { expectedLines: 4, fenced: true });
    expect(result.ok).toBe(false);
    expect(result.lines).toBe(4);
    expect(result.duplicates).toEqual([2]);
    expect(result.missing).toEqual([4]);
    expect(result.problems.join('\n')).toMatch(/1 duplicate counter .*: 2/);
    expect(result.problems.join('\n')).toMatch(/1 missing counter: 4/);
  });

  it('reports a gap', () => {
    const result = verifyLog(log([1, 2, 4, 5]), { expectedLines: 5, fenced: true });
    expect(result.ok).toBe(false);
    expect(result.missing).toEqual([3]);
    expect(result.duplicates).toEqual([]);
    expect(result.problems[0]).toBe('the log has 4 lines, expected 5');
  });

  it('reports counters out of file order', () => {
    const result = verifyLog(log([1, 3, 2]), { expectedLines: 3, fenced: false });
    expect(result.ok).toBe(false);
    expect(result.duplicates).toEqual([]);
    expect(result.missing).toEqual([]);
    expect(result.problems.join('\n')).toMatch(/out of file order: line 2 has 3 after 1/);
  });

  it('reports counters beyond the expected range', () => {
    const result = verifyLog(log([1, 2, 3]), { expectedLines: 2, fenced: false });
    expect(result.ok).toBe(false);
    expect(result.problems.join('\n')).toMatch(/1 counter outside 1\.\.2: 3/);
  });

  it('reports a torn line (two writes interleaved) and keeps checking the others', () => {
    const good = log([1, 2, 3]).split('\n');
    good[1] = `${good[1].slice(0, 20)}3 worker=2 pid=1 host=box-1 token=5`;
    const result = verifyLog(good.join('\n'), { expectedLines: 3, fenced: true });
    expect(result.ok).toBe(false);
    expect(result.torn).toBe(1);
    expect(result.missing).toEqual([2]);
    expect(result.problems.join('\n')).toMatch(/1 torn or malformed line: line 2 /);
  });

  it('counts a last line without its newline as torn', () => {
    const result = verifyLog(log([1, 2]).slice(0, -1), { expectedLines: 2, fenced: true });
    expect(result.ok).toBe(false);
    expect(result.torn).toBe(1);
    expect(result.lines).toBe(2);
  });

  it('counts empty lines as torn', () => {
    const [first, second] = log([1, 2]).split(/(?<=\n)/);
    const result = verifyLog(`${first}\n${second}`, { expectedLines: 2, fenced: true });
    expect(result.torn).toBe(1);
    expect(result.ok).toBe(false);
  });

  it('reports a fencing token going backwards', () => {
    const high = (9n << 32n) + 5n;
    const result = verifyLog(log([1, 2, 3], [high, high - 1n, high + 1n]), { expectedLines: 3, fenced: true });
    expect(result.ok).toBe(false);
    expect(result.tokenViolations).toBe(1);
    expect(result.duplicates).toEqual([]);
    expect(result.problems.join('\n')).toMatch(/1 fencing token violation .*: line 2 has \d+ after \d+/);
  });

  it('reports a repeated fencing token (strictly increasing)', () => {
    const result = verifyLog(log([1, 2], [42n, 42n]), { expectedLines: 2, fenced: true });
    expect(result.tokenViolations).toBe(1);
  });

  it('compares tokens as big integers, beyond 2^53', () => {
    const base = 2n ** 60n;
    expect(verifyLog(log([1, 2], [base + 1n, base + 2n]), { expectedLines: 2, fenced: true }).ok).toBe(true);
    expect(verifyLog(log([1, 2], [base + 2n, base + 1n]), { expectedLines: 2, fenced: true }).tokenViolations).toBe(1);
  });

  it('reports an empty log', () => {
    const result = verifyLog('', { expectedLines: 3, fenced: true });
    expect(result).toMatchObject({ ok: false, lines: 0, missing: [1, 2, 3], torn: 0 });
  });
});

describe('lastCounter', () => {
  it('reads the counter of the last complete line', () => {
    expect(lastCounter(log([7, 8, 9]))).toBe(9);
    expect(lastCounter(`${log([7, 8])}9 worker=1 pid`)).toBe(8); // a line still being written
    expect(lastCounter('')).toBe(0);
    expect(lastCounter('ker=1 pid=2 host=h token=-\n')).toBe(0); // cut off at the front
  });
});

describe('FencedStore (chaos run)', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fenced-store-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  const writer = (workerId: number) => ({ workerId, pid: 100 + workerId, host: 'box-1' });

  it('refuses a read with a token below one already seen, and a write below one read since', () => {
    const store = new FencedStore(path.join(dir, 'a.log'));
    expect(store.read(writer(1), 10n)).toEqual({ ok: true, counter: 0 });
    expect(store.read(writer(2), 11n)).toEqual({ ok: true, counter: 0 });
    expect(store.write(writer(1), 10n, 1)).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/read by a later holder/),
    });
    expect(store.read(writer(1), 10n)).toMatchObject({ ok: false });
    expect(store.write(writer(2), 11n, 1)).toEqual({ ok: true });
    expect(store.write(writer(2), 11n, 2)).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/<= last written/),
    });
    expect(store.refused.map((r) => r.op)).toEqual(['write', 'read', 'write']);
  });

  it('keeps the log correct with no lock at all: the log alone cannot tell a broken lock (hence belief intervals)', () => {
    const store = new FencedStore(path.join(dir, 'b.log'));
    // Two "holders" at once, interleaved: read, read, write, write, with growing tokens.
    let token = 0n;
    for (let round = 0; round < 50; round += 1) {
      const a = (token += 1n);
      const b = (token += 1n);
      const readA = store.read(writer(1), a);
      const readB = store.read(writer(2), b);
      if (readA.ok) store.write(writer(1), a, readA.counter + 1);
      if (readB.ok) store.write(writer(2), b, readB.counter + 1);
    }
    expect(store.refused.length).toBe(50);
    const verdict = verifyLog(fs.readFileSync(store.file, 'utf8'), { expectedLines: store.accepted, fenced: true });
    expect(verdict.ok).toBe(true);
  });
});

describe('belief intervals (chaos run)', () => {
  let nextId = 1;
  const belief = (worker: number, start: number, end: number | undefined, mode: Belief['mode'] = 'write'): Belief => ({
    worker,
    pid: 100 + worker,
    id: nextId++,
    path: '/p',
    mode,
    op: 'test',
    token: String(start),
    start: BigInt(start),
    end: end === undefined ? undefined : BigInt(end),
    how: end === undefined ? undefined : 'released',
  });
  const rules = (rule: PathRule) => ({ '/p': rule });
  const exclusive = rules({ kind: 'exclusive' });

  it('exclusive: one after the other is fine, touching included; any overlap is found, with its length', () => {
    expect(findOverlaps([belief(1, 0, 10), belief(2, 10, 20), belief(1, 25, 30)], exclusive, 100n)).toEqual([]);
    const overlaps = findOverlaps([belief(1, 0, 10), belief(2, 7, 20)], exclusive, 100n);
    expect(overlaps).toHaveLength(1);
    expect(overlaps[0]).toMatchObject({ path: '/p', ns: 3n, later: { worker: 2 }, earlier: [{ worker: 1 }] });
  });

  it('an open belief counts as held until the end of the run', () => {
    expect(findOverlaps([belief(1, 0, undefined), belief(2, 50, 60)], exclusive, 100n)).toHaveLength(1);
    expect(findOverlaps([belief(1, 0, undefined), belief(2, 150, 160)], exclusive, 100n)).toEqual([]);
  });

  it('read/write: readers share; a writer excludes readers and writers', () => {
    const rw = rules({ kind: 'read-write' });
    expect(findOverlaps([belief(1, 0, 10, 'read'), belief(2, 5, 15, 'read')], rw, 100n)).toEqual([]);
    expect(findOverlaps([belief(1, 0, 10, 'read'), belief(2, 5, 15, 'write')], rw, 100n)).toHaveLength(1);
    expect(findOverlaps([belief(1, 0, 10, 'write'), belief(2, 5, 15, 'read')], rw, 100n)).toHaveLength(1);
  });

  it('a semaphore of N admits N at once, not N + 1', () => {
    const sem = rules({ kind: 'semaphore', leases: 2 });
    const two = [belief(1, 0, 10, 'lease'), belief(2, 1, 10, 'lease'), belief(3, 10, 20, 'lease')];
    expect(findOverlaps(two, sem, 100n)).toEqual([]);
    const three = [belief(1, 0, 10, 'lease'), belief(2, 1, 10, 'lease'), belief(3, 5, 20, 'lease')];
    expect(findOverlaps(three, sem, 100n)).toMatchObject([{ what: '3 holders of a 2-lease semaphore', ns: 5n }]);
  });

  it('a clipped belief counts up to its clip; a clip before its start leaves nothing held; the earliest clip wins', () => {
    const paused = belief(1, 0, 50);
    clip(paused, 20n, 'paused');
    expect(effectiveEnd(paused, 100n)).toBe(20n);
    expect(findOverlaps([paused, belief(2, 30, 40)], exclusive, 100n)).toEqual([]);
    clip(paused, 30n, 'later');
    expect(paused.clipped).toEqual({ at: 20n, why: 'paused' });
    const after = belief(1, 60, 70);
    clip(after, 20n, 'same session, after the pause');
    expect(effectiveEnd(after, 100n)).toBe(60n);
    expect(findOverlaps([after, belief(2, 55, 65)], exclusive, 100n)).toEqual([]);
    const ended = belief(1, 0, 10);
    clip(ended, 20n, 'after its end');
    expect(ended.clipped).toBeUndefined();
  });
});
