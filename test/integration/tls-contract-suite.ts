/**
 * The TLS target of the lock contract (contract-suite.ts): servers with only a secureClientPort,
 * every client connecting with the `tls` option, the servers' own view (lock nodes, watches) read
 * over TLS too: another TLS session, four letter words on the secure port. Used by
 * tls-contract.test.ts (a standalone server) and tls-ensemble.test.ts.
 */
import type { ZkLockOptions } from '../../lib/index.js';
import { tlsFourLetter } from '../../lib/testing/servers/tls.js';
import type { TcpProxy, ZkServer } from '../support/index.js';
import { describeLockContract, type ContractTarget } from './contract-suite.js';
import type { Variant } from './contract-variants.js';

/** Where the contract runs over TLS: read inside tests (the servers start in beforeAll). */
export interface TlsTarget {
  /** The connection string of every member. */
  connectString(): string;
  /** The members (the running ones serve the contract; four letter words go to each). */
  servers(): ZkServer[];
  /** The `tls` option of a client of these servers. */
  tls(): NonNullable<ZkLockOptions['tls']>;
}

/** The contract's target for `target`'s running members, reached over TLS. */
export function tlsContractTarget(target: TlsTarget): ContractTarget {
  return {
    label: ' over TLS',
    connectString: () => target.connectString(),
    clientOptions: () => ({ tls: target.tls() }),
    members: () =>
      target
        .servers()
        .filter((server) => server.isRunning())
        .map((server) => ({
          host: server.host,
          port: server.port,
          fourLetter: (cmd: string) => tlsFourLetter({ host: server.host, port: server.port, tls: server.tls! }, cmd),
        })),
  };
}

/** Registers the contract over TLS for each variant; `proxies` are closed by the caller after each test. */
export function describeContractOverTls(target: TlsTarget, variants: Variant[], proxies: TcpProxy[]): void {
  describeLockContract(tlsContractTarget(target), variants, proxies);
}
