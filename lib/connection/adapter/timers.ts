/**
 * Timers on the monotonic clock (performance.now()), never the wall clock: a wall-clock step
 * must not move a deadline. And never armed with more than setTimeout can hold: Node turns a
 * delay above 2^31-1 ms into 1 ms.
 */

/** The longest delay setTimeout keeps (about 24.8 days). */
export const MAX_TIMER_DELAY = 2 ** 31 - 1;

/** `ms` clamped into what setTimeout keeps: [0, MAX_TIMER_DELAY] (NaN counts as 0). */
export function boundedDelay(ms: number): number {
  return ms > 0 ? Math.min(ms, MAX_TIMER_DELAY) : 0;
}

/** A one-shot timer for a deadline on the performance.now() scale. */
export interface DeadlineTimer {
  cancel(): void;
}

/**
 * Calls `fire` once, at or after `deadline` (performance.now() scale), however far away: a delay
 * too long for one setTimeout is waited for in parts. `unref`: the timer alone keeps no process alive.
 */
export function timerAt(deadline: number, fire: () => void, unref = true): DeadlineTimer {
  let timer: NodeJS.Timeout | undefined;
  const arm = (): void => {
    const left = deadline - performance.now();
    if (left <= 0) {
      timer = undefined;
      fire();
      return;
    }
    timer = setTimeout(arm, boundedDelay(Math.ceil(left)));
    if (unref) timer.unref();
  };
  timer = setTimeout(arm, boundedDelay(Math.ceil(deadline - performance.now())));
  if (unref) timer.unref();
  return {
    cancel: () => {
      clearTimeout(timer);
      timer = undefined;
    },
  };
}
