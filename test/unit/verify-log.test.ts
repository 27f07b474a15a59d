import { describe, expect, it } from 'vitest';
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
