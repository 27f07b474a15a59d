/**
 * The lock contract (contract-suite.ts) on a plaintext standalone ZooKeeper server, over every way
 * of holding a lock (contract-variants.ts: plain, mode 'write', coalesce: true, leases: 1,
 * acquireAll([path]), a @DistributedLock service method). The same suite runs over TLS in
 * tls-contract.test.ts.
 */
import { afterEach } from 'vitest';
import { useFileServer } from '../fixtures/file-server.js';
import { fourLetter, type TcpProxy } from '../support/index.js';
import { describeLockContract } from './contract-suite.js';
import { closeContenders, VARIANTS } from './contract-variants.js';

const server = useFileServer();
const proxies: TcpProxy[] = [];
afterEach(async () => {
  await closeContenders();
  await Promise.all(proxies.splice(0).map((proxy) => proxy.close()));
});

describeLockContract(
  {
    label: '',
    connectString: () => server.connectString,
    clientOptions: () => ({}),
    members: () => [{ host: server.host, port: server.port, fourLetter: (cmd) => fourLetter(server, cmd) }],
  },
  VARIANTS,
  proxies,
);
