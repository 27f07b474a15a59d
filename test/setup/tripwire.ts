/**
 * Vitest setup file (vitest.config.ts `setupFiles`): the unhandled-rejection tripwire, per test.
 *
 * By default Vitest reports an unhandled rejection as an "Unhandled Error" of the run and fails
 * the run, but the test during which it happened passes, and the report only guesses which test
 * it was. Here the test itself fails, naming the rejection: every unhandled rejection and
 * uncaught exception recorded while a test runs (its hooks included: this file's afterEach runs
 * after the test file's own) fails that test; one recorded between tests fails the next test's
 * start; one after the last test fails the file (afterAll). Vitest's own report stays as well.
 */
import { afterAll, afterEach, beforeEach, expect } from 'vitest';
import { describeTrip, onTrip, type Trip } from './process-tripwire.js';

const trips: Trip[] = [];
onTrip((trip) => trips.push(trip));

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
