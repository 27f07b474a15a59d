/**
 * Where the events of scheduled jobs and elections go: `node:diagnostics_channel` channels (APM
 * agents read them without code; built only while a channel has subscribers), `LockService.events`
 * (once the service can take them), and one debug line when `logEvents` is on.
 */
import { channel } from 'node:diagnostics_channel';
import type { JobEvent } from '../lock/lock-events.js';
import type { LockService } from '../lock/lock.service.js';

/** The channel names, one per event type. Subscribe with `diagnostics_channel.subscribe(name, fn)`. */
export const JOB_CHANNELS = {
  'job-skipped': 'nestjs-zk-lock:job:skipped',
  'job-ran': 'nestjs-zk-lock:job:ran',
  'job-moved': 'nestjs-zk-lock:job:moved',
  'leadership-acquired': 'nestjs-zk-lock:leadership:acquired',
  'leadership-lost': 'nestjs-zk-lock:leadership:lost',
} as const satisfies Record<JobEvent['type'], string>;

const channels = Object.fromEntries(
  Object.entries(JOB_CHANNELS).map(([type, name]) => [type, channel(name)]),
) as Record<JobEvent['type'], ReturnType<typeof channel>>;

/** What a LockService offers to take our events onto its stream (the lead's glue; absent before it). */
interface EventSink {
  publish?(event: JobEvent): void;
}

/** The event publisher of one application's jobs and elections. */
export class JobEventPublisher {
  constructor(private readonly locks: LockService) {}

  /** True when someone would see an event of `type` (so that the hot path builds none otherwise). */
  wanted(type: JobEvent['type']): boolean {
    return channels[type].hasSubscribers || typeof (this.locks as EventSink).publish === 'function';
  }

  /** Publishes an event built by `build`, if anyone listens. */
  publish(type: JobEvent['type'], build: () => JobEvent): void {
    if (!this.wanted(type)) return;
    const event = build();
    const ch = channels[type];
    if (ch.hasSubscribers) ch.publish(event);
    (this.locks as EventSink).publish?.(event);
  }
}
