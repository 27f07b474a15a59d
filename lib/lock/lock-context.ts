import { AsyncLocalStorage } from 'node:async_hooks';
import type { LockHandle } from './lock-handle.js';
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
 * lease. A read held when a write is asked for is returned too: the caller must refuse the upgrade.
 */
export function heldInContext(path: string, kind: NodeKind = 'write'): LockHandle | undefined {
  const handle = storage.getStore()?.get(keyOf(path, kind));
  return handle && !handle.released ? handle : undefined;
}

/** Whatever this call chain holds on `path` (lock first, then lease). */
export function anyHeldInContext(path: string): LockHandle | undefined {
  return heldInContext(path, 'write') ?? heldInContext(path, 'lease');
}

/** The innermost lock held by this call chain (the last one entered), if any. */
export function innermostInContext(): LockHandle | undefined {
  const held = storage.getStore();
  if (!held) return undefined;
  let last: LockHandle | undefined;
  for (const handle of held.values()) last = handle;
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
