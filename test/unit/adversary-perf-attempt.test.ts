/**
 * Adversary (issue 13's perf work, commit c2b93b7): the attempts of one signal share ONE abort
 * listener (a WeakMap of sets) instead of one listener each. Pure logic of Attempt, no server:
 * every attempt still ends on abort, an ended attempt leaves the set (the service's shutdown
 * signal lives as long as the app: anything left there is a leak), an attempt made after the
 * abort or during its dispatch is over at once, and a wait's `also` listener goes when it settles.
 */
import { getEventListeners } from 'node:events';
import { performance } from 'node:perf_hooks';
import { describe, expect, it } from 'vitest';
import { Attempt, GiveUp } from '../../lib/lock/recipe/attempt.js';
import { waitFor } from '../support/index.js';

/** The attempts listening to `signal` (Attempt's private registry). */
function listeningTo(signal: AbortSignal): number {
  const registry = (Attempt as unknown as { listening: WeakMap<AbortSignal, Set<Attempt>> }).listening;
  return registry.get(signal)?.size ?? 0;
}

const never = <T>(): Promise<T> => new Promise<T>(() => undefined);

/** How a promise settled, without letting a rejection go unhandled. */
function outcome(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    (value) => ({ value }),
    (error: unknown) => error,
  );
}

describe('adversary: one abort listener per signal (Attempt)', () => {
  it('one abort ends every pending wait of every attempt on the signal, and leaves no listener behind', async () => {
    const controller = new AbortController();
    const ended = new AbortController(); // a session's `ended`: the `also` of a wait
    const attempts = Array.from({ length: 50 }, () => new Attempt(Infinity, controller.signal));
    expect(listeningTo(controller.signal)).toBe(50);
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(1);
    const waits = attempts.flatMap((attempt) => [
      outcome(attempt.reply(never())),
      outcome(attempt.wait(never(), ended.signal)),
    ]);
    expect(getEventListeners(ended.signal, 'abort')).toHaveLength(50);

    controller.abort();
    const results = await Promise.all(waits);
    for (const result of results) {
      expect(result).toBeInstanceOf(GiveUp);
      expect((result as GiveUp).why).toBe('aborted');
    }
    // reply() is an outage's wait (unavailable), wait() a busy lock's
    expect(results.filter((r) => (r as GiveUp).unavailable)).toHaveLength(50);
    expect(listeningTo(controller.signal)).toBe(0);
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
    expect(getEventListeners(ended.signal, 'abort')).toHaveLength(0);
  });

  it('an ended attempt leaves the set; the signal keeps one listener however many attempts come and go', async () => {
    const controller = new AbortController();
    for (let round = 0; round < 3; round += 1) {
      const attempts = Array.from({ length: 100 }, () => new Attempt(performance.now() + 60_000, controller.signal));
      await Promise.all(attempts.map((attempt) => attempt.reply(Promise.resolve(round))));
      for (const attempt of attempts) attempt.end();
      expect(listeningTo(controller.signal)).toBe(0);
      expect(getEventListeners(controller.signal, 'abort')).toHaveLength(1);
    }
    // An attempt ended by its deadline leaves too.
    const timedOut = new Attempt(performance.now() + 20, controller.signal);
    const timeout = outcome(timedOut.reply(never()));
    expect(listeningTo(controller.signal)).toBe(1);
    expect(await timeout).toMatchObject({ why: 'timeout', unavailable: true });
    expect(listeningTo(controller.signal)).toBe(0);
  });

  it('an ended attempt is not told of a later abort; the others are', async () => {
    const controller = new AbortController();
    const done = new Attempt(Infinity, controller.signal);
    const late = new Attempt(Infinity, controller.signal);
    expect(await done.reply(Promise.resolve('granted'))).toBe('granted');
    done.end();
    const waiting = outcome(late.reply(never()));
    controller.abort();
    expect(await waiting).toMatchObject({ why: 'aborted' });
    expect(listeningTo(controller.signal)).toBe(0);
  });

  it('an attempt made during the abort dispatch, or after it, is over at once and listens to nothing', async () => {
    const controller = new AbortController();
    const made: Attempt[] = [];
    // One listener before the attempts' shared one, one after it: both run inside the dispatch.
    controller.signal.addEventListener('abort', () => made.push(new Attempt(Infinity, controller.signal)));
    const before = new Attempt(Infinity, controller.signal);
    controller.signal.addEventListener('abort', () => made.push(new Attempt(Infinity, controller.signal)));
    const pending = outcome(before.reply(never()));
    controller.abort();
    made.push(new Attempt(Infinity, controller.signal), new Attempt(performance.now() + 60_000, controller.signal));
    expect(await pending).toMatchObject({ why: 'aborted' });
    for (const attempt of made) {
      expect(() => attempt.check()).toThrow(GiveUp);
      expect(await outcome(attempt.reply(never()))).toMatchObject({ why: 'aborted', unavailable: true });
      expect(await outcome(attempt.wait(never(), new AbortController().signal))).toMatchObject({ why: 'aborted' });
      attempt.end();
    }
    expect(listeningTo(controller.signal)).toBe(0);
    // What is left are the test's own two listeners: the shared one went (once), no new one came.
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(2);
  });

  it('a wait ends (resolves) when its `also` signal aborts, before or during the wait, and stops listening', async () => {
    const attempt = new Attempt(performance.now() + 60_000, new AbortController().signal);
    const ended = new AbortController(); // the session's end, as waitForChange passes it
    const waits = Array.from({ length: 20 }, () => outcome(attempt.wait(never(), ended.signal)));
    expect(getEventListeners(ended.signal, 'abort')).toHaveLength(20);
    ended.abort('connection-lost');
    for (const result of await Promise.all(waits)) expect(result).toEqual({ value: undefined });
    expect(getEventListeners(ended.signal, 'abort')).toHaveLength(0);
    // Already aborted when the wait starts: resolves at once, adds nothing.
    expect(await outcome(attempt.wait(never(), ended.signal))).toEqual({ value: undefined });
    expect(getEventListeners(ended.signal, 'abort')).toHaveLength(0);
    // Woken first: stops listening too.
    const live = new AbortController();
    expect(await outcome(attempt.wait(Promise.resolve(), live.signal))).toEqual({ value: undefined });
    expect(getEventListeners(live.signal, 'abort')).toHaveLength(0);
    attempt.end();
  });

  it('a reply that comes after the abort goes to the late handler, once; nothing escapes', async () => {
    const controller = new AbortController();
    const attempt = new Attempt(Infinity, controller.signal);
    let answer!: (value: string) => void;
    let refuse!: (error: Error) => void;
    const lateValues: string[] = [];
    const lateErrors: unknown[] = [];
    const first = outcome(
      attempt.reply(new Promise<string>((resolve) => (answer = resolve)), { value: (v) => lateValues.push(v) }),
    );
    const second = outcome(
      attempt.reply(new Promise<string>((_, reject) => (refuse = reject)), {
        error: (e) => {
          lateErrors.push(e);
          throw new Error('a late handler that throws');
        },
      }),
    );
    controller.abort();
    expect(await first).toMatchObject({ why: 'aborted' });
    expect(await second).toMatchObject({ why: 'aborted' });
    answer('created');
    refuse(new Error('connection loss'));
    await waitFor(() => lateValues.length === 1 && lateErrors.length === 1, { timeout: 1_000 });
    expect(lateValues).toEqual(['created']);
    attempt.end();
  });
});
