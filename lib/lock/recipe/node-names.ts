/**
 * The names of the nodes in a lock directory: `<prefix><marker><sequence>`, where the marker says
 * the node's kind and the server appends the sequence (its directory's child counter, written with
 * Java's `%010d`: 10 digits, or a sign and 9 or 10 digits once the counter went past 2^31 - 1).
 */
import { randomBytes } from 'node:crypto';

/**
 * What a node in a lock directory is: `write` (exclusive: ours and Curator's mutex `lock-`, Curator's
 * write lock `__WRIT__`), `read` (shared: `__READ__`) or `lease` (a semaphore lease, `lease-`).
 */
export type NodeKind = 'write' | 'read' | 'lease';

/** The marker our nodes of each kind carry. */
export const MARKER: Record<NodeKind, string> = { write: 'lock-', read: '__READ__', lease: 'lease-' };

/** One node of a lock directory, parsed. */
export interface QueueNode {
  name: string;
  kind: NodeKind;
  /** The sequence as the server wrote it (negative once the directory's counter went past 2^31 - 1). */
  sequence: number;
}

/** Kind codes of a packed scan result (see {@link scanNode}). */
export const WRITE = 0;
export const READ = 1;
export const LEASE = 2;
const KINDS: readonly NodeKind[] = ['write', 'read', 'lease'];
const TWO_32 = 2 ** 32;

/** The kind code of the marker that ends right before index `end` of `name`, or -1. */
function markerBefore(name: string, end: number): number {
  if (name.endsWith('lock-', end) || name.endsWith('__WRIT__', end)) return WRITE;
  if (name.endsWith('__READ__', end)) return READ;
  if (name.endsWith('lease-', end)) return LEASE;
  return -1;
}

/**
 * Kind and sequence of a node name in one number, without a regex or an allocation (a waiter scans
 * the whole queue on every wake-up): `unsigned sequence * 4 + kind code`, or NaN when the name is
 * not a lock, read or lease node. The unsigned sequence reads a negative one as the server's
 * counter past 2^31 - 1 (-2147483648 is 2^31); decode with {@link unsignedOf} and {@link kindOf}.
 */
export function scanNode(name: string): number {
  const n = name.length;
  let digits = 0;
  while (digits < 11 && digits < n) {
    const code = name.charCodeAt(n - 1 - digits);
    if (code < 48 || code > 57) break;
    digits += 1;
  }
  const start = n - digits;
  let kind = digits === 10 ? markerBefore(name, start) : -1;
  let negative = false;
  if (kind < 0 && (digits === 9 || digits === 10) && name.charCodeAt(start - 1) === 45 /* - */) {
    negative = true;
    kind = markerBefore(name, start - 1);
  }
  if (kind < 0) return Number.NaN;
  let value = 0;
  for (let i = start; i < n; i += 1) value = value * 10 + name.charCodeAt(i) - 48;
  const unsigned = negative ? TWO_32 - value : value;
  return unsigned >= 0 && unsigned < TWO_32 ? unsigned * 4 + kind : Number.NaN;
}

/** The unsigned 32-bit sequence of a {@link scanNode} result. */
export function unsignedOf(code: number): number {
  return (code - (code % 4)) / 4;
}

/** The kind code (WRITE, READ, LEASE) of a {@link scanNode} result. */
export function kindOf(code: number): number {
  return code % 4;
}

/** Kind and sequence of a node name, or undefined when the name is not a lock, read or lease node. */
export function parseNode(name: string): QueueNode | undefined {
  const code = scanNode(name);
  if (Number.isNaN(code)) return undefined;
  return { name, kind: KINDS[kindOf(code)], sequence: unsignedOf(code) | 0 };
}

/** Sequence number of a lock node name (negative past 2^31 - 1), or NaN when the name is not a lock node. */
export function sequenceOf(name: string): number {
  const code = scanNode(name);
  return Number.isNaN(code) ? Number.NaN : unsignedOf(code) | 0;
}

/**
 * A new attempt id in Curator's UUID layout (8-4-4-4-12 hex digits): 80 random bits drawn once
 * per process, then a 48-bit counter. Unique per attempt like a random UUID, without the cost of
 * one (its entropy refills showed in the profile of an acquisition).
 */
export function attemptId(): string {
  attempts += 1;
  return `${PROCESS_ID}${attempts.toString(16).padStart(12, '0')}`;
}
const PROCESS_ID = (() => {
  const hex = randomBytes(10).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-`;
})();
let attempts = 0;

/** The last segment of a path. */
export function basename(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}
