/**
 * The unhandled-rejection tripwire, for any Node process of the repository: the Vitest workers
 * (test/setup/tripwire.ts), the chaos workers (chaos/worker.ts) and the sample's processes
 * (sample/). An unhandled rejection or an uncaught exception kills a production app (Node's
 * default), so in every process we run it must fail loudly, naming what happened, never pass
 * unseen. No Vitest in here: the sample and the chaos run compile this file into their builds.
 */

export type TripKind = 'unhandled rejection' | 'uncaught exception';

/** One unhandled rejection or uncaught exception. */
export interface Trip {
  kind: TripKind;
  error: unknown;
  /** When (performance.now() scale). */
  at: number;
}

/** The exit code of a process the tripwire stopped (distinct, so that a parent can tell). */
export const TRIPWIRE_EXIT_CODE = 97;

/** "unhandled rejection: <stack or value>". */
export function describeTrip(trip: Trip): string {
  const { error } = trip;
  const text =
    error instanceof Error
      ? (error.stack ?? `${error.name}: ${error.message}`)
      : `${typeof error} ${safeString(error)} (not an Error)`;
  return `${trip.kind}: ${text}`;
}

function safeString(value: unknown): string {
  try {
    return typeof value === 'string' ? JSON.stringify(value) : String(value);
  } catch {
    return '?';
  }
}

/**
 * Calls `listener` for every unhandled rejection and uncaught exception of this process.
 * (A listener on `uncaughtException` keeps the process alive: the caller decides what happens.)
 * Returns a function that removes the listeners.
 */
export function onTrip(listener: (trip: Trip) => void): () => void {
  const rejection = (reason: unknown) =>
    listener({ kind: 'unhandled rejection', error: reason, at: performance.now() });
  const exception = (error: unknown) => listener({ kind: 'uncaught exception', error, at: performance.now() });
  process.on('unhandledRejection', rejection);
  process.on('uncaughtException', exception);
  return () => {
    process.off('unhandledRejection', rejection);
    process.off('uncaughtException', exception);
  };
}

export interface ProcessTripwireOptions {
  /**
   * Tells whoever runs this process (an IPC message, say), given the line printed; awaited up
   * to 2 s before the exit.
   */
  report?: (line: string) => unknown;
  /** Instead of exiting with {@link TRIPWIRE_EXIT_CODE}: stop the process some other way. */
  exit?: () => unknown;
}

/**
 * For a program's processes: on the first unhandled rejection or uncaught exception, prints one
 * line `TRIPWIRE <name> (pid N): <kind>: <stack>` to stderr, reports it, and exits with
 * {@link TRIPWIRE_EXIT_CODE} (or calls `options.exit`). Later trips are printed too.
 */
export function installProcessTripwire(name: string, options: ProcessTripwireOptions = {}): void {
  let tripped = false;
  onTrip((trip) => {
    const line = `TRIPWIRE ${name} (pid ${process.pid}): ${describeTrip(trip)}`;
    process.stderr.write(`${line}\n`);
    if (tripped) return;
    tripped = true;
    let exiting = false;
    const exit = () => {
      if (exiting) return;
      exiting = true;
      if (options.exit) void Promise.resolve(options.exit()).catch(() => process.exit(TRIPWIRE_EXIT_CODE));
      else process.exit(TRIPWIRE_EXIT_CODE);
    };
    setTimeout(exit, 2_000).unref();
    Promise.resolve()
      .then(() => options.report?.(line))
      .then(exit, exit);
  });
}
