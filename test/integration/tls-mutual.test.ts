/**
 * Issue 16, mutual TLS: with ssl.clientAuth=need and ZooKeeper's x509 auth provider, a client
 * certificate's subject is the session's identity, and the `acl` option restricts lock nodes to
 * one app's certificate (no password at all). Another app's session (another certificate) gets
 * NO_AUTH on create and on delete, and still reads who holds the lock. Real server.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ZooKeeperError, type ZkAclEntry } from '../../lib/index.js';
import { issueTestCertificate, type TlsCertificate } from '../../lib/testing/servers/tls.js';
import { closeLockClients, lockClient } from '../fixtures/lock-clients.js';
import { startZooKeeper, type ZkServer } from '../support/index.js';

let server: ZkServer;
let billing: TlsCertificate;
let reports: TlsCertificate;

beforeAll(async () => {
  [server, billing, reports] = await Promise.all([
    startZooKeeper({ tls: { clientAuth: 'need' } }),
    issueTestCertificate('billing'),
    issueTestCertificate('reports'),
  ]);
}, 120_000);
afterEach(closeLockClients);
afterAll(async () => {
  await server?.dispose();
});

const tlsFor = (certificate: TlsCertificate) => ({ ca: server.tls!.ca, cert: certificate.cert, key: certificate.key });

/** The error `promise` rejects with. */
async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => 'resolved',
    (error: unknown) => error,
  );
}

describe('x509 identities', () => {
  it("the session's identity is the certificate's subject, as the server names it", async () => {
    const { connection } = await lockClient(server.connectString, { tls: tlsFor(billing) });
    expect(billing.subject).toBe('CN=billing,O=zk-lock tests');
    expect(connection.transport?.()?.identity).toBe(`x509:${billing.subject}`);
  });

  it.each<[string, (owner: TlsCertificate) => ZkAclEntry[]]>([
    [
      "x509 with the app's subject",
      (owner) => [
        { scheme: 'x509', id: owner.subject, perms: 'crwda' },
        { scheme: 'world', id: 'anyone', perms: 'r' },
      ],
    ],
    [
      "auth (the session's own identity: its certificate)",
      () => [
        { scheme: 'auth', id: '', perms: 'crwda' },
        { scheme: 'world', id: 'anyone', perms: 'r' },
      ],
    ],
  ])(
    'ACL %s: another certificate gets NO_AUTH on create and on delete, and reads who holds the lock',
    async (name, acl) => {
      const path = `/acl-${name.split(' ')[0]}/invoices`;
      const owner = await lockClient(server.connectString, {
        tls: tlsFor(billing),
        acl: acl(billing),
        appName: 'billing',
      });
      const other = await lockClient(server.connectString, { tls: tlsFor(reports), appName: 'reports' });

      const held = await owner.locks.acquire(path); // creates the directories with the ACL

      const create = await rejection(other.locks.acquire(path, { timeout: 2_000 }));
      expect(create).toBeInstanceOf(ZooKeeperError);
      expect((create as ZooKeeperError).zkCode).toBe('NO_AUTH');
      const remove = await rejection(other.connection.remove(held.node));
      expect(remove).toBeInstanceOf(ZooKeeperError);
      expect((remove as ZooKeeperError).zkCode).toBe('NO_AUTH');

      const seen = await other.locks.inspect(path);
      expect(seen.holder?.node).toBe(held.node.split('/').pop());
      expect(seen.holder?.owner).toMatchObject({ app: 'billing', pid: process.pid });
      expect(seen.queue).toEqual([]);

      await held.release(); // the owner's own delete is allowed
      const again = await owner.locks.acquire(path, { timeout: 2_000 });
      expect(again.fencingToken).toBeGreaterThan(held.fencingToken);
      await again.release();
      const still = await rejection(other.locks.acquire(path, { timeout: 2_000 }));
      expect((still as ZooKeeperError).zkCode).toBe('NO_AUTH');
    },
  );
});
