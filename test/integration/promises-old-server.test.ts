/**
 * README (Production notes): "ZooKeeper 3.5.0, the first release with removeWatches, lacks
 * containers: it gets persistent directories, which stay." The test server (3.8) has containers,
 * so a small proxy in front of it answers every createContainer request (opcode 19) the way a
 * server without them does, UNIMPLEMENTED (-6), and passes everything else through.
 * A container and a persistent node look alike to a client (the Stat shows ephemeralOwner 0 for
 * both); they differ in what the server does once they are emptied: it deletes the container.
 */
import * as net from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import { useFileServer } from '../fixtures/file-server.js';
import { lockClient } from '../fixtures/lock-clients.js';
import { waitFor } from '../support/index.js';

const server = useFileServer();

const CREATE_CONTAINER = 19;
const UNIMPLEMENTED = -6;

/** Splits a byte stream into ZooKeeper frames (4-byte length, then the frame). */
class Frames {
  private pending = Buffer.alloc(0);
  push(chunk: Buffer): Buffer[] {
    this.pending = Buffer.concat([this.pending, chunk]);
    const frames: Buffer[] = [];
    while (this.pending.length >= 4 && this.pending.length >= 4 + this.pending.readInt32BE(0)) {
      const end = 4 + this.pending.readInt32BE(0);
      frames.push(this.pending.subarray(0, end));
      this.pending = this.pending.subarray(end);
    }
    return frames;
  }
}

/** A proxy to the test server that plays a server without container nodes; counts the refusals. */
async function serverWithoutContainers(): Promise<{ connectString: string; refused: () => number }> {
  let refused = 0;
  const proxy = net.createServer((client) => {
    const upstream = net.connect({ host: server.host, port: server.port });
    const up = new Frames();
    const down = new Frames();
    let first = true; // the connect request has no request header
    client.on('data', (chunk: Buffer) => {
      for (const frame of up.push(chunk)) {
        if (!first && frame.readInt32BE(8) === CREATE_CONTAINER) {
          // Reply header: xid, zxid, err; only whole frames were forwarded down, so this fits in.
          const reply = Buffer.alloc(20);
          reply.writeInt32BE(16, 0);
          reply.writeInt32BE(frame.readInt32BE(4), 4);
          reply.writeBigInt64BE(0n, 8);
          reply.writeInt32BE(UNIMPLEMENTED, 16);
          client.write(reply);
          refused += 1;
        } else upstream.write(frame);
        first = false;
      }
    });
    upstream.on('data', (chunk: Buffer) => {
      for (const frame of down.push(chunk)) client.write(frame);
    });
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  onTestFinished(() => new Promise<void>((resolve) => proxy.close(() => resolve())));
  const { port } = proxy.address() as net.AddressInfo;
  return { connectString: `127.0.0.1:${port}`, refused: () => refused };
}

describe('a server without container nodes (ZooKeeper 3.5.0)', () => {
  it('gets persistent lock directories, from its first refusal on; the locks work as usual', async () => {
    const old = await serverWithoutContainers();
    const { locks } = await lockClient(old.connectString);
    const direct = await lockClient(server.connectString);

    await locks.withLock('/old-server/a/lock', () => undefined);
    expect(old.refused()).toBe(1); // asked once, then persistent nodes from then on
    const lease = await locks.acquire('/old-server/b', { leases: 2 });
    await lease.release();
    expect(old.refused()).toBe(1);

    // The same through the real server: containers. Once the server's container check has
    // reclaimed these (emptied after the others), it has seen the others emptied too: they stay.
    await direct.locks.withLock('/new-server/a/lock', () => undefined);
    await waitFor(async () => (await direct.connection.exists('/new-server/a/lock')) === null, {
      message: 'the container directory reclaimed',
    });
    for (const path of ['/old-server/a/lock', '/old-server/b/leases', '/old-server/b/locks']) {
      expect(await direct.connection.exists(path)).not.toBeNull();
    }
  });
});
