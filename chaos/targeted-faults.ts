/**
 * Targeted faults of the chaos run, timed on the bytes that cross a worker's proxies (the
 * proxy's `onData` listeners, which run before a chunk is forwarded; they see sizes, not
 * contents, so packets are recognised by their size):
 *
 * - `notify-cut`: the moment a watch notification reaches a worker (best: one that holds a lock
 *   meanwhile), it is delivered, and then the worker is cut off both ways. The notification
 *   tells the client nothing about the server's clock: the server expires the session counting
 *   from the last packet it received FROM the client, not from what it sent.
 * - `ping-cut`: the moment a worker sends a ping (it has sent nothing for a third of its session
 *   timeout), the ping is dropped and the worker cut off both ways: the server last heard from it
 *   as long ago as it ever does, so its session expires as early as it can.
 *
 * Either way the worker stays cut off for its session timeout + 0.5-2 s (its session expires;
 * the next holders get its locks): its holders must have stopped believing before.
 */
import type { Direction, TcpProxy } from '../test/support/proxy.js';

/** A worker as the targeted faults see it. */
export interface Targetable {
  readonly id: number;
  readonly proxies: readonly TcpProxy[];
  pid(): number | undefined;
  /** The lock paths its current process believes it holds right now. */
  holding(): string[];
}

/**
 * ZooKeeper packets, server to client, of a watch notification (NodeDeleted, NodeDataChanged) on
 * a node of the workload's lock directories: length prefix 4 + reply header 16 (xid -1, zxid,
 * err) + event type 4 + state 4 + path (4 + its length). Node names are
 * `_c_<36-char attempt id>-<marker><10 digits>`.
 */
export function notificationSizes(dirsAndMarkers: readonly [string, string][]): Set<number> {
  return new Set(dirsAndMarkers.map(([dir, marker]) => 32 + dir.length + 1 + 3 + 36 + 1 + marker.length + 10));
}

/** A ping request, client to server: length prefix 4 + xid (-2) 4 + type (11) 4. */
export const PING_SIZE = 12;

export interface Trigger<T extends Targetable> {
  target: T;
  /** ms between the worker's last packet to the server that got through and the cut. */
  sinceLastUp: number;
  /** What the worker held at the cut. */
  held: string[];
}

/**
 * Waits for a chunk of one of `sizes` in `direction` on a proxy of one of `candidates()`, and
 * cuts that worker off (blackholes all its proxies): for `down` right after the chunk is
 * forwarded (delivered, then cut), for `up` before (the chunk is dropped). For the first
 * `preferMs`, only a worker that holds a lock counts. Resolves undefined after `waitMs` or when
 * `signal` aborts.
 */
export function cutOnPacket<T extends Targetable>(options: {
  candidates: () => T[];
  direction: Direction;
  sizes: ReadonlySet<number>;
  preferMs: number;
  waitMs: number;
  signal: AbortSignal;
  /** Called with the target as it is cut (before any other packet passes). */
  onCut: (target: T) => void;
}): Promise<Trigger<T> | undefined> {
  const { direction, sizes } = options;
  const armedAt = performance.now();
  const lastUp = new Map<T, number>();
  const removers: (() => void)[] = [];
  return new Promise((resolve) => {
    const finish = (trigger?: Trigger<T>) => {
      clearTimeout(timer);
      options.signal.removeEventListener('abort', onAbort);
      for (const remove of removers) remove();
      removers.length = 0;
      resolve(trigger);
    };
    const onAbort = () => finish();
    const timer = setTimeout(onAbort, options.waitMs);
    options.signal.addEventListener('abort', onAbort, { once: true });
    const eligible = (target: T, at: number) =>
      target.pid() !== undefined &&
      options.candidates().includes(target) &&
      (at - armedAt >= options.preferMs || target.holding().length > 0);
    let fired = false;
    for (const target of options.candidates()) {
      for (const proxy of target.proxies) {
        removers.push(
          proxy.onData((dir, bytes) => {
            const at = performance.now();
            if (fired) return;
            if (dir === direction && sizes.has(bytes) && eligible(target, at)) {
              fired = true;
              const trigger = { target, sinceLastUp: at - (lastUp.get(target) ?? armedAt), held: target.holding() };
              const cut = () => {
                for (const each of target.proxies) each.blackhole();
                options.onCut(target);
                finish(trigger);
              };
              // Up: cut now, the chunk is dropped. Down: once this chunk is written to the client
              // (right after the listeners return), before any other event.
              if (direction === 'up') cut();
              else queueMicrotask(cut);
              return;
            }
            if (dir === 'up') lastUp.set(target, at);
          }),
        );
      }
    }
  });
}
