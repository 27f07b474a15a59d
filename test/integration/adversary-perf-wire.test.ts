/**
 * Adversary (issue 13's perf work, commit d958a4b): the adapter now matches replies to sent
 * packets with one FIFO in sending order instead of a map by xid. The send time of the packet a
 * reply answers becomes `lastAcknowledgedSend`, from which the session is presumed lost (safety
 * invariant 1): crediting a reply to a packet sent LATER than the one it answers would move the
 * presumption late, past the server's expiry (two holders). These pin what is credited when
 * several packets are outstanding, against a real server behind the loopback proxy: the proxy
 * delays a reply, and cuts the link before a later packet reaches the server, so that the later
 * packet is never answered.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ZooKeeperClientAdapter } from '../../lib/connection/zookeeper-client.adapter.js';
import { useFileServer } from '../fixtures/file-server.js';
import { lockClient } from '../fixtures/lock-clients.js';
import { isNotification, isPing, TcpProxy, waitFor, type ZkFrame } from '../support/index.js';

const server = useFileServer();
const proxies: TcpProxy[] = [];
const adapters: ZooKeeperClientAdapter[] = [];

afterEach(async () => {
  for (const proxy of proxies) proxy.restore();
  await Promise.all(adapters.splice(0).map((adapter) => adapter.close(1_000)));
  await Promise.all(proxies.splice(0).map((proxy) => proxy.close()));
});

/** The adapter's wire, to send a ping now and read when the last packet was sent. */
interface WireInside {
  sendPing(): void;
  lastSend: number;
}

async function proxiedAdapter(): Promise<{ proxy: TcpProxy; adapter: ZooKeeperClientAdapter; wire: WireInside }> {
  const proxy = await TcpProxy.start({ host: server.host, port: server.port });
  proxies.push(proxy);
  const adapter = new ZooKeeperClientAdapter({
    connectionString: proxy.connectString,
    sessionTimeout: 4_000,
    operationTimeout: 10_000,
    reconnectDelay: 200,
    auth: [],
    acl: [],
  });
  adapters.push(adapter);
  let connected = false;
  adapter.onEvent((event) => (connected ||= event.type === 'connected'));
  adapter.connect();
  await waitFor(() => connected, { message: 'connected' });
  expect(await adapter.exists('/')).not.toBeNull();
  return { proxy, adapter, wire: (adapter as unknown as { wire: WireInside }).wire };
}

/** Resolves at the next frame going `direction` that `match`es. */
function nextFrame(proxy: TcpProxy, direction: 'up' | 'down', match: (frame: ZkFrame) => boolean): Promise<ZkFrame> {
  return new Promise((resolve) => {
    const stop = proxy.onFrame((d, frame) => {
      if (d !== direction || !match(frame)) return;
      stop();
      resolve(frame);
    });
  });
}

/**
 * Sends `first` (returns its send time); once its reply has reached the proxy (and waits there,
 * delayed), sends a ping that the proxy never lets reach the server. Resolves, once the reply to
 * `first` has been taken in, with both send times and what the adapter credited.
 */
async function answeredThenUnanswered(
  proxy: TcpProxy,
  adapter: ZooKeeperClientAdapter,
  wire: WireInside,
  first: () => number,
  isFirstReply: (frame: ZkFrame) => boolean,
): Promise<{ firstAt: number; pingAt: number; credited: number }> {
  const before = adapter.lastAcknowledgedSend;
  proxy.setLatency('down', 400); // the reply to `first` reaches us 400 ms after the server sent it
  const replied = nextFrame(proxy, 'down', isFirstReply);
  const firstAt = first();
  await replied;
  const cut = proxy.cutBefore('up', isPing); // the next ping never reaches the server
  wire.sendPing();
  const pingAt = wire.lastSend;
  await cut;
  expect(pingAt).toBeGreaterThan(firstAt);
  const credited = await waitFor(() => (adapter.lastAcknowledgedSend !== before ? adapter.lastAcknowledgedSend : 0), {
    timeout: 3_000,
    message: 'the delayed reply taken in',
  });
  return { firstAt, pingAt, credited };
}

describe('adversary: which sent packet a reply acknowledges (one FIFO in sending order)', () => {
  it('two pings outstanding: the reply credits the OLDER ping, not the one the server never got', async () => {
    const { proxy, adapter, wire } = await proxiedAdapter();
    const { firstAt, credited } = await answeredThenUnanswered(
      proxy,
      adapter,
      wire,
      () => {
        wire.sendPing();
        return wire.lastSend;
      },
      isPing,
    );
    expect(credited).toBe(firstAt);
  });

  it("a request's reply credits the request, not a ping sent after it that the server never got", async () => {
    const { proxy, adapter, wire } = await proxiedAdapter();
    let exists: Promise<unknown> | undefined;
    const { firstAt, credited } = await answeredThenUnanswered(
      proxy,
      adapter,
      wire,
      () => {
        const sentBefore = wire.lastSend;
        exists = adapter.exists('/');
        expect(wire.lastSend).toBeGreaterThan(sentBefore); // sent at once (connected)
        return wire.lastSend;
      },
      (frame) => frame.index > 0 && frame.xid !== undefined && frame.xid >= 0,
    );
    expect(await exists).not.toBeNull();
    expect(credited).toBe(firstAt);
  });

  it('a watch notification credits nothing, not even a ping outstanding when it arrives', async () => {
    const { proxy, adapter, wire } = await proxiedAdapter();
    const other = await lockClient(server.connectString);
    const path = `/adversary-perf-wire-${Date.now()}`;
    await other.connection.create(path, Buffer.alloc(0), 'persistent');
    let changed = false;
    expect(await adapter.watch(path, () => (changed = true))).not.toBeNull();
    const before = adapter.lastAcknowledgedSend;

    proxy.pause('up'); // the ping waits in the proxy: the server has not got it
    wire.sendPing();
    const notified = nextFrame(proxy, 'down', isNotification);
    await other.connection.setData(path, Buffer.from('changed'));
    await notified;
    await waitFor(() => changed, { timeout: 3_000, message: 'the notification taken in' });
    expect(adapter.lastAcknowledgedSend).toBe(before);

    proxy.resume('up'); // now the server gets the ping and answers it
    await waitFor(() => adapter.lastAcknowledgedSend > before, { timeout: 3_000, message: 'the ping answered' });
    await other.connection.remove(path);
  });
});
