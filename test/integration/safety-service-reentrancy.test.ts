/**
 * Reentrancy against a real ZooKeeper server: work that got the lock through reentrancy is told
 * (its signal aborts) before the outer holder's release deletes the node; `current()` never
 * returns a released handle; and a nested call under a lost or revoked lock fails at once with
 * the loss instead of queueing behind itself (plain and coalesced, session loss and revocation).
 */
import { EventEmitterAsyncResource } from 'node:events';
import { performance } from 'node:perf_hooks';
import { afterEach, describe, expect, it } from 'vitest';
import {
  LockLostError,
  LockTimeoutError,
  type LockHandle,
  type ZkConnectionService,
  type ZkLockOptions,
} from '../../lib/index.js';
import { childrenOf, lockClient, closeSessionFromOutside } from '../fixtures/lock-clients.js';
import { useFileServer } from '../fixtures/file-server.js';
import { TcpProxy, waitFor } from '../support/index.js';

const server = useFileServer();
const proxies: TcpProxy[] = [];
afterEach(async () => {
  await Promise.all(proxies.splice(0).map((proxy) => proxy.close()));
});

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

/**
 * Ends the session of `connection` (which goes through `proxy`) from outside, as the server does
 * on expiry: cut the client off, resume the session with a raw client and close it, then let
 * the client reconnect and hear that its session expired.
 */
async function expireSession(proxy: TcpProxy, connection: ZkConnectionService): Promise<void> {
  const session = connection.currentSession()!;
  proxy.blackhole(); // else the client may take the session back before the raw client closes it
  await closeSessionFromOutside(server.connectString, connection.sessionCredentials()!);
  proxy.restore();
  await waitFor(() => session.ended.aborted, { message: 'the client learns of the expiry' });
}

describe('work that got the lock through reentrancy (issue 11, item 4)', () => {
  it('an unawaited nested withLock is told before the outer release deletes the node', async () => {
    const path = '/safety/nested-unawaited';
    const { connection, locks } = await lockClient(server.connectString);
    const gate = deferred();
    let nested: LockHandle | undefined;
    let nestedDone: Promise<void> | undefined;
    let nodeAtAbort: Promise<unknown> | undefined;
    let outerNode = '';
    await locks.withLock(path, async (outer) => {
      outerNode = outer.node;
      // Started under the lock, not awaited: it outlives the outer call.
      nestedDone = locks.withLock(path, async (inner) => {
        nested = inner;
        // Sent on the same session as the outer delete, so the server answers it first if the
        // signal aborts before the delete is sent.
        inner.signal.addEventListener(
          'abort',
          () => {
            nodeAtAbort = connection.exists(outer.node);
          },
          { once: true },
        );
        await gate.promise;
      });
      await waitFor(() => nested);
    });
    await waitFor(() => nested!.signal.aborted, { timeout: 2_000, message: 'the nested holder is told' });
    expect(nested!.signal.reason).toBeInstanceOf(LockLostError);
    expect((nested!.signal.reason as LockLostError).reason).toBe('outer-released');
    expect(nested!.released).toBe(true);
    expect(nested!.node).toBe(outerNode);
    expect(await nodeAtAbort).not.toBeNull(); // told while the node still existed
    expect(await childrenOf(server.connectString, path)).toEqual([]); // and then it went
    gate.resolve();
    await nestedDone;
  });

  it('current() never returns a released handle, also in callbacks that inherit the call chain', async () => {
    const { locks } = await lockClient(server.connectString);
    const innerReleased = deferred();
    const allReleased = deferred();
    let whileOuterHeld: [LockHandle | undefined, LockHandle | undefined] | undefined;
    let afterAll: (LockHandle | undefined)[] | undefined;
    const later: Promise<void>[] = [];
    let outerHandle: LockHandle | undefined;
    await locks.withLock('/safety/ctx-a', async (a) => {
      outerHandle = a;
      await locks.withLock('/safety/ctx-b', () => {
        // Continuations registered here run in this call chain, whenever they run.
        later.push(
          innerReleased.promise.then(() => {
            whileOuterHeld = [locks.current(), locks.current('/safety/ctx-b')];
          }),
          allReleased.promise.then(() => {
            afterAll = [locks.current(), locks.current('/safety/ctx-a'), locks.current('/safety/ctx-b')];
          }),
        );
      });
      innerReleased.resolve();
      await later[0];
      // b is released: the innermost lock still held is a; b is not returned
      expect(whileOuterHeld).toEqual([a, undefined]);
    });
    allReleased.resolve();
    await later[1];
    expect(outerHandle!.released).toBe(true);
    expect(afterAll).toEqual([undefined, undefined, undefined]);
  });

  it('an event listener bound to the call chain runs after the release: no held lock, a fresh acquisition', async () => {
    const path = '/safety/listener';
    const { locks } = await lockClient(server.connectString);
    let emitter: EventEmitterAsyncResource | undefined;
    let held: LockHandle | undefined;
    await locks.withLock(path, (lock) => {
      held = lock;
      emitter = new EventEmitterAsyncResource({ name: 'bound-to-lock' }); // listeners run in this call chain
    });
    const seen = new Promise<{ current: LockHandle | undefined; next: LockHandle }>((resolve, reject) => {
      emitter!.on('tick', () => {
        const current = locks.current();
        locks.acquire(path, { timeout: 5_000 }).then((next) => resolve({ current, next }), reject);
      });
    });
    emitter!.emit('tick');
    const { current, next } = await seen;
    expect(current).toBeUndefined();
    expect(next.node).not.toBe(held!.node); // its own node: the released one is not reused
    expect(next.fencingToken).toBeGreaterThan(held!.fencingToken);
    await next.release();
    emitter!.emitDestroy();
  });
});

describe.each<[string, Partial<ZkLockOptions>]>([
  ['plain', {}],
  ['coalesce', { coalesce: true }],
])('a nested call under a lost or revoked lock (issue 11, item 10), %s', (mode, options) => {
  it('session loss: fails at once with the LockLostError, queues nothing', async () => {
    const path = `/safety/lost-nested-${mode}`;
    const proxy = await TcpProxy.start({ host: server.host, port: server.port });
    proxies.push(proxy);
    const { connection, locks } = await lockClient(proxy.connectString, { ...options, sessionTimeout: 2_000 });
    const outcomes = await locks.withLock(path, async (outer) => {
      await expireSession(proxy, connection);
      await waitFor(() => outer.signal.aborted, { message: 'the holder is told of the expiry' });
      const started = performance.now();
      const nested = await locks.acquire(path, { timeout: 3_000 }).catch((error: unknown) => error);
      const viaWithLock = await locks.withLock(path, () => 'ran', { timeout: 3_000 }).catch((error: unknown) => error);
      return { nested, viaWithLock, ms: performance.now() - started };
    });
    for (const error of [outcomes.nested, outcomes.viaWithLock]) {
      expect(error).toBeInstanceOf(LockLostError);
      expect((error as LockLostError).reason).toBe('session-expired');
    }
    expect(outcomes.ms).toBeLessThan(500);
    expect(await childrenOf(server.connectString, path)).toEqual([]);
  });

  it('revocation: fails at once with LockLostError(revoked); the lock goes when the holder releases', async () => {
    const path = `/safety/revoked-nested-${mode}`;
    // heldLockWatchDelay 0: the holder watches its node at once, whatever the mode.
    const { locks } = await lockClient(server.connectString, { ...options, heldLockWatchDelay: 0 });
    const other = await lockClient(server.connectString);
    const outcomes = await locks.withLock(path, async (outer) => {
      expect(await other.locks.requestRelease(path)).toBe(1);
      await waitFor(() => outer.signal.aborted, { message: 'the holder sees the release request' });
      const started = performance.now();
      const nested = await locks.acquire(path, { timeout: 3_000 }).catch((error: unknown) => error);
      return { nested, ms: performance.now() - started, nodes: await childrenOf(server.connectString, path) };
    });
    expect(outcomes.nested).toBeInstanceOf(LockLostError);
    expect((outcomes.nested as LockLostError).reason).toBe('revoked');
    expect(outcomes.nested).not.toBeInstanceOf(LockTimeoutError);
    expect(outcomes.ms).toBeLessThan(500);
    // Revoked is not released: the node stayed ours until the release, and the nested call queued nothing.
    expect(outcomes.nodes).toHaveLength(1);
    const after = await other.locks.tryAcquire(path);
    expect(after).not.toBeNull();
    await after!.release();
  });
});
