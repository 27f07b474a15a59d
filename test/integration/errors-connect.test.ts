/**
 * Issue 15, "errors that tell the fix": a refused connection (nothing listens) says "refused" and
 * names the servers, instead of "no server answered"; it is warned about at once, while the
 * start-up goes on waiting up to connectTimeout (a server that starts listening meanwhile is
 * connected to: a refusal says "not now", not "never"). With several servers, the error says how
 * each one failed.
 */
import * as net from 'node:net';
import { Logger, type LoggerService } from '@nestjs/common';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ZkConnectError, ZkConnectionService } from '../../lib/index.js';
import { startZooKeeper, TcpProxy, waitFor, type ZkServer } from '../support/index.js';

let server: ZkServer;
const connections: ZkConnectionService[] = [];
const closers: (() => Promise<void> | void)[] = [];
let logs: { level: string; message: string }[] = [];

const capture: LoggerService = {
  log: (message: unknown) => logs.push({ level: 'log', message: String(message) }),
  warn: (message: unknown) => logs.push({ level: 'warn', message: String(message) }),
  error: (message: unknown) => logs.push({ level: 'error', message: String(message) }),
  debug: (message: unknown) => logs.push({ level: 'debug', message: String(message) }),
  verbose: (message: unknown) => logs.push({ level: 'verbose', message: String(message) }),
};

beforeAll(async () => {
  server = await startZooKeeper();
  Logger.overrideLogger(capture);
});
afterEach(async () => {
  await Promise.all(connections.splice(0).map((connection) => connection.close()));
  for (const close of closers.splice(0)) await close();
  logs = [];
});
afterAll(async () => {
  Logger.overrideLogger(false);
  await server?.dispose();
});

/** A loopback port nothing listens on (it was free a moment ago). */
async function freePort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as net.AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

function connectionTo(connectionString: string, connectTimeout: number): ZkConnectionService {
  const connection = new ZkConnectionService({ connectionString, connectTimeout, reconnectDelay: 100 });
  connections.push(connection);
  return connection;
}

const warnings = (): string[] => logs.filter((line) => line.level === 'warn').map((line) => line.message);

describe('a refused connection', () => {
  it('says "refused" and names the server; a warning says so at once, while start-up goes on trying', async () => {
    const port = await freePort();
    const connection = connectionTo(`127.0.0.1:${port}`, 1_500);
    const outcome = connection.connect().then(
      () => undefined,
      (error: unknown) => error,
    );
    await waitFor(() => warnings().length > 0, { timeout: 5_000, message: 'a warning about the refusal' });
    expect(connection.state).toBe('connecting'); // still trying: the warning came before the deadline
    expect(warnings()).toEqual([
      `Every ZooKeeper server refused the connection: nothing listens at 127.0.0.1:${port}; retrying until connectTimeout (1500 ms)`,
    ]);
    const error = await outcome;
    expect(error).toBeInstanceOf(ZkConnectError);
    expect((error as Error).message).toBe(
      `Could not connect to ZooKeeper at 127.0.0.1:${port} within 1500 ms (refused by every server: nothing ` +
        `listens at 127.0.0.1:${port}). Is a server running there? Check connectionString and connectTimeout.`,
    );
    expect(warnings()).toHaveLength(1); // once, not once per round
  });

  it('with several servers, the error says how each one failed', async () => {
    const refused = await freePort();
    const resetting = await TcpProxy.start({ host: server.host, port: server.port });
    closers.push(() => resetting.close());
    resetting.refuse(); // accepts, then resets the connection
    const connection = connectionTo(`127.0.0.1:${refused},${resetting.connectString}`, 1_500);
    const error = await connection.connect().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ZkConnectError);
    const [first, second] = [`127.0.0.1:${refused}`, resetting.connectString].toSorted();
    const outcomes: Record<string, string> = {
      [`127.0.0.1:${refused}`]: 'refused',
      [resetting.connectString]: 'reset the connection',
    };
    expect((error as Error).message).toContain(`(${first}: ${outcomes[first]}; ${second}: ${outcomes[second]})`);
    expect(warnings()).toEqual([]); // not every server refused
  });

  it('a server that accepts the connection but never answers is "no answer"', async () => {
    const silent = await TcpProxy.start({ host: server.host, port: server.port });
    closers.push(() => silent.close());
    silent.blackhole();
    const connection = connectionTo(silent.connectString, 1_000);
    const error = await connection.connect().catch((e: unknown) => e);
    expect((error as Error).message).toContain(`within 1000 ms (${silent.connectString}: no answer)`);
  });

  it('a server that starts listening within connectTimeout is connected to, and that ends the warning with a warning', async () => {
    const port = await freePort();
    const connection = connectionTo(`127.0.0.1:${port}`, 20_000);
    const connected = connection.connect();
    await waitFor(() => warnings().length > 0, { timeout: 5_000, message: 'a warning about the refusal' });
    // Now something listens there: a plain forwarder to the real server.
    const sockets = new Set<net.Socket>();
    const forwarder = net.createServer((socket) => {
      const upstream = net.connect(server.port, server.host);
      sockets.add(socket).add(upstream);
      socket.pipe(upstream).pipe(socket);
      socket.on('error', () => upstream.destroy());
      upstream.on('error', () => socket.destroy());
    });
    await new Promise<void>((resolve) => forwarder.listen(port, '127.0.0.1', resolve));
    closers.push(async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => forwarder.close(() => resolve()));
    });
    await connected;
    expect(connection.state).toBe('connected');
    expect(warnings()).toEqual([
      expect.stringContaining('Every ZooKeeper server refused the connection'),
      expect.stringMatching(new RegExp(`^Connected to ZooKeeper at 127\\.0\\.0\\.1:${port}, session 0x[0-9a-f]{16}$`)),
    ]);
  });

  it('a start without trouble is one log line, not a warning', async () => {
    const connection = connectionTo(server.connectString, 5_000);
    await connection.connect();
    expect(logs).toEqual([
      {
        level: 'log',
        message: expect.stringMatching(/^Connected to ZooKeeper at 127\.0\.0\.1:\d+, session 0x[0-9a-f]{16}$/),
      },
    ]);
  });
});
