/**
 * The order of a lock queue, in one rule ({@link compareQueued}), and what follows from it: who
 * blocks whom ({@link positionOf} in one pass, {@link blockerOf} on a sorted queue) and the
 * fencing token.
 *
 * The queue order is creation order. The sequence the server appends gives it while the
 * directory's child counter is below 2^31 - 1. Past that, it does not: ZooKeeper 3.8 keeps the
 * counter at 2^31 - 1 and names new children `2147483647` or, when creates are in flight at once,
 * `-2147483648`, `-2147483647`, ... in no particular order and not uniquely; a server whose counter
 * wraps names them `-2147483648` onward. Nodes named in that range (the "wrapped range": unsigned
 * 2^31 - 1 and up) are therefore ordered by their creation zxid (czxid), which the recipe reads
 * with `exists` only when a listing has such a node that matters; everything else compares the
 * sequence as an unsigned 32-bit number (-2147483648 after 2147483647), then the name.
 */
import {
  kindOf,
  LEASE,
  parseNode,
  READ,
  scanNode,
  unsignedOf,
  WRITE,
  type NodeKind,
  type QueueNode,
} from './node-names.js';

/** Unsigned sequences from here on are in the wrapped range: not in creation order. */
export const WRAPPED_FROM = 2 ** 31 - 1;

/** Creation zxids of nodes, by name, for the wrapped range. */
export type CreationOrder = ReadonlyMap<string, bigint>;

/**
 * THE queue order: negative when node `a` is ahead of node `b` (created before it), positive when
 * behind, 0 for the same node. By creation zxid when both are known, else by unsigned sequence,
 * then by name (only the wrapped range has equal sequences, and there the recipe knows the czxids).
 */
export function compareQueued(
  aUnsigned: number,
  aName: string,
  bUnsigned: number,
  bName: string,
  czxids?: CreationOrder,
): number {
  if (czxids) {
    const a = czxids.get(aName);
    const b = czxids.get(bName);
    if (a !== undefined && b !== undefined && a !== b) return a < b ? -1 : 1;
  }
  if (aUnsigned !== bUnsigned) return aUnsigned - bUnsigned;
  return aName < bName ? -1 : aName > bName ? 1 : 0;
}

/** Whether a node of kind `theirs` can keep a node of kind `ours` from holding (kind codes). */
export function mayBlock(ours: number, theirs: number): boolean {
  return theirs !== LEASE && (ours !== READ || theirs === WRITE);
}

/**
 * The nodes of a directory listing of `kinds`, in queue order ({@link compareQueued}).
 * Default: the read/write queue of a lock directory.
 */
export function lockQueue(
  children: readonly string[],
  kinds: readonly NodeKind[] = QUEUE_KINDS,
  czxids?: CreationOrder,
): QueueNode[] {
  const nodes: QueueNode[] = [];
  for (const name of children) {
    const node = parseNode(name);
    if (node && kinds.includes(node.kind)) nodes.push(node);
  }
  return nodes.toSorted((a, b) => compareQueued(a.sequence >>> 0, a.name, b.sequence >>> 0, b.name, czxids));
}
const QUEUE_KINDS: readonly NodeKind[] = ['write', 'read'];

/** Names of the read/write lock nodes of a listing, in queue order. */
export function sortLockNodes(children: readonly string[]): string[] {
  return lockQueue(children).map((node) => node.name);
}

/**
 * The node that keeps `queue[index]` from holding the lock, or undefined when it holds it:
 * for a write, its immediate predecessor; for a read, the last write ahead of it.
 */
export function blockerOf<T extends { kind: NodeKind }>(queue: readonly T[], index: number): T | undefined {
  if (queue[index].kind !== 'read') return index > 0 ? queue[index - 1] : undefined;
  for (let i = index - 1; i >= 0; i -= 1) if (queue[i].kind === 'write') return queue[i];
  return undefined;
}

/** Where our node stands in a listing of its read/write lock directory. */
export interface Position {
  /** Our node is in the listing. */
  present: boolean;
  /** The node that keeps ours from holding (as {@link blockerOf} on the sorted queue), if any. */
  blocker: string | undefined;
  /** Nodes of an earlier attempt of ours (`prefix`), to delete. */
  orphans: string[];
  /**
   * The order depends on creation zxids that were not given: a node that may block ours, or ours,
   * is in the wrapped range. Look them up ({@link mayBlockOurs}) and ask again with them.
   */
  unordered: boolean;
}

/**
 * Where our node `ours` stands in a listing of its read/write lock directory, in one pass (no
 * sort: the listing is as long as the queue, and a waiter reads it on every wake-up).
 */
export function positionOf(
  children: readonly string[],
  ours: string,
  prefix: string,
  czxids?: CreationOrder,
): Position {
  const mine = scanNode(ours);
  const mineUnsigned = unsignedOf(mine);
  const ourKind = kindOf(mine);
  let wrapped = mineUnsigned >= WRAPPED_FROM;
  let others = 0;
  let present = false;
  let blocker: string | undefined;
  let blockerUnsigned = 0;
  const orphans: string[] = [];
  for (const name of children) {
    if (name === ours) {
      present = true;
      continue;
    }
    const code = scanNode(name);
    if (Number.isNaN(code) || kindOf(code) === LEASE) continue;
    if (name.startsWith(prefix)) {
      orphans.push(name);
      continue;
    }
    if (!mayBlock(ourKind, kindOf(code))) continue;
    const unsigned = unsignedOf(code);
    others += 1;
    if (unsigned >= WRAPPED_FROM) wrapped = true;
    if (compareQueued(unsigned, name, mineUnsigned, ours, czxids) >= 0) continue;
    if (blocker === undefined || compareQueued(unsigned, name, blockerUnsigned, blocker, czxids) > 0) {
      blocker = name;
      blockerUnsigned = unsigned;
    }
  }
  return { present, blocker, orphans, unordered: czxids === undefined && wrapped && others > 0 };
}

/** The nodes of a listing that may block `ours` (not ours, not of our attempt): whose czxids an unordered position needs. */
export function mayBlockOurs(children: readonly string[], ours: string, prefix: string): string[] {
  const ourKind = kindOf(scanNode(ours));
  return children.filter((name) => {
    const code = scanNode(name);
    return name !== ours && !name.startsWith(prefix) && !Number.isNaN(code) && mayBlock(ourKind, kindOf(code));
  });
}

/**
 * Fencing token: the directory's pzxid (the zxid of the last create or delete of a child, session
 * ends included) in the listing that granted the lock, shifted left 16 bits: the low bits number
 * the local holders of one node when the `coalesce` option passes it around in one process (0 for
 * the node's first holder). The previous holder's node was in its own granting listing and is
 * gone from ours: its deletion moved the pzxid past every zxid that listing saw, so the token of
 * the next holder is strictly greater, across directory re-creations and counter wraps.
 */
export function fencingToken(pzxid: bigint): bigint {
  return pzxid << 16n;
}
