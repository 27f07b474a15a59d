/**
 * Issue 16 acceptance: the lock contract (contract-suite.ts, run in plaintext by contract.test.ts)
 * over TLS, every way of holding a lock (contract-variants.ts), against a standalone server with
 * only a secureClientPort and mutual TLS (ssl.clientAuth=need, x509 identities), started by the
 * test support with throwaway keystores.
 */
import { afterAll, afterEach, beforeAll } from 'vitest';
import { closeLockClients } from '../fixtures/lock-clients.js';
import { startZooKeeper, type TcpProxy, type ZkServer } from '../support/index.js';
import { closeContenders, VARIANTS } from './contract-variants.js';
import { describeContractOverTls } from './tls-contract-suite.js';

let server: ZkServer;
const proxies: TcpProxy[] = [];

beforeAll(async () => {
  server = await startZooKeeper({ tls: { clientAuth: 'need' } });
}, 120_000);
afterEach(async () => {
  await closeContenders();
  await closeLockClients();
  await Promise.all(proxies.splice(0).map((proxy) => proxy.close()));
});
afterAll(async () => {
  await server?.dispose();
});

describeContractOverTls(
  {
    connectString: () => server.connectString,
    servers: () => [server],
    tls: () => server.tls!.clientOptions,
  },
  VARIANTS,
  proxies,
);
