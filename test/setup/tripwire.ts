/**
 * Vitest setup file (vitest.config.ts `setupFiles`): the unhandled-rejection tripwire, per test.
 *
 * By default Vitest reports an unhandled rejection as an "Unhandled Error" of the run and fails
 * the run, but the test during which it happened passes, and the report only guesses which test
 * it was (and it stays silent when any other listener exists). Here the test itself fails,
 * naming the rejection, and Vitest still reports it: every unhandled rejection and
 * uncaught exception recorded while a test runs (its hooks included: this file's afterEach runs
 * after the test file's own) fails that test; one recorded between tests fails the next test's
 * start; one after the last test fails the file (afterAll). Vitest's own report stays as well.
 */
import { afterAll, afterEach, beforeEach, expect } from 'vitest';
import { describeTrip, type Trip, type TripKind } from './process-tripwire.js';

const trips: Trip[] = [];

/**
 * Records each trip, then lets Vitest's own handler see it too: Vitest reports an unhandled
 * error only when its listener is the only one ("another listener: handled by user code"), so
 * this listener steps aside and emits the event again. The run then lists the error as well.
 */
function listen(event: 'unhandledRejection' | 'uncaughtException', kind: TripKind): void {
  // (typed loosely: process.on/off/emit overloads take one event name at a time)
  const emitter = process as unknown as {
    on(event: string, listener: (...args: unknown[]) => void): void;
    off(event: string, listener: (...args: unknown[]) => void): void;
    emit(event: string, ...args: unknown[]): boolean;
  };
  const listener = (error: unknown, ...rest: unknown[]) => {
    trips.push({ kind, error, at: performance.now() });
    emitter.off(event, listener);
    try {
      emitter.emit(event, error, ...rest);
    } finally {
      emitter.on(event, listener);
    }
  };
  emitter.on(event, listener);
}
listen('unhandledRejection', 'unhandled rejection');
listen('uncaughtException', 'uncaught exception');

/** Lets pending rejections be noticed (Node reports them once the microtasks of a tick have run). */
function settle(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/** Throws, naming every trip recorded so far (and forgets them). */
function failOnTrips(where: string): void {
  if (trips.length === 0) return;
  const found = trips.splice(0);
  const kinds = [...new Set(found.map((trip) => trip.kind))].join(' and ');
  const error = new Error(
    `TRIPWIRE: ${found.length} ${kinds}${found.length > 1 ? 's' : ''} ${where}:\n` +
      found.map((trip, i) => `  [${i + 1}] ${describeTrip(trip).replaceAll('\n', '\n      ')}`).join('\n'),
  );
  error.name = 'TripwireError';
  throw error;
}

let current: string | undefined;

beforeEach(async () => {
  await settle();
  current = expect.getState().currentTestName;
  failOnTrips(`after the previous test had ended, before "${current}" started (a timer or hook it left behind)`);
});

afterEach(async () => {
  await settle();
  const name = current;
  current = undefined;
  failOnTrips(`during the test "${name}" (or its afterEach hooks)`);
});

afterAll(async () => {
  await settle();
  failOnTrips('after the last test of this file (in afterAll hooks or timers left behind)');
});
