export { ZkLockError } from './zk-lock.error.js';
export { LockTimeoutError } from './lock-timeout.error.js';
export { LockAbortedError } from './lock-aborted.error.js';
export { LockLostError, type LockLostReason } from './lock-lost.error.js';
export { InvalidLockPathError } from './invalid-lock-path.error.js';
export { InvalidOptionsError } from './invalid-options.error.js';
export { ZkConnectError } from './connect.error.js';
export { NotConnectedError } from './not-connected.error.js';
export { ZooKeeperError, type ZkErrorCode } from './zookeeper.error.js';
