/** The chaos run's output: plain lines, and the timeline (one line per event, with the time since the start). */

export const say = (line = ''): void => void process.stdout.write(`${line}\n`);

export const secs = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

let runStart = Date.now();
/** hrtime of the run's start: the origin of belief times in reports. */
let runStartNs = process.hrtime.bigint();

export function startTimeline(): void {
  runStart = Date.now();
  runStartNs = process.hrtime.bigint();
}

export function sinceStart(): number {
  return Date.now() - runStart;
}

export function timelineOrigin(): { ms: number; ns: bigint } {
  return { ms: runStart, ns: runStartNs };
}

/** One line of the run's timeline. */
export const event = (text: string): void => say(`${secs(Date.now() - runStart).padStart(8)}  ${text}`);
