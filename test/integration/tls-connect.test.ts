/**
 * Issue 16: TLS to a server with only a secureClientPort (mutual TLS, ZooKeeper's x509 auth
 * provider). Locks work over it at the same request counts as plaintext; health and inspect show
 * the encryption and the certificates' subjects (never a key); `tls` as a function is called at
 * every connection, so a reconnect after the certificate files were rotated uses the new ones
 * without a restart, and the session survives it; forRootAsync reads the files. Real server.
 */
import 'reflect-metadata';
import { readFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Module } from '@nestjs/common';
import { HealthIndicatorService } from '@nestjs/terminus';
import { Test } from '@nestjs/testing';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ZkHealthIndicator } from '../../lib/health/index.js';
import { LockService, ZkConnectionService, ZkLockModule, type ZkLockOptions } from '../../lib/index.js';
import {
  issueTestCertificate,
  TLS_PASSWORD,
  tlsFourLetter,
  type TlsCertificate,
} from '../../lib/testing/servers/tls.js';
import { closeLockClients, lockClient } from '../fixtures/lock-clients.js';
import { startZooKeeper, TcpProxy, waitFor, type ZkServer } from '../support/index.js';

let server: ZkServer;
let dir: string;
const proxies: TcpProxy[] = [];
const closers: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  server = await startZooKeeper({ tls: { clientAuth: 'need' } });
  dir = mkdtempSync(join(tmpdir(), 'nestjs-zk-lock-tls-files-'));
}, 120_000);
afterEach(async () => {
  await closeLockClients();
  await Promise.all(closers.splice(0).map((close) => close()));
  await Promise.all(proxies.splice(0).map((proxy) => proxy.close()));
});
afterAll(async () => {
  await server?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

const tls = () => server.tls!.clientOptions;
const CLIENT = 'CN=zk-lock-test-client,O=zk-lock tests';
const SERVER = 'CN=zookeeper,O=zk-lock tests';

/** Four letter words over TLS sent by this file (the server counts each as a received packet). */
let words = 0;
function ask(cmd: string): Promise<string> {
  words += 1;
  return tlsFourLetter({ host: server.host, port: server.port, tls: server.tls! }, cmd);
}

/** Requests the server received from clients while `fn` ran (its packet count minus our four letter words). */
async function requestsDuring(fn: () => Promise<unknown>): Promise<number> {
  const count = async () => Number(/^zk_packets_received\s+(\d+)$/m.exec(await ask('mntr'))![1]);
  const before = await count();
  const wordsBefore = words;
  await fn();
  return (await count()) - before - (words - wordsBefore);
}

describe('locks over TLS', () => {
  it('exclude, hand over with a greater token, at the request counts of plaintext (3 uncontended, 5 for a waiter)', async () => {
    const options = { tls: tls(), sessionTimeout: 4_000 };
    const [a, b] = [await lockClient(server.connectString, options), await lockClient(server.connectString, options)];
    await a.connection.ensurePath('/tls/cost'); // a long-lived directory (no container re-creation)
    const cycles = 50;
    const uncontended = await requestsDuring(async () => {
      for (let i = 0; i < cycles; i += 1) await (await a.locks.acquire('/tls/cost')).release();
    });
    // Pings (after a third of the session timeout without sending) add a few packets at most.
    expect(uncontended / cycles).toBeGreaterThanOrEqual(3);
    expect(uncontended / cycles).toBeLessThan(3.1);

    // Contended: the holder's delete (1) + the waiter's create, list, watch, list, delete (5).
    const counts: number[] = [];
    for (let i = 0; i < 10; i += 1) {
      const held = await a.locks.acquire('/tls/cost');
      counts.push(
        await requestsDuring(async () => {
          const waiting = b.locks.acquire('/tls/cost', { timeout: 10_000 });
          await waitFor(async () => /Total watches:1\b/.test(await ask('wchs')), { message: 'the waiter watches' });
          await held.release();
          const next = await waiting;
          expect(next.fencingToken).toBeGreaterThan(held.fencingToken);
          await next.release();
        }),
      );
    }
    // A ping (after a third of the session timeout without sending) may add one now and then.
    expect(counts.filter((count) => count === 6).length).toBeGreaterThanOrEqual(8);
    expect(counts.every((count) => count >= 6 && count <= 8)).toBe(true);
  });

  it('health and inspect show the encryption, the server certificate and our identity; never a key', async () => {
    const { connection, locks } = await lockClient(server.connectString, { tls: tls() });
    const held = await locks.acquire('/tls/inspect');
    const indicator = new ZkHealthIndicator(new HealthIndicatorService(), connection);
    const health = indicator.isHealthy();
    const expected = {
      encrypted: true,
      protocol: expect.stringMatching(/^TLSv1\.[23]$/),
      cipher: expect.any(String),
      peer: SERVER,
      peerIssuer: 'CN=zk-lock test CA,O=zk-lock tests',
      peerValidTo: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      identity: `x509:${CLIENT}`,
    };
    const { encrypted, ...details } = expected;
    expect(health.zookeeper).toMatchObject({ status: 'up', state: 'connected', encrypted, tls: details });
    const info = await locks.inspect('/tls/inspect');
    expect(info.transport).toEqual(expected);
    expect(info.holder?.node).toBe(held.node.split('/').pop());
    const shown = JSON.stringify([health, info]);
    expect(shown).not.toContain('PRIVATE KEY');
    expect(shown).not.toContain(server.tls!.client.key.split('\n')[1]);
    await held.release();
  });
});

describe('certificate rotation without a restart', () => {
  let rotations = 0;
  /** Writes a certificate and its key where the app reads them. */
  function install(certificate: TlsCertificate): void {
    writeFileSync(join(dir, 'client.pem'), certificate.cert);
    writeFileSync(join(dir, 'client-key.pem'), certificate.key);
  }
  /** What an app's `tls` function does: read the current files at each connection. */
  const fromFiles = () => ({
    ca: readFileSync(join(dir, 'ca.pem')),
    cert: readFileSync(join(dir, 'client.pem')),
    key: readFileSync(join(dir, 'client-key.pem')),
  });

  it.each([
    ['a function reading the files', (read: () => ZkLockOptions['tls']) => read],
    ['an async function (a secret store)', (read: () => ZkLockOptions['tls']) => async () => read()],
  ] as const)(
    '%s: a reconnect after the files changed uses the new certificate; the session and its lock survive',
    async (_, wrap) => {
      const [first, second] = await Promise.all([
        issueTestCertificate(`rotation-${++rotations}`),
        issueTestCertificate(`rotation-${++rotations}`),
      ]);
      writeFileSync(join(dir, 'ca.pem'), server.tls!.ca);
      install(first);
      const proxy = await TcpProxy.start({ host: server.host, port: server.port });
      proxies.push(proxy);
      let calls = 0;
      const read = () => {
        calls += 1;
        return fromFiles() as ZkLockOptions['tls'];
      };
      const { connection, locks } = await lockClient(proxy.connectString, {
        tls: wrap(read) as ZkLockOptions['tls'],
        sessionTimeout: 4_000,
      });
      expect(connection.transport?.()?.identity).toBe(`x509:${first.subject}`);
      const session = connection.currentSession()!.id;
      const held = await locks.acquire('/tls/rotation');

      install(second); // the files are replaced; nothing is restarted
      proxy.reset(); // the connection drops; the client reconnects
      await waitFor(
        () => connection.state === 'suspended' || connection.transport?.()?.identity !== `x509:${first.subject}`,
        {
          message: 'the connection dropped',
        },
      );
      await waitFor(() => connection.state === 'connected', { message: 'reconnected' });

      expect(connection.transport?.()?.identity).toBe(`x509:${second.subject}`);
      expect(calls).toBeGreaterThanOrEqual(2);
      expect(connection.currentSession()?.id).toBe(session);
      expect(held.signal.aborted).toBe(false);
      await held.release();
      const again = await locks.acquire('/tls/rotation', { timeout: 5_000 });
      await again.release();
    },
  );

  it('a PKCS#12 key store as keytool writes it (pfx + passphrase) is a client certificate too', async () => {
    const { connection } = await lockClient(server.connectString, {
      tls: { ca: server.tls!.ca, pfx: readFileSync(server.tls!.client.keyStore), passphrase: TLS_PASSWORD },
    });
    expect(connection.transport?.()).toMatchObject({ encrypted: true, identity: `x509:${CLIENT}` });
  });

  it('forRootAsync reads the certificate files in useFactory', async () => {
    writeFileSync(join(dir, 'ca.pem'), server.tls!.ca);
    install(server.tls!.client);
    @Module({
      imports: [
        ZkLockModule.forRootAsync({
          useFactory: () => ({
            connectionString: server.connectString,
            tls: {
              ca: readFileSync(join(dir, 'ca.pem')),
              cert: readFileSync(join(dir, 'client.pem')),
              key: readFileSync(join(dir, 'client-key.pem')),
            },
          }),
        }),
      ],
    })
    class AppModule {}
    const moduleRef = await Test.createTestingModule({ imports: [AppModule] }).compile();
    const app = moduleRef.createNestApplication({ logger: false });
    await app.init();
    closers.push(() => app.close());
    expect(app.get(ZkConnectionService).transport?.()).toMatchObject({ encrypted: true, identity: `x509:${CLIENT}` });
    const held = await app.get(LockService).acquire('/tls/module');
    await held.release();
  });
});
