/**
 * Issue 16, "clear failures": every way TLS to the ensemble can fail makes start-up fail within
 * connectTimeout with a ZkConnectError that names the server and the reason (the client library
 * itself would retry silently forever): a server certificate that does not verify (wrong CA, not
 * for this host, expired), a plaintext server on the port, a plaintext client on a TLS port, no
 * client certificate for a server that needs one, an expired or untrusted client certificate,
 * a `tls` function that fails. Also the option checks, and the warnings: digest credentials sent
 * in clear to a server off this machine, a failing TLS reconnect after a session. Real servers.
 */
import { Logger, type LoggerService } from '@nestjs/common';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { InvalidOptionsError, ZkConnectError, ZkConnectionService, type ZkLockOptions } from '../../lib/index.js';
import { issueTestCertificate, type TlsCertificate } from '../../lib/testing/servers/tls.js';
import { startZooKeeper, TcpProxy, waitFor, type ZkServer } from '../support/index.js';

/** Start-up's deadline in these tests. */
const CONNECT_TIMEOUT = 3_000;
/** Timer and event-loop lag allowed on a loaded 2-core machine above the deadline. */
const TOLERANCE = 1_500;

let mutual: ZkServer; // TLS, ssl.clientAuth=need
let expiredServer: ZkServer; // TLS, its certificate expired yesterday
let plain: ZkServer; // plaintext clientPort only
let expiredClient: TlsCertificate;
let stranger: TlsCertificate;
const connections: ZkConnectionService[] = [];
const proxies: TcpProxy[] = [];
const logs: [level: string, message: string][] = [];
const capture: LoggerService = {
  log: (message: unknown) => logs.push(['log', String(message)]),
  warn: (message: unknown) => logs.push(['warn', String(message)]),
  error: (message: unknown) => logs.push(['error', String(message)]),
};

beforeAll(async () => {
  const [expiredCert, expiredClientCert, strangerCert] = await Promise.all([
    issueTestCertificate('expired-server', { san: 'ip:127.0.0.1', startDays: -3, validDays: 1 }),
    issueTestCertificate('expired-client', { startDays: -3, validDays: 1 }),
    issueTestCertificate('stranger', { issuer: 'other-ca' }),
  ]);
  expiredClient = expiredClientCert;
  stranger = strangerCert;
  [mutual, expiredServer, plain] = await Promise.all([
    startZooKeeper({ tls: { clientAuth: 'need' } }),
    startZooKeeper({ tls: { certificate: expiredCert } }),
    startZooKeeper(),
  ]);
  Logger.overrideLogger(capture);
}, 120_000);
afterEach(async () => {
  await Promise.all(connections.splice(0).map((connection) => connection.close()));
  await Promise.all(proxies.splice(0).map((proxy) => proxy.close()));
  logs.length = 0;
});
afterAll(async () => {
  Logger.overrideLogger(false);
  await Promise.all([mutual, expiredServer, plain].map((server) => server?.dispose()));
});

function client(options: Partial<ZkLockOptions> & { connectionString: string }): ZkConnectionService {
  const made = new ZkConnectionService({ connectTimeout: CONNECT_TIMEOUT, sessionTimeout: 2_000, ...options });
  connections.push(made);
  return made;
}

/** Start-up with `options`: the error it fails with, and how long it took (ms). */
async function startUpFailure(options: Partial<ZkLockOptions> & { connectionString: string }) {
  const started = performance.now();
  const error = await client(options)
    .connect()
    .then(
      () => undefined,
      (failure: unknown) => failure,
    );
  return { error: error as Error, elapsed: performance.now() - started };
}

/**
 * Start-up with `options` fails with a ZkConnectError within connectTimeout, naming `server` with a
 * TLS reason: returns the message (the reason is asserted by the test).
 */
async function failedStartUp(
  options: Partial<ZkLockOptions> & { connectionString: string },
  server: string,
): Promise<string> {
  const { error, elapsed } = await startUpFailure(options);
  expect(error).toBeInstanceOf(ZkConnectError);
  expect(error.message).toContain(`${server}: TLS: `);
  expect(elapsed).toBeLessThan(CONNECT_TIMEOUT + TOLERANCE);
  return error.message;
}

describe('TLS failures at start-up: ZkConnectError within connectTimeout, naming the server and the reason', () => {
  it("a wrong CA: the server's certificate does not verify", async () => {
    const other = await issueTestCertificate('ca-holder', { issuer: 'other-ca' });
    expect(
      await failedStartUp(
        { connectionString: mutual.connectString, tls: { ...mutual.tls!.clientOptions, ca: other.cert } },
        mutual.connectString,
      ),
    ).toMatch(
      /the server's certificate does not verify: .*\((SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY)\); tls\.ca must hold the CA that signed the servers' certificates/,
    );
  });

  it('a certificate for another host: does not verify either', async () => {
    expect(
      await failedStartUp(
        { connectionString: mutual.connectString, tls: { ...mutual.tls!.clientOptions, servername: 'zk.example.com' } },
        mutual.connectString,
      ),
    ).toMatch(/the server's certificate is not for this host: .*zk\.example\.com.*\(ERR_TLS_CERT_ALTNAME_INVALID\)/);
  });

  it('an expired server certificate', async () => {
    expect(
      await failedStartUp(
        { connectionString: expiredServer.connectString, tls: { ca: expiredServer.tls!.ca } },
        expiredServer.connectString,
      ),
    ).toMatch(
      /the server's certificate is not valid now: certificate has expired \(CERT_HAS_EXPIRED\); the server needs a renewed certificate/,
    );
  });

  it('a plaintext server on that port (TLS client, clientPort)', async () => {
    expect(
      await failedStartUp({ connectionString: plain.connectString, tls: { ca: mutual.tls!.ca } }, plain.connectString),
    ).toMatch(/the server closed the connection during the TLS handshake: it does not speak TLS on this port/);
  });

  it('a plaintext client on a TLS port (secureClientPort)', async () => {
    expect(await failedStartUp({ connectionString: mutual.connectString }, mutual.connectString)).toMatch(
      /the server speaks TLS only on this port \(a secureClientPort\) and closed our plaintext connection; set the tls option/,
    );
  });

  it('mutual TLS: a client without a certificate is refused', async () => {
    expect(
      await failedStartUp(
        { connectionString: mutual.connectString, tls: { ca: mutual.tls!.ca } },
        mutual.connectString,
      ),
    ).toMatch(
      /the server refused the TLS handshake \(alert: .*\): it requires a client certificate \(ssl\.clientAuth=need\) and we sent none; set tls\.cert and tls\.key/,
    );
  });

  it('mutual TLS: an expired client certificate', async () => {
    expect(
      await failedStartUp(
        {
          connectionString: mutual.connectString,
          tls: { ca: mutual.tls!.ca, cert: expiredClient.cert, key: expiredClient.key },
        },
        mutual.connectString,
      ),
    ).toMatch(
      /the server refused the TLS handshake \(alert: .*\): our client certificate \(CN=expired-client,O=zk-lock tests\) expired on \d{4}-\d\d-\d\dT.*; renew tls\.cert/,
    );
  });

  it('mutual TLS: a client certificate from a CA the server does not trust', async () => {
    expect(
      await failedStartUp(
        { connectionString: mutual.connectString, tls: { ca: mutual.tls!.ca, cert: stranger.cert, key: stranger.key } },
        mutual.connectString,
      ),
    ).toMatch(
      /it does not accept our client certificate \(CN=stranger,O=zk-lock tests, issued by CN=another CA,O=zk-lock tests\)/,
    );
  });

  it('a tls function that throws: the attempt fails with its message', async () => {
    expect(
      await failedStartUp(
        {
          connectionString: mutual.connectString,
          tls: () => {
            throw new Error('the secret store is sealed');
          },
        },
        mutual.connectString,
      ),
    ).toMatch(/the tls option's function failed: the secret store is sealed/);
  });

  it('a tls function whose promise never settles (a hung secret store): the attempt gives up, not the loop', async () => {
    // The attempt's own connect timeout is the session timeout (2000 ms) over one server.
    const message = await failedStartUp(
      { connectionString: mutual.connectString, tls: () => new Promise<never>(() => undefined) },
      mutual.connectString,
    );
    expect(message).toMatch(/the tls option's function failed: no answer within 2000 ms/);
  });

  it('every server of an ensemble string is named with its own reason', async () => {
    const message = await failedStartUp(
      { connectionString: `${mutual.connectString},${plain.connectString}`, tls: { ca: mutual.tls!.ca } },
      mutual.connectString,
    );
    expect(message).toMatch(/it requires a client certificate/);
    expect(message).toContain(`${plain.connectString}: TLS: the server closed the connection during the TLS handshake`);
  });

  it('is logged while it lasts: one warning naming each server and the reason', async () => {
    await startUpFailure({ connectionString: mutual.connectString, tls: { ca: mutual.tls!.ca } });
    const warnings = logs.filter(([level, message]) => level === 'warn' && message.startsWith('TLS to every'));
    expect(warnings).toEqual([
      [
        'warn',
        expect.stringMatching(
          new RegExp(
            `^TLS to every ZooKeeper server failed \\(${mutual.connectString}: TLS: the server refused the TLS handshake .*\\); retrying until connectTimeout \\(${CONNECT_TIMEOUT} ms\\)$`,
          ),
        ),
      ],
    ]);
  });
});

describe('after a session: a TLS failure on reconnect is logged, not a silent loop', () => {
  it('a rotation to a certificate the servers do not trust: warned with the reason; rotating back reconnects', async () => {
    const proxy = await TcpProxy.start({ host: mutual.host, port: mutual.port });
    proxies.push(proxy);
    let current = mutual.tls!.clientOptions;
    const zk = client({ connectionString: proxy.connectString, sessionTimeout: 4_000, tls: () => current });
    await zk.connect();
    const session = zk.currentSession()!.id;
    current = { ca: mutual.tls!.ca, cert: stranger.cert, key: stranger.key };
    proxy.reset();
    await waitFor(() => logs.some(([level, message]) => level === 'warn' && message.startsWith('TLS to every')), {
      message: 'the failing reconnect is logged',
    });
    const line = logs.find(([, message]) => message.startsWith('TLS to every'))![1];
    expect(line).toContain(`${proxy.connectString}: TLS: the server refused the TLS handshake`);
    expect(line).toContain('it does not accept our client certificate (CN=stranger,O=zk-lock tests');
    expect(line).toMatch(/; retrying$/);
    current = mutual.tls!.clientOptions;
    await waitFor(() => zk.state === 'connected', { message: 'reconnected with the trusted certificate' });
    // Back within the session timeout: the same session, its locks kept.
    expect(zk.currentSession()?.id).toBe(session);
  });
});

describe('the tls option is checked at start-up (never echoing key material)', () => {
  const base = { connectionString: '127.0.0.1:2181', lazyConnect: true };
  const pem = () => ({ cert: mutual.tls!.client.cert, key: mutual.tls!.client.key });

  it.each([
    [
      'a file path instead of the PEM text',
      () => ({ ca: '/etc/zookeeper/ca.pem' }),
      'tls.ca',
      /pass the file's content/,
    ],
    ['a cert without its key', () => ({ cert: pem().cert }), 'tls', /has only one of cert and key/],
    [
      "a key that is not the certificate's",
      () => ({ cert: pem().cert, key: expiredClient.key }),
      'tls',
      /cannot be used: .*key values mismatch/,
    ],
    ['an unknown key', () => ({ host: 'zk1' }), 'tls.host', /is not a TLS option nestjs-zk-lock passes on/],
    ['an unknown TLS version', () => ({ minVersion: 'TLSv2' }), 'tls.minVersion', /must be one of/],
    ['not an object', () => 'yes', 'tls', /must be true, Node TLS options/],
  ])('refuses %s', (_, tls, option, rule) => {
    let error: unknown;
    try {
      expect(new ZkConnectionService({ ...base, tls: tls() as ZkLockOptions['tls'] })).toBeUndefined();
    } catch (thrown) {
      error = thrown;
    }
    expect(error).toBeInstanceOf(InvalidOptionsError);
    expect((error as InvalidOptionsError).option).toBe(option);
    expect((error as InvalidOptionsError).rule).toMatch(rule);
    expect((error as Error).message).not.toContain('PRIVATE KEY');
  });

  it('accepts the x509 ACL scheme, and the auth scheme with a client certificate', () => {
    const acl = [{ scheme: 'x509', id: 'CN=billing,O=example', perms: 'crwda' }] as const;
    expect(() => new ZkConnectionService({ ...base, tls: pem(), acl: [...acl] })).not.toThrow();
    const auth = [{ scheme: 'auth', id: '', perms: 'crwda' }] as const;
    expect(() => new ZkConnectionService({ ...base, tls: pem(), acl: [...auth] })).not.toThrow();
  });
});

describe('start-up warnings', () => {
  const auth = [{ scheme: 'digest' as const, credentials: 'app:s3cret' }];
  const warned = () => logs.filter(([level]) => level === 'warn').map(([, message]) => message);

  it('digest credentials sent without TLS to a host that is not loopback: warned, naming it', async () => {
    await startUpFailure({ connectionString: 'zk-remote.invalid:2181', auth, connectTimeout: 200 });
    const warnings = warned().filter((message) => message.startsWith('The auth option'));
    expect(warnings).toEqual([
      'The auth option sends digest credentials (user:password) to ZooKeeper in clear text over the network ' +
        '(zk-remote.invalid:2181): anyone on the path can read them. Set the tls option (the servers must serve ' +
        'secureClientPort), or use mutual TLS with x509 ACLs instead of passwords.',
    ]);
    expect(warnings.join()).not.toContain('s3cret');
  });

  it('no warning to loopback, nor over TLS', async () => {
    await client({ connectionString: plain.connectString, auth }).connect();
    await startUpFailure({
      connectionString: 'zk-remote.invalid:2181',
      auth,
      connectTimeout: 200,
      tls: { ca: mutual.tls!.ca },
    });
    expect(warned().filter((message) => message.startsWith('The auth option'))).toEqual([]);
  });

  it('rejectUnauthorized: false is warned about', async () => {
    await client({
      connectionString: mutual.connectString,
      tls: { ...mutual.tls!.clientOptions, rejectUnauthorized: false },
    }).connect();
    expect(warned()).toContain(
      "tls.rejectUnauthorized is false: the servers' certificates are not checked, so anyone on the path can pose as " +
        'ZooKeeper. Give tls.ca (the CA that signed them) instead.',
    );
  });
});
