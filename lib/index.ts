// The public API of nestjs-zk-lock. Explicit named exports only; test/unit/public-api.test.ts pins the list.
// First: fails at once if the other build (ESM / CommonJS) of this package is loaded too.
import './dual-load-guard.js';
export { ZkLockModule } from './zk-lock.module.js';
export { MODULE_OPTIONS_TOKEN as ZK_LOCK_OPTIONS } from './zk-lock.module-definition.js';
export { ZK_LOCK_RESOLVED_OPTIONS } from './zk-lock.constants.js';
export type {
  ZkLockOptions,
  ZkLockOptionsFactory,
  ZkAuth,
  ZkAclEntry,
  ResolvedZkLockOptions,
  ZkTlsOption,
  ZkTlsOptions,
} from './zk-lock.options.js';
export type { ZkTransport } from './connection/zk-port.js';
export {
  ZkConnectionService,
  type ZkConnectionState,
  type ZkConnectionEvent,
} from './connection/zk-connection.service.js';
export { LockService, type AcquireOptions, type LockInfo, type LockOwner, type LockMode } from './lock/lock.service.js';
export type { LockHandle, LockOutcome } from './lock/lock-handle.js';
export type { MultiLockHandle } from './lock/multi-lock.js';
export type { NodeKind as LockKind } from './lock/lock-recipe.js';
export type {
  LockEvent,
  LockAcquiredEvent,
  LockReleasedEvent,
  LockLostEvent,
  LockGaveUpEvent,
} from './lock/lock-events.js';
export { encodeLockKey, lockPathFor, validateLockPath } from './lock/lock-path.js';
export { DistributedLock } from './declarative/distributed-lock.decorator.js';
export { DistributedLockInterceptor } from './declarative/distributed-lock.interceptor.js';
export { CurrentLock } from './declarative/current-lock.decorator.js';
export { LockBusyException } from './declarative/lock-busy.exception.js';
export { ZkLockExceptionFilter } from './declarative/zk-lock-exception.filter.js';
export type { DistributedLockOptions, LockCall, LockTarget } from './declarative/lock-spec.js';
export {
  ZkLockError,
  LockTimeoutError,
  LockAbortedError,
  LockLostError,
  type LockLostReason,
  InvalidLockPathError,
  InvalidOptionsError,
  ZkConnectError,
  NotConnectedError,
  ZkUnavailableError,
  ZooKeeperError,
  type ZkErrorCode,
} from './errors/index.js';
export type {
  JobEvent,
  JobSkippedEvent,
  JobRanEvent,
  JobMovedEvent,
  JobSkipReason,
  LeadershipAcquiredEvent,
  LeadershipLostEvent,
  LeadershipEndReason,
} from './lock/lock-events.js';
export {
  OnOneInstance,
  WithoutOverlapping,
  type OnOneInstanceOptions,
  LeaderElection,
  type OnLeadershipAcquired,
  type OnLeadershipLost,
  LeadershipService,
  type LeadershipChange,
  type ElectionHooks,
  JOB_CHANNELS,
  DEFAULT_JOBS_PATH,
} from './jobs/index.js';
