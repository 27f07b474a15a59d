/**
 * A server that accepts TCP but never answers the connect request (a hung JVM, a stuck proxy):
 * node-zookeeper-client stops its connect timer once TCP is up, so it waited on that socket
 * forever and never tried the other servers. Now a server gets sessionTimeout / servers to answer
 * (as the Java client), then the next one is tried. Real server; the hung one is a blackholed proxy.
 */
import { afterEach, expect, it } from 'vitest';
import { ZkConnectionService } from '../../lib/index.js';
import { useFileServer } from '../fixtures/file-server.js';
import { TcpProxy } from '../support/index.js';

const server = useFileServer();
const opened: { close(): Promise<void> }[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((x) => x.close()));
});

it('start-up reaches the answering server when another one accepts TCP but never answers (8 connections)', async () => {
  const hung = await TcpProxy.start({ host: server.host, port: server.port });
  opened.push(hung);
  hung.blackhole(); // accepts, reads, never answers
  const healthy = await TcpProxy.start({ host: server.host, port: server.port });
  opened.push(healthy);
  // The client shuffles the servers: with 8 connections, at least one tries the hung server first
  // (all 8 starting with the healthy one has a chance of 1 in 256).
  const connections = Array.from(
    { length: 8 },
    () =>
      new ZkConnectionService({
        connectionString: `${hung.connectString},${healthy.connectString}`,
        sessionTimeout: 4_000, // 2 s per server to answer the connect request
        connectTimeout: 8_000,
        lazyConnect: true,
      }),
  );
  opened.push(...connections);
  const results = await Promise.allSettled(connections.map((connection) => connection.connect()));
  expect(results.map((result) => result.status)).toEqual(Array(8).fill('fulfilled'));
  expect(connections.map((connection) => connection.serverAddress())).toEqual(Array(8).fill(healthy.connectString));
}, 30_000);
