import type { LockHandle } from './lock-handle.js';
import { settledWithin } from './lock-recipe.js';

/** What `LockService.acquireAll` returns: several locks held together, released together. */
export interface MultiLockHandle extends AsyncDisposable {
  /** The paths, in the order they were taken (the global order: sorted). */
  readonly paths: readonly string[];
  /** One handle per path, in the same order. */
  readonly locks: readonly LockHandle[];
  /** Aborts when any of the locks is lost; the reason is that lock's LockLostError. */
  readonly signal: AbortSignal;
  /** True once `release()` was called or any of the locks was lost. */
  readonly released: boolean;
  /** Releases every lock, in reverse order. Safe to call twice. */
  release(): Promise<void>;
}

export class MultiLock implements MultiLockHandle {
  readonly paths: readonly string[];
  readonly signal: AbortSignal;
  private releasing: Promise<void> | undefined;

  constructor(readonly locks: readonly LockHandle[]) {
    this.paths = locks.map((lock) => lock.path);
    this.signal = AbortSignal.any(locks.map((lock) => lock.signal));
  }

  get released(): boolean {
    return this.releasing !== undefined || this.signal.aborted;
  }

  release(): Promise<void> {
    this.releasing ??= releaseAll(this.locks);
    return this.releasing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.release();
  }
}

/** Releases `locks` in reverse order; every one is released even if one fails, then the first failure is thrown. */
export async function releaseAll(locks: readonly LockHandle[]): Promise<void> {
  let failure: { error: unknown } | undefined;
  for (const lock of locks.toReversed()) {
    try {
      await lock.release();
    } catch (error) {
      failure ??= { error };
    }
  }
  if (failure) throw failure.error;
}

/**
 * After a failed multi-lock: releases the parts taken (in reverse order) and waits for that up to
 * CLEANUP_WAIT_MS, like a failed acquisition waits for its own node. A release the server cannot
 * take now (a partition: it is retried until the session is presumed lost) goes on in the
 * background: the failure must reach the caller by its deadline. Never rejects.
 */
export async function releaseTaken(locks: readonly LockHandle[]): Promise<void> {
  if (locks.length === 0) return;
  await settledWithin(releaseAll(locks).catch(() => undefined));
}
