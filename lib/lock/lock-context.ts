import { AsyncLocalStorage } from 'node:async_hooks';
import { ReentrantLock, type LockHandle, type OuterLock } from './lock-handle.js';
import type { NodeKind } from './lock-recipe.js';

/**
 * The locks held by the current async call chain (for reentrancy and `LockService.current()`),
 * keyed by path, and for semaphore leases by path + LEASE (a lease and a lock on one path are
 * different things: the lease's nodes live under `<path>/leases`).
 */
const storage = new AsyncLocalStorage<ReadonlyMap<string, LockHandle>>();
const LEASE = '\u0000lease';

function keyOf(path: string, kind: NodeKind): string {
  return kind === 'lease' ? path + LEASE : path;
}

/**
 * The handle this call chain holds for `path` that covers a request of `kind`, if any and not
 * yet released or lost: a write covers reads and writes, a read covers reads, a lease covers a
 * lease.
 */
export function heldInContext(path: string, kind: NodeKind = 'write'): LockHandle | undefined {
  const handle = storage.getStore()?.get(keyOf(path, kind));
  return handle && !handle.released ? handle : undefined;
}

/**
 * For reentrancy: the outer lock (the one that holds the node) behind what this call chain holds
 * for `path` and `kind`, as long as its holder has not released it. A lost or revoked one is
 * returned too: the caller fails the nested call with its loss instead of queueing behind it. A
 * read held when a write is asked for is returned too: the caller must refuse the upgrade.
 */
export function outerInContext(path: string, kind: NodeKind = 'write'): OuterLock | undefined {
  const handle = storage.getStore()?.get(keyOf(path, kind));
  if (!handle) return undefined;
  const outer = handle instanceof ReentrantLock ? handle.outer : (handle as OuterLock);
  return outer.releaseCalled ? undefined : outer;
}

/** Whatever this call chain holds on `path` (lock first, then lease), not released or lost. */
export function anyHeldInContext(path: string): LockHandle | undefined {
  return heldInContext(path, 'write') ?? heldInContext(path, 'lease');
}

/** The innermost lock this call chain holds (the last one entered that is not released or lost), if any. */
export function innermostInContext(): LockHandle | undefined {
  const held = storage.getStore();
  if (!held) return undefined;
  let last: LockHandle | undefined;
  for (const handle of held.values()) if (!handle.released) last = handle;
  return last;
}

/** Runs `fn` with `handles` added to the call chain's held locks. */
export function runWithLock<T>(handles: LockHandle | readonly LockHandle[], fn: () => T): T {
  const next = new Map(storage.getStore());
  for (const handle of Array.isArray(handles) ? handles : [handles as LockHandle]) {
    const key = keyOf(handle.path, handle.kind);
    next.delete(key);
    next.set(key, handle);
  }
  return storage.run(next, fn);
}
