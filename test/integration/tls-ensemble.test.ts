/**
 * Issue 16 acceptance on a 3-server ensemble with only secureClientPorts (TLS, throwaway
 * keystores): the lock contract's plain variant, and a leader kill that the TLS session survives:
 * the client fails over to another member over TLS, the held lock stays held and released, the
 * session is the same. Real servers.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { closeLockClients, lockClient } from '../fixtures/lock-clients.js';
import { startEnsemble, TcpProxy, waitFor, type ZkEnsemble } from '../support/index.js';
import { closeContenders, VARIANTS } from './contract-variants.js';
import { describeContractOverTls } from './tls-contract-suite.js';

let ensemble: ZkEnsemble;
const proxies: TcpProxy[] = [];

beforeAll(async () => {
  // Ticks of 500 ms: sessions of up to 10 s, well above a re-election on a loaded machine.
  ensemble = await startEnsemble({ tls: true, tickTime: 500 });
}, 180_000);
afterEach(async () => {
  await closeContenders();
  await closeLockClients();
  await Promise.all(proxies.splice(0).map((proxy) => proxy.close()));
});
afterAll(async () => {
  await ensemble?.stop();
});

const tls = () => ({ ca: ensemble.tls!.ca });

describeContractOverTls(
  {
    connectString: () => ensemble.connectString,
    servers: () => ensemble.servers,
    tls,
  },
  VARIANTS.filter((variant) => variant.name === 'plain'),
  proxies,
);

describe('failover over TLS', () => {
  it('the leader is killed: the client fails over to another member over TLS, its session and lock survive', async () => {
    const leader = await ensemble.leaderIndex();
    expect(leader).toBeGreaterThanOrEqual(0);
    // The client reaches the followers through proxies that refuse at first: it connects to the leader.
    const followers = ensemble.servers.filter((_, i) => i !== leader);
    const ways = await Promise.all(followers.map((s) => TcpProxy.start({ host: s.host, port: s.port })));
    proxies.push(...ways);
    for (const way of ways) way.refuse();
    const connectString = [ensemble.servers[leader].connectString, ...ways.map((way) => way.connectString)].join(',');
    const { connection, locks } = await lockClient(connectString, { tls: tls(), sessionTimeout: 10_000 });
    expect(connection.serverAddress()).toBe(ensemble.servers[leader].connectString);
    const session = connection.currentSession()!.id;
    const held = await locks.acquire('/tls-failover/lock');
    for (const way of ways) way.restore();

    await ensemble.servers[leader].kill();
    await ensemble.waitForQuorum();
    const others = ways.map((way) => way.connectString);
    await waitFor(() => others.includes(connection.serverAddress() ?? ''), {
      timeout: 20_000,
      message: 'reconnected to another member',
    });

    expect(connection.currentSession()?.id).toBe(session);
    expect(connection.transport?.()).toMatchObject({ encrypted: true, peer: 'CN=zookeeper,O=zk-lock tests' });
    expect(held.signal.aborted).toBe(false);
    await held.release();
    const again = await locks.acquire('/tls-failover/lock', { timeout: 10_000 });
    expect(again.fencingToken).toBeGreaterThan(held.fencingToken);
    await again.release();
  }, 90_000);
});
