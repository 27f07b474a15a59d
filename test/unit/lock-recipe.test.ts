/** Unit tests of the pure parts of the lock recipe: node names, queue order, fencing tokens. */
import { performance } from 'node:perf_hooks';
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
import { Attempt } from '../../lib/lock/recipe/attempt.js';
import { mayBlockOurs } from '../../lib/lock/recipe/queue-order.js';

/** A seeded pseudo-random generator in [0, 1). */
function seeded(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state * 1_103_515_245 + 12_345) >>> 0;
    return state / 2 ** 32;
  };
}

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
    'lock--00000001',
    'lock---000000001',
    'lock-4294967296',
    'lock-9999999999',
    'lock-0000000042 ',
    'lock-٠٠٠٠٠٠٠٠٤٢',
    `_c_${UUID}-lock-0000000042-extra`,
    `_c_${UUID}-lock-0000000042/child`,
    `_c_${UUID}-LOCK-0000000042`,
    `_c_${UUID}-lock_0000000042`,
    `_c_${UUID}-0000000042`,
    'read-0000000001',
  ])('%j is not a lock node (NaN)', (name) => {
    expect(sequenceOf(name)).toBeNaN();
  });
});

describe('sequences past 2^31 - 1 (the server counter wrapped or saturated)', () => {
  it.each([
    [`_c_${UUID}-lock--2147483648`, -2147483648],
    [`_c_${UUID}-lock--1000000000`, -1000000000],
    [`_c_${UUID}-lock--999999999`, -999999999],
    [`_c_${UUID}-lock--000000001`, -1],
    [`_c_${UUID}-__READ__-2147483647`, -2147483647],
    [`_c_${UUID}-__WRIT__-000000042`, -42],
    [`_c_${UUID}-lease--2147483648`, -2147483648],
    [`_c_${UUID}-lock-3000000000`, 3000000000 - 2 ** 32],
  ])('%j (Java %%010d of a negative counter) is a node with sequence %d', (name, sequence) => {
    expect(sequenceOf(name)).toBe(sequence);
  });

  it('orders them as unsigned: -2147483648 comes after 2147483647, -1 last', () => {
    const children = [
      'e-lock--000000001',
      'c-lock--2147483648',
      'a-lock-0000000005',
      'd-lock--2147483647',
      'b-lock-2147483647',
    ];
    expect(sortLockNodes(children)).toEqual([
      'a-lock-0000000005',
      'b-lock-2147483647',
      'c-lock--2147483648',
      'd-lock--2147483647',
      'e-lock--000000001',
    ]);
  });

  it('equal sequences (ZooKeeper 3.8 names every child 2147483647 once saturated) block each other one way: by czxid', () => {
    const holder = 'z-lock-2147483647';
    const newcomer = 'a-lock-2147483647'; // sorts first by name, but was created later
    expect(positionOf([holder, newcomer], newcomer, 'me-')).toMatchObject({ unordered: true });
    const czxids = new Map([
      [holder, 10n],
      [newcomer, 11n],
    ]);
    expect(positionOf([holder, newcomer], newcomer, 'me-', czxids).blocker).toBe(holder);
    expect(positionOf([holder, newcomer], holder, 'me-', czxids).blocker).toBeUndefined();
    expect(lockQueue([newcomer, holder], undefined, czxids).map((node) => node.name)).toEqual([holder, newcomer]);
  });

  it('needs creation order only when a node that may block ours, or ours, is in the wrapped range', () => {
    expect(positionOf(['a-lock-0000000001', 'b-lock-0000000002'], 'b-lock-0000000002', 'me-').unordered).toBe(false);
    expect(positionOf(['a-lock-2147483647'], 'a-lock-2147483647', 'me-').unordered).toBe(false); // alone
    expect(positionOf(['a-lock-0000000001', 'b-lock--000000005'], 'b-lock--000000005', 'me-').unordered).toBe(true);
    expect(positionOf(['a-lock--000000001', 'b-lock-0000000002'], 'b-lock-0000000002', 'me-').unordered).toBe(true);
    // a read is blocked by writes only: a wrapped read ahead does not matter
    expect(positionOf(['a-__READ__-000000001', 'b-__READ__0000000002'], 'b-__READ__0000000002', 'me-').unordered).toBe(
      false,
    );
    // leases are not in the read/write queue
    expect(positionOf(['a-lease--000000001', 'b-lock-0000000002'], 'b-lock-0000000002', 'me-').unordered).toBe(false);
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
  it('is the granting listing pzxid shifted left 16 bits: the low bits stay free for local hand-offs', () => {
    expect(typeof fencingToken(1n)).toBe('bigint');
    expect(fencingToken(0n)).toBe(0n);
    expect(fencingToken(1n)).toBe(65_536n);
    expect(fencingToken(0x1_0000_002an)).toBe(0x1_0000_002an * 65_536n);
  });

  it('a later pzxid beats every local hand-off (at most 65535) of an earlier one', () => {
    expect(fencingToken(43n) > fencingToken(42n) + 65_535n).toBe(true);
    expect(fencingToken(0x7fff_ffff_ffff_ffffn) > fencingToken(0x7fff_ffff_ffff_fffen) + 65_535n).toBe(true);
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
    const random = seeded(0x2545f491);
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
      names.push('leases', 'config', 'x-lease--000000001'); // two non-nodes, and a wrapped lease (not in the queue)
      const shuffled = names.toSorted(() => random() - 0.5);
      const ours = names[0];
      const queue = lockQueue(shuffled);
      const index = queue.findIndex((node) => node.name === ours);
      const expected = blockerOf(queue, index)?.name;
      const position = positionOf(shuffled, ours, '_c_none-');
      expect(position).toMatchObject({ present: true, blocker: expected, orphans: [], unordered: false });
    }
  });

  it('in the wrapped range, with the czxids it asked for, positionOf finds the blocker of creation order: 5,000 listings', () => {
    const random = seeded(0x1234567);
    const markers = ['lock-', '__WRIT__', '__READ__', '__READ__'];
    // What a saturated ZooKeeper 3.8 names children once its counter is at 2^31 - 1 (creates in flight at once).
    const wrappedNames = ['2147483647', '-2147483648', '-2147483647', '-2147483646'];
    for (let round = 0; round < 5_000; round += 1) {
      const count = 2 + Math.floor(random() * 10);
      const normal = Math.floor(random() * count); // created before the counter reached 2^31 - 1
      const nodes = Array.from({ length: count }, (_, i) => {
        const sequence =
          i < normal
            ? String(2147483640 - normal + i).padStart(10, '0')
            : wrappedNames[Math.floor(random() * wrappedNames.length)];
        const marker = markers[Math.floor(random() * markers.length)];
        return { name: `_c_p${Math.floor(random() * 1e6)}x${i}-${marker}${sequence}`, czxid: BigInt(100 + i) };
      });
      const creationQueue = lockQueue(
        nodes.map((node) => node.name),
        undefined,
        new Map(nodes.map((node) => [node.name, node.czxid])),
      );
      expect(creationQueue.map((node) => node.name)).toEqual(nodes.map((node) => node.name));
      const ours = nodes[Math.floor(random() * count)].name;
      const shuffled = nodes.map((node) => node.name).toSorted(() => random() - 0.5);
      const first = positionOf(shuffled, ours, '_c_none-');
      const wrapped = new Set(nodes.slice(normal).map((node) => node.name));
      const lookups = mayBlockOurs(shuffled, ours, '_c_none-');
      expect(first.unordered).toBe(lookups.length > 0 && [ours, ...lookups].some((name) => wrapped.has(name)));
      if (!first.unordered) continue;
      const czxids = new Map(
        nodes.filter((node) => [...lookups, ours].includes(node.name)).map((n) => [n.name, n.czxid]),
      );
      const expected = blockerOf(
        creationQueue,
        creationQueue.findIndex((node) => node.name === ours),
      )?.name;
      expect(positionOf(shuffled, ours, '_c_none-', czxids)).toMatchObject({ blocker: expected, unordered: false });
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

describe('Attempt: every wait bounded by the deadline and the signal', () => {
  const never = new AbortController().signal;

  it('a request given up on has its rejection handled, and its late outcome goes to the late handler', async () => {
    const attempt = new Attempt(performance.now() - 1, undefined); // already due
    let rejectLate!: (error: Error) => void;
    const request = new Promise<string>((_, reject) => (rejectLate = reject));
    const late: unknown[] = [];
    await expect(attempt.reply(request, { error: (error) => late.push(error) })).rejects.toMatchObject({
      why: 'timeout',
      unavailable: true,
    });
    rejectLate(new Error('late'));
    await new Promise((resolve) => setTimeout(resolve, 0)); // (an unhandled rejection would trip here)
    expect(late).toEqual([new Error('late')]);
    attempt.end();
  });

  it('a late value (e.g. a created node) reaches the late handler, to be undone', async () => {
    const controller = new AbortController();
    const attempt = new Attempt(Infinity, controller.signal);
    let resolveLate!: (value: string) => void;
    const request = new Promise<string>((resolve) => (resolveLate = resolve));
    const late: string[] = [];
    const waiting = attempt.reply(request, { value: (value) => late.push(value) });
    controller.abort();
    await expect(waiting).rejects.toMatchObject({ why: 'aborted', unavailable: true });
    resolveLate('/dir/node');
    await Promise.resolve();
    expect(late).toEqual(['/dir/node']);
    attempt.end();
  });

  it('waiting for another holder is a busy give-up (not unavailable); the session end resolves it', async () => {
    const attempt = new Attempt(performance.now() + 20, undefined);
    await expect(attempt.wait(new Promise<void>(() => undefined), never)).rejects.toMatchObject({
      why: 'timeout',
      unavailable: false,
    });
    attempt.end();
    const live = new Attempt(Infinity, undefined);
    await expect(live.wait(new Promise<void>(() => undefined), AbortSignal.abort())).resolves.toBeUndefined();
    live.end();
  });

  it('a deadline 30 days away (past setTimeout 2^31 - 1 ms) does not end the wait early', async () => {
    const attempt = new Attempt(performance.now() + 30 * 24 * 3_600_000, undefined);
    const woken = new Promise<void>((resolve) => setTimeout(resolve, 30));
    await expect(attempt.wait(woken, never)).resolves.toBeUndefined();
    attempt.end();
  });

  it('back-off: the first retry at once, later ones wait, never past the deadline', async () => {
    const attempt = new Attempt(performance.now() + 200, undefined);
    const first = await Promise.race([
      attempt.failed().then(() => 'at once'),
      new Promise((resolve) => setImmediate(() => resolve('after a pause'))),
    ]);
    expect(first).toBe('at once');
    let failures = 1;
    const error = await (async () => {
      for (;;) {
        await attempt.failed();
        failures += 1;
      }
    })().catch((e: unknown) => e);
    expect(error).toMatchObject({ why: 'timeout', unavailable: true });
    // 10, 20, 40, 80 ms fit in 200 ms, the next (160 ms) is cut by the deadline.
    expect(failures).toBeGreaterThanOrEqual(3);
    expect(failures).toBeLessThanOrEqual(5);
    attempt.end();
  });
});
