/**
 * Targeted faults of the chaos run, timed on the ZooKeeper packets that cross a worker's
 * proxies (TcpProxy cuts each direction into frames: `cutAfter`, `cutBefore`, `onFrame`):
 *
 * - `notify-cut`: a worker that watches a node goes silent (its packets to the server are held
 *   back, as if it had nothing to say) for 0.2-0.45 of its session timeout; the node then goes
 *   (chaos/pacer.ts: main holds it and releases it), the notification is delivered and the worker
 *   is cut off both ways (what it said meanwhile never arrives). The notification moves the
 *   client's clock forward without renewing its session: the server expires the session counting
 *   from the last packet it received FROM the client, which is older than the notification by the
 *   silence.
 * - `ping-cut`: the moment a worker sends a ping (it had sent nothing for a third of its session
 *   timeout), the ping is dropped and the worker cut off both ways: the server last heard from it
 *   as long ago as it ever does, so its session expires as early as it can.
 *
 * Either way the worker stays cut off for its session timeout + 0.5-2 s (faults.ts): its session
 * expires and the next holders get its locks; its own holders must have stopped believing before.
 */
import { isNotification, isPing, type TcpProxy, type ZkFrame } from '../test/support/proxy.js';
import type { Pacing } from './pacer.js';
import type { Prng } from './prng.js';

/** A worker as the targeted faults see it. */
export interface Targetable {
  readonly id: number;
  readonly proxies: readonly TcpProxy[];
  pid(): number | undefined;
  sessionTimeout(): number;
  /** The lock paths its current process believes it holds right now. */
  holding(): string[];
  /** It holds a lock for seconds right now (a long read, a read held while waiting for another lock). */
  holdsLong(): boolean;
}

export interface Cut<T extends Targetable> {
  target: T;
  /** ms between the worker's last packet that reached the server and the cut. */
  sinceLastUp: number;
  /** What it held at the cut. */
  held: string[];
}

/** Blackholes every proxy of `target` (the one it is connected through, and those it may reconnect to). */
function cutOff(target: Targetable): void {
  for (const proxy of target.proxies) proxy.blackhole();
}

/** Resolves after `ms`, or at once when `signal` aborts; false when aborted. */
function wait(ms: number, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    const done = (value: boolean) => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      resolve(value);
    };
    const onAbort = () => done(false);
    const timer = setTimeout(() => done(true), ms);
    if (signal.aborted) done(false);
    else signal.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * notify-cut on one worker: silences it (up to `silenceMs.max`) and cuts it off right after the
 * first notification that reaches it after `silenceMs.min` of silence (the longer the silence,
 * the older the server's last contact). `trigger.fire` is called after `trigger.afterMs` of
 * silence (at least `silenceMs.min`): it makes the notification (deletes a node the target
 * watches). Resolves with the cut, or undefined (its held packets then go out, late) when none
 * came in time or `signal` aborted.
 */
export async function silenceThenCutOnNotification<T extends Targetable>(
  target: T,
  silenceMs: { min: number; max: number },
  signal: AbortSignal,
  onCut: (target: T) => void,
  trigger: { afterMs: number; fire: () => void },
): Promise<Cut<T> | undefined> {
  const arm: { state: 'armed' | 'fired' | 'cancelled' } = { state: 'armed' };
  const silentSince = performance.now();
  const match = (frame: ZkFrame) => {
    if (arm.state !== 'armed' || !isNotification(frame)) return false;
    if (performance.now() - silentSince < silenceMs.min) return false; // delivered; not yet
    arm.state = 'fired';
    return true;
  };
  for (const proxy of target.proxies) proxy.pause('up');
  const held = target.holding();
  const fired = new Promise<number>((resolve) => {
    for (const proxy of target.proxies) void proxy.cutAfter('down', match).then((cut) => resolve(cut.at));
  });
  void wait(Math.max(trigger.afterMs, silenceMs.min), signal).then((due) => {
    if (due && arm.state === 'armed') trigger.fire(); // (not once the cut came, or it was called off)
  });
  const outcome = await Promise.race([fired, wait(silenceMs.max, signal).then(() => undefined)]);
  if (arm.state !== 'fired') {
    arm.state = 'cancelled';
    for (const proxy of target.proxies) proxy.resume('up'); // what it said meanwhile goes out, late
    return undefined;
  }
  cutOff(target); // (the proxy that saw the notification is blackholed already; held packets dropped)
  for (const proxy of target.proxies) proxy.resume('up'); // nothing held any more: just the flag
  onCut(target);
  return { target, sinceLastUp: (outcome ?? performance.now()) - silentSince, held };
}

/**
 * notify-cut, paced (chaos/pacer.ts): main takes the lock of `path`; once a free worker watches
 * main's node (for the first 2.5 s, only one that holds another lock for seconds meanwhile, as
 * `nested` and `longRead` do; then one that holds any lock; after 4 s any; up to 5 s), that
 * worker is silenced for 0.2-0.45 of its session timeout and main releases its lock somewhere in
 * the first half of that window: the notification of the deletion reaches the silent worker, which
 * is cut off right after it. Resolves with the cut, or why there was none.
 */
export async function pacedNotifyCut<T extends Targetable & { sessionHex(): string | undefined }>(options: {
  pacer: Pacing;
  path: string;
  candidates: () => T[];
  prng: Prng;
  signal: AbortSignal;
  /** The target is chosen (before its silence); `release` when no cut came of it. */
  claim: (target: T) => { release(): void };
  onCut: (target: T) => void;
}): Promise<Cut<T> | string> {
  const { pacer, path, prng, signal } = options;
  const hold = await pacer.hold(path, 10_000, signal);
  if (!hold) return signal.aborted ? 'the faults ended' : `the harness could not take ${path} within 10 s`;
  try {
    const since = performance.now();
    while (performance.now() - since < 5_000 && !signal.aborted) {
      const watching = await pacer.watchers(hold.node);
      const sessionOf = (w: T) => {
        const hex = w.sessionHex();
        return hex === undefined ? undefined : BigInt(`0x${hex}`);
      };
      const free = options.candidates().filter((w) => w.pid() !== undefined && watching.has(sessionOf(w) ?? -1n));
      const waited = performance.now() - since;
      const long = free.filter((w) => w.holdsLong());
      const holders = free.filter((w) => w.holding().length > 0);
      const choices =
        long.length > 0 ? long : waited >= 2_500 && holders.length > 0 ? holders : waited >= 4_000 ? free : [];
      if (choices.length === 0) {
        await wait(50, signal);
        continue;
      }
      const target = prng.pick(choices);
      const claim = options.claim(target);
      const timeout = target.sessionTimeout();
      const silence = { min: 0.2 * timeout, max: 0.45 * timeout };
      const afterMs = prng.between(silence.min, (silence.min + silence.max) / 2);
      const cut = await silenceThenCutOnNotification(target, silence, signal, options.onCut, {
        afterMs,
        fire: () => void hold.release(),
      });
      if (cut) return cut;
      claim.release();
      return `worker ${target.id} got no notification within ${Math.round(silence.max)} ms of silence`;
    }
    return signal.aborted ? 'the faults ended' : `no free worker watched the harness's node within 5 s`;
  } finally {
    await hold.release();
  }
}

/**
 * ping-cut: waits for a ping from one of `candidates()` (for the first `preferMs`, only from a
 * worker that holds a lock for seconds), drops it and cuts that worker off. Resolves with the cut, or
 * undefined after `waitMs` or when `signal` aborts.
 */
export async function cutBeforePing<T extends Targetable>(options: {
  candidates: () => T[];
  preferMs: number;
  waitMs: number;
  signal: AbortSignal;
  onCut: (target: T) => void;
}): Promise<Cut<T> | undefined> {
  const armedAt = performance.now();
  const arm: { state: 'armed' | 'fired' | 'cancelled' } = { state: 'armed' };
  /** Per worker: when its last two frames went up (the last one may be the ping that is cut). */
  const upAt = new Map<T, [number, number]>();
  const removers: (() => void)[] = [];
  const eligible = (target: T) =>
    target.pid() !== undefined &&
    options.candidates().includes(target) &&
    (performance.now() - armedAt >= options.preferMs || target.holdsLong());
  const fired = new Promise<Cut<T>>((resolve) => {
    for (const target of options.candidates()) {
      for (const proxy of target.proxies) {
        removers.push(
          proxy.onFrame((direction) => {
            if (direction === 'up') upAt.set(target, [upAt.get(target)?.[1] ?? armedAt, performance.now()]);
          }),
        );
        const match = (frame: ZkFrame) => {
          if (arm.state !== 'armed' || !isPing(frame) || !eligible(target)) return false;
          arm.state = 'fired';
          return true;
        };
        const held = () => target.holding();
        void proxy.cutBefore('up', match).then((cut) => {
          // The frame listeners saw the ping itself last: the one before it is the last that got through.
          resolve({ target, sinceLastUp: cut.at - (upAt.get(target)?.[0] ?? armedAt), held: held() });
        });
      }
    }
  });
  const cut = await Promise.race([fired, wait(options.waitMs, options.signal).then(() => undefined)]);
  for (const remove of removers) remove();
  if (!cut) {
    if (arm.state === 'armed') {
      arm.state = 'cancelled';
      return undefined;
    }
    return fired.then((late) => finishCut(late, options.onCut)); // fired as the time ran out
  }
  return finishCut(cut, options.onCut);
}

function finishCut<T extends Targetable>(cut: Cut<T>, onCut: (target: T) => void): Cut<T> {
  cutOff(cut.target);
  onCut(cut.target);
  return cut;
}
