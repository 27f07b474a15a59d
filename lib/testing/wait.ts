/** Polling helpers for tests: wait for a condition with a deadline instead of sleeping. */

export interface WaitForOptions {
  /** Deadline in ms (default 10 000). */
  timeout?: number;
  /** Delay between attempts in ms (default 50). */
  interval?: number;
  /** Included in the error thrown at the deadline. */
  message?: string;
}

/**
 * Calls `fn` until it returns (or resolves to) a truthy value and resolves with that value.
 * A throwing `fn` counts as "not yet"; at the deadline rejects with `message` and the last error.
 * The deadline is on the monotonic clock.
 *
 * @example
 * await waitFor(() => lock.signal.aborted, { timeout: 5_000, message: 'the holder is told' });
 */
export async function waitFor<T>(fn: () => T | Promise<T>, opts: WaitForOptions = {}): Promise<NonNullable<T>> {
  const { timeout = 10_000, interval = 50, message = 'condition not met' } = opts;
  const deadline = performance.now() + timeout;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await fn();
      if (value) return value;
    } catch (err) {
      lastError = err;
    }
    if (performance.now() >= deadline) {
      const cause = lastError instanceof Error ? ` (last error: ${lastError.message})` : '';
      throw new Error(`waitFor: ${message} within ${timeout} ms${cause}`, { cause: lastError });
    }
    await delay(Math.min(interval, Math.max(0, deadline - performance.now())));
  }
}

/** Resolves after `ms` milliseconds. */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
