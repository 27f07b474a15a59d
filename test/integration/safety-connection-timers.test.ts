/**
 * Timers in lib/connection: on the monotonic clock, and never armed with more than setTimeout
 * keeps (Node turns a delay above 2^31-1 ms into 1 ms, with a TimeoutOverflowWarning).
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { MAX_TIMER_DELAY, timerAt } from '../../lib/connection/adapter/timers.js';
import { ZooKeeperClientAdapter } from '../../lib/connection/zookeeper-client.adapter.js';
import { useFileServer } from '../fixtures/file-server.js';
import { waitFor } from '../support/index.js';

const server = useFileServer();

afterEach(() => {
  vi.useRealTimers();
});

describe('timerAt', () => {
  it('fires at a deadline further away than one setTimeout can wait, not before', () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
    const fired: number[] = [];
    const deadline = performance.now() + MAX_TIMER_DELAY + 60_000;
    timerAt(deadline, () => fired.push(performance.now()));
    vi.advanceTimersByTime(MAX_TIMER_DELAY);
    expect(fired).toEqual([]);
    vi.advanceTimersByTime(60_000);
    expect(fired).toHaveLength(1);
    expect(fired[0]).toBeGreaterThanOrEqual(deadline);
  });

  it('fires (asynchronously) for a deadline already past, and not after cancel()', () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
    let fired = 0;
    timerAt(performance.now() - 5, () => fired++);
    const cancelled = timerAt(performance.now() + 10, () => fired++);
    expect(fired).toBe(0);
    cancelled.cancel();
    vi.advanceTimersByTime(100);
    expect(fired).toBe(1);
  });
});

describe('an adapter given durations above 2^31-1 ms', () => {
  it('connects, answers and closes without overflowing a timer', async () => {
    const overflows: string[] = [];
    const onWarning = (warning: Error) => {
      if (warning.name === 'TimeoutOverflowWarning') overflows.push(warning.message);
    };
    process.on('warning', onWarning);
    const huge = 30 * 24 * 3600 * 1000; // 30 days
    const adapter = new ZooKeeperClientAdapter({
      connectionString: server.connectString,
      sessionTimeout: huge,
      operationTimeout: huge,
      reconnectDelay: huge,
      auth: [],
      acl: [],
    });
    try {
      let connected = false;
      adapter.onEvent((event) => (connected ||= event.type === 'connected'));
      adapter.connect();
      await waitFor(() => connected, { message: 'connected' });
      expect(await adapter.exists('/')).not.toBeNull();
    } finally {
      await adapter.close(1_000);
      await new Promise((resolve) => setImmediate(resolve)); // warnings are emitted on the next tick
      process.off('warning', onWarning);
    }
    expect(overflows).toEqual([]);
  });
});
