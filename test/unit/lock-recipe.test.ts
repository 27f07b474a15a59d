/** Unit tests of the pure parts of the lock recipe: node names, queue order, fencing tokens. */
import { describe, expect, it } from 'vitest';
import {
  blockerOf,
  fencingToken,
  lockQueue,
  parseNode,
  positionOf,
  sequenceOf,
  sortLockNodes,
} from '../../lib/lock/lock-recipe.js';

const UUID = '3f1c2a9e-6b1d-4d2e-9f7a-0c1b2d3e4f50';
const MAX_SEQUENCE = 2 ** 31 - 1;

describe('sequenceOf', () => {
  it.each([
    [`_c_${UUID}-lock-0000000042`, 42],
    [`_c_${UUID}-lock-0000000000`, 0],
    [`_c_${UUID}-lock-0000000001`, 1],
    [`_c_${UUID}-lock-2147483647`, MAX_SEQUENCE],
    ['lock-0000000007', 7],
    ['member-lock-0000001000', 1000],
  ])('reads the sequence of %j', (name, sequence) => {
    expect(sequenceOf(name)).toBe(sequence);
  });

  it.each([
    ['"lock-" inside the attempt id', '_c_lock-1234-lock-0000000007', 7],
    ['"lock-" + digits inside the attempt id', '_c_lock-0000000099-lock-0000000003', 3],
    ['"lock-" + 10 digits + suffix in the prefix', '_c_lock-0000000099x-lock-0000000004', 4],
    ['two lock markers', '_c_a-lock-0000000001-lock-0000000002', 2],
    ['"lock-" in a custom prefix', 'my-lock-prefix-lock-0000000009', 9],
    ['"unlock-" as the marker', '_c_x-unlock-0000000005', 5],
  ])('uses the last marker when there is %s', (_what, name, sequence) => {
    expect(sequenceOf(name)).toBe(sequence);
  });

  it.each([
    '',
    'leader',
    'config',
    'lock-',
    'lock',
    'lock-42',
    'lock-000000042',
    'lock-00000000042',
    'lock-000000004a',
    'lock- 000000042',
    'lock-+000000042',
    'lock--000000001',
    'lock-0000000042 ',
    'lock-٠٠٠٠٠٠٠٠٤٢',
    `_c_${UUID}-lock-0000000042-extra`,
    `_c_${UUID}-lock-0000000042/child`,
    `_c_${UUID}-LOCK-0000000042`,
    `_c_${UUID}-lock_0000000042`,
    `_c_${UUID}-0000000042`,
    'read-0000000001',
  ])('%j is not a lock node (-1)', (name) => {
    expect(sequenceOf(name)).toBe(-1);
  });
});

describe('sequence overflow', () => {
  it('a negative sequence (after the server counter wraps at 2^31) is still a lock node, so ours is never dropped', () => {
    expect(sequenceOf(`_c_${UUID}-lock--2147483648`)).toBe(-2147483648);
    expect(sortLockNodes([`_c_${UUID}-lock--2147483648`])).toHaveLength(1);
  });
});

describe('sortLockNodes', () => {
  it('orders by sequence, not by name, when the prefixes differ', () => {
    const children = ['_c_zzz-lock-0000000001', '_c_aaa-lock-0000000003', '_c_mmm-lock-0000000002'];
    expect(sortLockNodes(children)).toEqual([
      '_c_zzz-lock-0000000001',
      '_c_mmm-lock-0000000002',
      '_c_aaa-lock-0000000003',
    ]);
    // a sort by whole name would put _c_aaa first
    expect(children.toSorted()[0]).toBe('_c_aaa-lock-0000000003');
  });

  it('orders nodes of other clients and prefix lengths by sequence', () => {
    const children = [
      `_c_${UUID}-lock-0000000010`,
      'x-lock-0000000002',
      'lock-0000000100',
      `_c_00000000-0000-0000-0000-000000000000-lock-0000000009`,
      'member-lock-0000000001',
    ];
    expect(sortLockNodes(children)).toEqual([
      'member-lock-0000000001',
      'x-lock-0000000002',
      `_c_00000000-0000-0000-0000-000000000000-lock-0000000009`,
      `_c_${UUID}-lock-0000000010`,
      'lock-0000000100',
    ]);
  });

  it('drops children that are not lock nodes', () => {
    const children = [
      'leader',
      '_c_b-lock-0000000002',
      'config',
      '_c_a-lock-0000000010',
      'lock-12',
      '_c_c-lock-0000000001x',
    ];
    expect(sortLockNodes(children)).toEqual(['_c_b-lock-0000000002', '_c_a-lock-0000000010']);
  });

  it('compares sequences as numbers across the whole range', () => {
    const children = [`a-lock-${MAX_SEQUENCE}`, 'b-lock-0000000000', 'c-lock-1000000000', 'd-lock-0999999999'];
    expect(sortLockNodes(children)).toEqual([
      'b-lock-0000000000',
      'd-lock-0999999999',
      'c-lock-1000000000',
      `a-lock-${MAX_SEQUENCE}`,
    ]);
  });

  it('does not change its input', () => {
    const children = ['_c_b-lock-0000000002', 'leader', '_c_a-lock-0000000001'];
    const copy = [...children];
    const sorted = sortLockNodes(children);
    expect(children).toEqual(copy);
    expect(sorted).not.toBe(children);
  });

  it('returns [] for an empty directory or one without lock nodes', () => {
    expect(sortLockNodes([])).toEqual([]);
    expect(sortLockNodes(['leader', 'config'])).toEqual([]);
  });

  it('puts the lowest sequence first in a shuffled listing of 1000 nodes', () => {
    const names = Array.from({ length: 1000 }, (_, i) => `_c_${(997 * i) % 1000}-lock-${String(i).padStart(10, '0')}`);
    const shuffled = names.map((name, i) => [name, (i * 7919) % 1000] as const).toSorted((a, b) => a[1] - b[1]);
    expect(shuffled.map(([name]) => name)).not.toEqual(names);
    expect(sortLockNodes(shuffled.map(([name]) => name))).toEqual(names);
  });
});

describe('fencingToken', () => {
  it('is a bigint made of (directory czxid, sequence), with 16 low bits free for local hand-offs', () => {
    expect(typeof fencingToken(1n, 0)).toBe('bigint');
    expect(fencingToken(0n, 0)).toBe(0n);
    expect(fencingToken(1n, 0)).toBe(2n ** 48n);
    expect(fencingToken(5n, 42)).toBe((5n * 2n ** 32n + 42n) * 2n ** 16n);
    expect(fencingToken(5n, MAX_SEQUENCE)).toBe((5n * 2n ** 32n + BigInt(MAX_SEQUENCE)) * 2n ** 16n);
  });

  it('the next node beats every local hand-off of the previous one (at most 65536)', () => {
    expect(fencingToken(5n, 43) > fencingToken(5n, 42) + 65_535n).toBe(true);
  });

  it('strictly increases with the sequence in one directory', () => {
    const sequences = [0, 1, 2, 9, 10, 42, 1_000, 65_535, 65_536, 2 ** 30, MAX_SEQUENCE - 1, MAX_SEQUENCE];
    const tokens = sequences.map((sequence) => fencingToken(0x1_0000_002an, sequence));
    for (let i = 1; i < tokens.length; i++) expect(tokens[i] > tokens[i - 1]).toBe(true);
  });

  it.each([
    [1n, 2n],
    [0x2an, 0x10_0000_0000n],
    [0xffff_ffffn, 0x1_0000_0000n],
    [0x7fff_ffff_ffff_fffen, 0x7fff_ffff_ffff_ffffn],
  ])(
    'a re-created directory (czxid %s -> %s) at sequence 0 beats the old directory at 2^31-1',
    (oldCzxid, newCzxid) => {
      const oldLast = fencingToken(oldCzxid, MAX_SEQUENCE);
      const newFirst = fencingToken(newCzxid, 0);
      expect(newFirst > oldLast).toBe(true);
      expect(newFirst - oldLast).toBeGreaterThan(0n);
    },
  );

  it('never gives two (czxid, sequence) pairs the same token', () => {
    const tokens = new Set<bigint>();
    const czxids = [1n, 2n, 3n, 0xffff_ffffn, 0x1_0000_0000n];
    const sequences = [0, 1, MAX_SEQUENCE - 1, MAX_SEQUENCE];
    for (const czxid of czxids) for (const sequence of sequences) tokens.add(fencingToken(czxid, sequence));
    expect(tokens.size).toBe(czxids.length * sequences.length);
  });
});

describe('kinds and blockers (Shared Locks recipe)', () => {
  it('parses the kind of every marker: ours, Curator mutex and read/write lock, semaphore leases', () => {
    expect(parseNode(`_c_${UUID}-lock-0000000001`)).toMatchObject({ kind: 'write', sequence: 1 });
    expect(parseNode(`_c_${UUID}-__WRIT__0000000002`)).toMatchObject({ kind: 'write', sequence: 2 });
    expect(parseNode(`_c_${UUID}-__READ__0000000003`)).toMatchObject({ kind: 'read', sequence: 3 });
    expect(parseNode(`_c_${UUID}-lease-0000000004`)).toMatchObject({ kind: 'lease', sequence: 4 });
    expect(parseNode('leases')).toBeUndefined();
  });

  it('a write waits for its immediate predecessor of either kind; a read for the last write ahead', () => {
    const queue = lockQueue(['w-lock-0000000001', 'r-__READ__0000000002', 'r-__READ__0000000003', 'w-lock-0000000004']);
    expect(queue.map((_, i) => blockerOf(queue, i)?.sequence)).toEqual([undefined, 1, 1, 3]);
    const readers = lockQueue(['a-__READ__0000000005', 'b-__READ__0000000006']);
    expect(readers.map((_, i) => blockerOf(readers, i))).toEqual([undefined, undefined]); // readers share
  });

  it('positionOf (one pass, no sort) agrees with blockerOf on the sorted queue: 5,000 seeded random listings', () => {
    let seed = 0x2545f491;
    const random = () => {
      seed = (seed * 1_103_515_245 + 12_345) >>> 0;
      return seed / 2 ** 32;
    };
    const markers = ['lock-', '__WRIT__', '__READ__', '__READ__', 'lease-'];
    for (let round = 0; round < 5_000; round += 1) {
      const count = 1 + Math.floor(random() * 12);
      const used = new Set<number>();
      const names: string[] = [];
      while (names.length < count) {
        const sequence = Math.floor(random() * 50);
        if (used.has(sequence)) continue;
        used.add(sequence);
        const marker = markers[Math.floor(random() * (names.length === 0 ? 3 : markers.length))];
        names.push(`_c_p${names.length}-${marker}${String(sequence).padStart(10, '0')}`);
      }
      names.push('leases', 'config', 'x-lock--0000000001'); // two non-nodes, and a negative sequence (the regex path)
      const shuffled = names.toSorted(() => random() - 0.5);
      const ours = names[0];
      const queue = lockQueue(shuffled);
      const index = queue.findIndex((node) => node.name === ours);
      const expected = blockerOf(queue, index)?.name;
      const position = positionOf(shuffled, ours, '_c_none-');
      expect(position.present).toBe(true);
      expect(position.blocker).toBe(expected);
      expect(position.orphans).toEqual([]);
    }
  });

  it('positionOf reports a missing node, and our own earlier attempt as an orphan (never a blocker)', () => {
    expect(positionOf(['x-lock-0000000001'], 'me-lock-0000000002', 'me-').present).toBe(false);
    const position = positionOf(
      ['me-lock-0000000001', 'me-lock-0000000003', 'x-lock-0000000002'],
      'me-lock-0000000003',
      'me-',
    );
    expect(position).toMatchObject({ present: true, orphans: ['me-lock-0000000001'] });
    expect(position.blocker).toBe('x-lock-0000000002');
  });
});
