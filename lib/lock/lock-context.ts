import { AsyncLocalStorage } from 'node:async_hooks';
import type { LockHandle } from './lock-handle.js';

/** The locks held by the current async call chain, by path (for reentrancy and `LockService.current()`). */
const storage = new AsyncLocalStorage<ReadonlyMap<string, LockHandle>>();

/** The handle this call chain holds for `path`, if any and not yet released or lost. */
export function heldInContext(path: string): LockHandle | undefined {
  const handle = storage.getStore()?.get(path);
  return handle && !handle.released ? handle : undefined;
}

/** The innermost lock held by this call chain (the last one entered), if any. */
export function innermostInContext(): LockHandle | undefined {
  const held = storage.getStore();
  if (!held) return undefined;
  let last: LockHandle | undefined;
  for (const handle of held.values()) last = handle;
  return last;
}

/** Runs `fn` with `handle` added to the call chain's held locks. */
export function runWithLock<T>(handle: LockHandle, fn: () => T): T {
  const next = new Map(storage.getStore());
  next.delete(handle.path);
  next.set(handle.path, handle);
  return storage.run(next, fn);
}
