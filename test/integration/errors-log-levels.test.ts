/**
 * Issue 15, "logs at the right level": a recovery is logged at the level of the problem it ends.
 * Cut off (WARN) -> "reconnected, the session survives" is a WARN too; the session presumed lost
 * (WARN) -> "new session" is a WARN too; a start without trouble is one LOG line. (They were
 * DEBUG: a production log showed the problem and never its end.) Real server, through a proxy.
 */
import { Logger, type LoggerService } from '@nestjs/common';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ZkConnectionService } from '../../lib/index.js';
import { startZooKeeper, TcpProxy, waitFor, type ZkServer } from '../support/index.js';

let server: ZkServer;
let proxy: TcpProxy | undefined;
let connection: ZkConnectionService | undefined;
const logs: [level: string, message: string][] = [];

const capture: LoggerService = {
  log: (message: unknown) => logs.push(['log', String(message)]),
  warn: (message: unknown) => logs.push(['warn', String(message)]),
  error: (message: unknown) => logs.push(['error', String(message)]),
  debug: (message: unknown) => logs.push(['debug', String(message)]),
  verbose: (message: unknown) => logs.push(['verbose', String(message)]),
};

beforeAll(async () => {
  server = await startZooKeeper();
  Logger.overrideLogger(capture);
});
afterEach(async () => {
  await connection?.close();
  await proxy?.close();
  logs.length = 0;
});
afterAll(async () => {
  Logger.overrideLogger(false);
  await server?.dispose();
});

/** Waits until a line matching `pattern` was logged; returns all lines so far. */
async function logged(pattern: RegExp, what: string): Promise<[string, string][]> {
  await waitFor(() => logs.some(([, message]) => pattern.test(message)), { timeout: 15_000, message: what });
  return [...logs];
}

const SESSION = /session 0x[0-9a-f]{16}/;

describe('connection log levels', () => {
  it('cut off, then reconnected with the session alive: both warnings', async () => {
    proxy = await TcpProxy.start({ host: server.host, port: server.port });
    connection = new ZkConnectionService({ connectionString: proxy.connectString, sessionTimeout: 4_000 });
    await connection.connect();
    proxy.reset(); // drops the connection; the client reconnects at once, within the session timeout
    const lines = await logged(/^Reconnected/, 'the reconnection is logged');
    expect(lines).toEqual([
      ['log', expect.stringMatching(/^Connected to ZooKeeper at 127\.0\.0\.1:\d+, session 0x[0-9a-f]{16}$/)],
      [
        'warn',
        expect.stringMatching(
          /^Disconnected from ZooKeeper; held locks are presumed lost in \d+ ms unless reconnected$/,
        ),
      ],
      [
        'warn',
        expect.stringMatching(/^Reconnected to ZooKeeper, session 0x[0-9a-f]{16} survives: held locks are still ours$/),
      ],
    ]);
    const [[, connected], , [, reconnected]] = lines as [[string, string], unknown, [string, string]];
    expect(reconnected.match(SESSION)?.[0]).toBe(connected.match(SESSION)?.[0]);
  });

  it('the session presumed lost, then a new session: both warnings', async () => {
    proxy = await TcpProxy.start({ host: server.host, port: server.port });
    connection = new ZkConnectionService({ connectionString: proxy.connectString, sessionTimeout: 2_000 });
    await connection.connect();
    proxy.blackhole(); // no answers: the client drops the socket, then presumes the session lost
    await logged(/presuming the session expired/, 'the presumed loss is logged');
    proxy.restore();
    const lines = await logged(/^New ZooKeeper session/, 'the new session is logged');
    expect(lines.map(([level]) => level)).toEqual(['log', 'warn', 'warn', 'warn']);
    expect(lines.slice(1).map(([, message]) => message)).toEqual([
      expect.stringMatching(/^Disconnected from ZooKeeper/),
      expect.stringMatching(/^No answer from ZooKeeper for 90% of the session timeout: presuming the session expired$/),
      expect.stringMatching(/^New ZooKeeper session 0x[0-9a-f]{16} at 127\.0\.0\.1:\d+: locks can be taken again$/),
    ]);
  });
});
