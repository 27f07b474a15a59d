// The `nestjs-zk-lock/testing` entry point: test helpers for applications that use nestjs-zk-lock.
//  - In-process stand-in (unit tests, no Java): InMemoryZooKeeper, ZkLockTestingModule, useInMemoryZooKeeper.
//  - Real servers (e2e tests): startZooKeeper, startEnsemble (local ZooKeeper with java, else Docker),
//    TcpProxy to cut connections, four letter words.
//  - Both: expireSession(connection), waitFor.
// Explicit named exports only.
import '../dual-load-guard.js';
export { InMemoryZooKeeper, IN_MEMORY_CONNECTION_STRING } from './in-memory/server.js';
export { InMemoryZkConnection } from './in-memory/connection.js';
export {
  ZkLockTestingModule,
  useInMemoryZooKeeper,
  type ZkLockTestingOptions,
  type ProviderOverridable,
} from './in-memory/testing-module.js';
export { expireSession, type ExpireSessionOptions } from './expire-session.js';
export { startZooKeeper, startEnsemble, stopAllZooKeepers } from './servers/start.js';
export type { ZkServer, ZkEnsemble, ZkServerOptions } from './servers/types.js';
export {
  ZooKeeperNotFoundError,
  zooKeeperClasspath,
  DEFAULT_ZOOKEEPER_IMAGE,
  type ZooKeeperRuntimeChoice,
} from './servers/runtime.js';
export {
  TcpProxy,
  isNotification,
  isPing,
  type Direction,
  type ProxyTarget,
  type ZkFrame,
  type CutFrame,
} from './proxy.js';
export {
  fourLetter,
  mntr,
  watchCount,
  watchesByPath,
  connectionCount,
  packetsReceived,
  resetPacketsReceived,
  type FourLetterTarget,
} from './four-letter.js';
export { waitFor, delay, type WaitForOptions } from './wait.js';
export {
  issueTestCertificate,
  testTlsMaterial,
  tlsFourLetter,
  TLS_PASSWORD,
  type ZkServerTls,
  type ZkServerTlsOptions,
  type TlsCertificate,
  type TestCertificateOptions,
  type TestTlsMaterial,
} from './servers/tls.js';
