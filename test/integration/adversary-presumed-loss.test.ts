/**
 * Adversary: grants that need no round trip (a coalesced hand-off, a reentrant acquisition) made
 * after the session's presumed loss, while the presumption timer has not run yet (the event loop
 * was busy past the deadline). The server has expired the session and let another holder in; a
 * grant then must not be given out on the old node.
 *
 * The other holder is "another process": a worker thread (its own event loop, so it runs while
 * ours is blocked) with a raw node-zookeeper-client doing the plain lock recipe. Belief intervals
 * are on process.hrtime (system-wide monotonic).
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { LockLostError, type LockHandle } from '../../lib/index.js';
import { useFileServer } from '../fixtures/file-server.js';
import { lockClient } from '../fixtures/lock-clients.js';
import { waitFor } from '../support/index.js';

const server = useFileServer();
const SESSION_TIMEOUT = 2_000;
const workers: Worker[] = [];

afterEach(async () => {
  await Promise.all(workers.splice(0).map((worker) => worker.terminate()));
});

/** The other process's lock client (plain CommonJS, run in a worker thread). */
const OTHER_HOLDER = `
const { parentPort, workerData } = require('node:worker_threads');
const zk = require(workerData.clientPath);
const flag = new Int32Array(workerData.flag);
const { dir } = workerData;
const client = zk.createClient(workerData.connectString, { sessionTimeout: 4000, retries: 0 });
let mine;
const fail = (error) => parentPort.postMessage({ error: String(error) });
const sequence = (name) => Number(name.slice(-10));
function check() {
  client.getChildren(dir, (error, children) => {
    if (error) return fail(error);
    const queue = children.filter((n) => /lock-\\d{10}$/.test(n)).sort((a, b) => sequence(a) - sequence(b));
    const index = queue.indexOf(mine);
    if (index === 0) {
      const at = process.hrtime.bigint();
      Atomics.store(flag, 0, 1);
      parentPort.postMessage({ acquired: at });
      return;
    }
    client.exists(dir + '/' + queue[index - 1], () => check(), (error, stat) => {
      if (error) return fail(error);
      if (!stat) check();
    });
  });
}
client.once('connected', () => {
  client.create(dir + '/_c_other-lock-', Buffer.alloc(0), zk.CreateMode.EPHEMERAL_SEQUENTIAL, (error, path) => {
    if (error) return fail(error);
    mine = path.slice(dir.length + 1);
    parentPort.postMessage({ queued: true });
    check();
  });
});
parentPort.on('message', (message) => {
  if (message !== 'release') return;
  const at = process.hrtime.bigint();
  client.remove(dir + '/' + mine, -1, () => {
    parentPort.postMessage({ released: at });
    client.close();
  });
});
client.connect();
`;

interface OtherHolder {
  /** Set to 1 (Atomics) when the other holder holds the lock: readable while our event loop is blocked. */
  holds: () => boolean;
  acquiredAt: Promise<bigint>;
  releasedAt: Promise<bigint>;
  release: () => void;
}

async function otherHolder(dir: string): Promise<OtherHolder> {
  const flag = new SharedArrayBuffer(4);
  const view = new Int32Array(flag);
  const clientPath = createRequire(import.meta.url).resolve('node-zookeeper-client');
  const worker = new Worker(OTHER_HOLDER, {
    eval: true,
    workerData: { clientPath, flag, dir, connectString: server.connectString },
  });
  workers.push(worker);
  let queued!: () => void;
  const isQueued = new Promise<void>((resolve) => (queued = resolve));
  let acquired!: (at: bigint) => void;
  let released!: (at: bigint) => void;
  const acquiredAt = new Promise<bigint>((resolve) => (acquired = resolve));
  const releasedAt = new Promise<bigint>((resolve) => (released = resolve));
  let failure: string | undefined;
  worker.on('message', (message: { queued?: true; acquired?: bigint; released?: bigint; error?: string }) => {
    if (message.error) failure = message.error;
    if (message.queued) queued();
    if (message.acquired !== undefined) acquired(message.acquired);
    if (message.released !== undefined) released(message.released);
  });
  await Promise.race([
    isQueued,
    waitFor(() => failure, { timeout: 15_000 }).then((error) => {
      throw new Error(`the other holder failed: ${error}`);
    }),
  ]);
  return {
    holds: () => Atomics.load(view, 0) === 1,
    acquiredAt,
    releasedAt,
    release: () => worker.postMessage('release', []),
  };
}

/**
 * Blocks the event loop (a long synchronous computation) until the other holder holds the lock:
 * our session has then expired on the server, and our presumption timer has not run.
 */
function blockUntil(holds: () => boolean, limitMs: number): void {
  const end = performance.now() + limitMs;
  while (!holds() && performance.now() < end) {
    // busy: no timer, no socket event of ours runs
  }
  if (!holds()) throw new Error(`staging failed: the other holder did not get the lock within ${limitMs} ms`);
}

/** [from, to) intervals overlap. */
function overlap(a: [bigint, bigint], b: [bigint, bigint]): boolean {
  return a[0] < b[1] && b[0] < a[1];
}

describe('adversary: grants without a round trip after the presumed loss', () => {
  it('a coalesced hand-off made after the session expired does not hand over the lost node', async () => {
    const dir = '/adversary/handoff';
    const { locks } = await lockClient(server.connectString, {
      sessionTimeout: SESSION_TIMEOUT,
      coalesce: { maxHandoffs: 100, maxHoldMs: 60_000 },
    });
    const first = await locks.acquire(dir);
    let grantedAt: bigint | undefined;
    let abortedAt: bigint | undefined;
    const second = locks.acquire(dir, { timeout: 30_000 }).then((lock) => {
      grantedAt = process.hrtime.bigint();
      if (lock.signal.aborted) abortedAt = grantedAt;
      else lock.signal.addEventListener('abort', () => (abortedAt ??= process.hrtime.bigint()), { once: true });
      return lock;
    });
    const other = await otherHolder(dir);

    blockUntil(other.holds, 4 * SESSION_TIMEOUT);
    void first.release().catch(() => undefined); // the local hand-off happens here, synchronously

    // The other holder lets go a moment later (it holds the lock until then).
    const releaseOther = setTimeout(other.release, 300);
    let lock: LockHandle;
    try {
      lock = await second;
    } finally {
      clearTimeout(releaseOther);
    }
    const end = abortedAt ?? process.hrtime.bigint();
    other.release();
    const theirs: [bigint, bigint] = [await other.acquiredAt, await other.releasedAt];
    const ours: [bigint, bigint] = [grantedAt!, end];

    expect(overlap(ours, theirs), 'our holder and the other holder believed at once').toBe(false);
    expect(lock.node, 'the lost node was handed over').not.toBe(first.node);
    await lock.release();
  });

  it('a reentrant acquisition made after the session expired fails with the loss', async () => {
    const dir = '/adversary/reenter';
    const { locks } = await lockClient(server.connectString, { sessionTimeout: SESSION_TIMEOUT });
    const verdict = await locks.withLock(dir, async () => {
      const other = await otherHolder(dir);
      blockUntil(other.holds, 4 * SESSION_TIMEOUT);
      const told = await locks.acquire(dir).then(
        (lock) =>
          lock.signal.aborted
            ? 'told'
            : 'a nested handle, not aborted, was granted while another process held the lock',
        (error: unknown) => (error instanceof LockLostError ? 'told' : `failed otherwise: ${String(error)}`),
      );
      other.release();
      return told;
    });
    expect(verdict).toBe('told');
  });
});
