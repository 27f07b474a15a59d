/**
 * "An outage is not a busy lock" (issue 11, item 8): every LockService call in every connection
 * state, against a real ZooKeeper server behind a loopback proxy, with its outcome and time
 * bound. One test per connection state runs every call at once (each on its own path), so that
 * all of them see the same state; the table of outcomes is compared as a whole.
 *
 * States: connected (the lock free, or held by another session), blackholed (the network drops
 * everything and the client has not noticed yet: still `connected`), suspended (cut off, the
 * session may live), no session (cut off for longer than the session timeout: expired, a new one
 * not yet made), closed.
 */
import { performance } from 'node:perf_hooks';
import { afterEach, describe, expect, it } from 'vitest';
import {
  LockTimeoutError,
  NotConnectedError,
  ZkUnavailableError,
  type LockService,
  type ZkConnectionService,
  type ZkLockOptions,
} from '../../lib/index.js';
import { lockClient } from '../fixtures/lock-clients.js';
import { useFileServer } from '../fixtures/file-server.js';
import { TcpProxy, waitFor } from '../support/index.js';

const server = useFileServer();
const proxies: TcpProxy[] = [];
afterEach(async () => {
  await Promise.all(proxies.splice(0).map((proxy) => proxy.close()));
});

/** The timeout of the calls that wait. */
const T = 300;
/** Slack over a documented bound, for a loaded machine (tight enough to miss a 3-10 s overrun). */
const TOLERANCE = 700;
/** "At once": no request, no wait. */
const AT_ONCE = 150;
/** The bound of a call that does not wait (tryAcquire, timeout 0) while connected: one request deadline. */
const OPERATION_TIMEOUT = 2_000;

/** `handle`, `null`, `ran` (withLock's body ran), or the error's class name. */
type Outcome = string;
interface Cell {
  outcome: Outcome;
  /** Settled within its bound. */
  inTime: boolean;
}

/** The calls of the table, each on its own path under `base`; `bound`: its documented time bound. */
const CALLS: {
  name: string;
  waits: boolean;
  paths: (base: string) => string[];
  run: (locks: LockService, base: string) => Promise<unknown>;
}[] = [
  {
    name: 'acquire',
    waits: true,
    paths: (b) => [`${b}/acquire`],
    run: (l, b) => l.acquire(`${b}/acquire`, { timeout: T }),
  },
  {
    name: 'withLock',
    waits: true,
    paths: (b) => [`${b}/with-lock`],
    run: (l, b) => l.withLock(`${b}/with-lock`, () => 'ran', { timeout: T }),
  },
  { name: 'tryAcquire', waits: false, paths: (b) => [`${b}/try`], run: (l, b) => l.tryAcquire(`${b}/try`) },
  {
    name: 'timeout 0',
    waits: false,
    paths: (b) => [`${b}/zero`],
    run: (l, b) => l.acquire(`${b}/zero`, { timeout: 0 }),
  },
  {
    name: 'acquireAll',
    waits: true,
    paths: (b) => [`${b}/all-a`, `${b}/all-b`],
    run: (l, b) => l.acquireAll([`${b}/all-a`, `${b}/all-b`], { timeout: T }),
  },
  {
    name: 'acquireAll timeout 0',
    waits: false,
    paths: (b) => [`${b}/all0-a`, `${b}/all0-b`],
    run: (l, b) => l.acquireAll([`${b}/all0-a`, `${b}/all0-b`], { timeout: 0 }),
  },
];

/** Runs every call at once; each cell: what it settled with, and whether within `bound(call)`. */
async function table(
  locks: LockService,
  base: string,
  bound: (call: (typeof CALLS)[number]) => { min?: number; max: number },
  expectState?: string,
): Promise<Record<string, Cell>> {
  const cells = await Promise.all(
    CALLS.map(async (call) => {
      const started = performance.now();
      const result = await call.run(locks, base).catch((error: unknown) => error);
      const ms = performance.now() - started;
      let outcome: Outcome;
      if (result === null) outcome = 'null';
      else if (result === 'ran') outcome = 'ran';
      else if (result instanceof Error) {
        outcome = result.name;
        if (result instanceof ZkUnavailableError && expectState && result.state !== expectState) {
          outcome += ` (state ${result.state})`;
        }
      } else {
        outcome = 'handle';
        await (result as { release(): Promise<void> }).release();
      }
      const { min = 0, max } = bound(call);
      return [call.name, { outcome, inTime: ms >= min && ms <= max }] as const;
    }),
  );
  return Object.fromEntries(cells);
}

function expected(outcome: (call: (typeof CALLS)[number]) => Outcome): Record<string, Cell> {
  return Object.fromEntries(CALLS.map((call) => [call.name, { outcome: outcome(call), inTime: true }]));
}

async function proxiedClient(
  options: Partial<ZkLockOptions>,
): Promise<{ proxy: TcpProxy; connection: ZkConnectionService; locks: LockService }> {
  const proxy = await TcpProxy.start({ host: server.host, port: server.port });
  proxies.push(proxy);
  const client = await lockClient(proxy.connectString, { operationTimeout: OPERATION_TIMEOUT, ...options });
  return { proxy, ...client };
}

describe('call x connection state -> outcome and time bound', () => {
  it('connected, lock free: every call gets the lock', async () => {
    const { locks } = await proxiedClient({});
    const cells = await table(locks, '/outage/free', () => ({ max: T + TOLERANCE }));
    expect(cells).toEqual(expected((call) => (call.name === 'withLock' ? 'ran' : 'handle')));
  });

  it('connected, lock held elsewhere: busy (LockTimeoutError after the timeout, or null / at once without a wait)', async () => {
    const base = '/outage/busy';
    const holder = await lockClient(server.connectString);
    const held = await Promise.all(
      CALLS.flatMap((call) => call.paths(base).slice(-1)).map((path) => holder.locks.acquire(path)),
    );
    const { locks } = await proxiedClient({});
    const cells = await table(locks, base, (call) =>
      call.waits ? { min: T - 5, max: T + TOLERANCE } : { max: AT_ONCE * 2 },
    );
    expect(cells).toEqual(expected((call) => (call.name === 'tryAcquire' ? 'null' : 'LockTimeoutError')));
    await Promise.all(held.map((lock) => lock.release()));
  });

  it('blackholed, not noticed yet (still connected): ZkUnavailableError by the timeout, or by operationTimeout without a wait', async () => {
    const { proxy, connection, locks } = await proxiedClient({ sessionTimeout: 4_000 });
    proxy.blackhole();
    const cells = await table(locks, '/outage/blackhole', (call) => ({
      max: (call.waits ? T : OPERATION_TIMEOUT) + TOLERANCE,
    }));
    expect(cells).toEqual(expected(() => 'ZkUnavailableError'));
    expect(connection.state).not.toBe('closed');
  });

  it('suspended (cut off, the session may live): ZkUnavailableError by the timeout, at once without a wait', async () => {
    const { proxy, connection, locks } = await proxiedClient({ sessionTimeout: 4_000 });
    proxy.refuse();
    proxy.reset();
    await waitFor(() => connection.state === 'suspended', { message: 'suspended' });
    const cells = await table(
      locks,
      '/outage/suspended',
      (call) => ({ max: call.waits ? T + TOLERANCE : AT_ONCE }),
      'suspended',
    );
    expect(connection.state).toBe('suspended'); // the whole table ran in this state
    expect(cells).toEqual(expected(() => 'ZkUnavailableError'));
  });

  it('no session (expired, the next one not made): ZkUnavailableError by the timeout, at once without a wait', async () => {
    const { proxy, connection, locks } = await proxiedClient({ sessionTimeout: 1_000 });
    proxy.refuse();
    proxy.reset();
    await waitFor(() => connection.currentSession() === undefined && connection.state !== 'closed', {
      message: 'the session is presumed expired',
    });
    const cells = await table(locks, '/outage/no-session', (call) => ({ max: call.waits ? T + TOLERANCE : AT_ONCE }));
    expect(connection.currentSession()).toBeUndefined();
    expect(cells).toEqual(expected(() => 'ZkUnavailableError'));
  });

  it('closed: NotConnectedError at once', async () => {
    const { connection, locks } = await proxiedClient({});
    await connection.close();
    const cells = await table(locks, '/outage/closed', () => ({ max: AT_ONCE }));
    expect(cells).toEqual(expected(() => NotConnectedError.name));
  });

  it('an outage that ends within the timeout is no error: the wait goes on and gets the lock', async () => {
    const { proxy, connection, locks } = await proxiedClient({ sessionTimeout: 4_000 });
    proxy.refuse();
    proxy.reset();
    await waitFor(() => connection.state === 'suspended', { message: 'suspended' });
    const attempt = locks.acquire('/outage/recovers', { timeout: 10_000 });
    proxy.restore();
    const handle = await attempt;
    expect(handle.signal.aborted).toBe(false);
    await handle.release();
    expect(LockTimeoutError.name).toBe('LockTimeoutError');
  });
});
