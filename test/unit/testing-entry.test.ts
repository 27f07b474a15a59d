/**
 * The `nestjs-zk-lock/testing` entry: its exports (pinned, like the main entry's in public-api.test.ts),
 * and what loading it costs: the main entry never loads it, and it loads neither @nestjs/testing
 * (an application's dev dependency, not ours) nor @nestjs/terminus (optional).
 */
import { describe, expect, it, vi } from 'vitest';

const loaded = vi.hoisted(() => ({ kit: 0, nestTesting: 0, terminus: 0 }));
vi.mock(import('../../lib/testing/in-memory/server.js'), async (importOriginal) => {
  loaded.kit += 1;
  return importOriginal();
});
vi.mock(import('@nestjs/testing'), async (importOriginal) => {
  loaded.nestTesting += 1;
  return importOriginal();
});
vi.mock(import('@nestjs/terminus'), async (importOriginal) => {
  loaded.terminus += 1;
  return importOriginal();
});

const EXPORTS = [
  'DEFAULT_ZOOKEEPER_IMAGE',
  'IN_MEMORY_CONNECTION_STRING',
  'InMemoryZkConnection',
  'InMemoryZooKeeper',
  'TLS_PASSWORD',
  'TcpProxy',
  'ZkLockTestingModule',
  'ZooKeeperNotFoundError',
  'connectionCount',
  'delay',
  'expireSession',
  'fourLetter',
  'isNotification',
  'isPing',
  'issueTestCertificate',
  'mntr',
  'packetsReceived',
  'resetPacketsReceived',
  'startEnsemble',
  'startZooKeeper',
  'stopAllZooKeepers',
  'testTlsMaterial',
  'tlsFourLetter',
  'useInMemoryZooKeeper',
  'waitFor',
  'watchCount',
  'watchesByPath',
  'zooKeeperClasspath',
];

describe('nestjs-zk-lock/testing', () => {
  it('the main entry does not load it', async () => {
    const main = await import('../../lib/index.js');
    expect(main.LockService).toBeTypeOf('function');
    expect(loaded.kit).toBe(0);
  });

  it('exports exactly its documented API, and loads neither @nestjs/testing nor @nestjs/terminus', async () => {
    const kit = await import('../../lib/testing/index.js');
    expect(Object.keys(kit).toSorted()).toEqual(EXPORTS.toSorted());
    expect(loaded.kit).toBe(1);
    expect(loaded.nestTesting).toBe(0);
    expect(loaded.terminus).toBe(0);
  });
});
