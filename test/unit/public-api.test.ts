/** Pins the runtime exports of the package entry point: a change to this list must be deliberate. */
import { describe, expect, it } from 'vitest';

describe('public API', () => {
  it('lib/index.ts exports exactly these runtime names', async () => {
    const api = await import('../../lib/index.js');
    expect(Object.keys(api).toSorted()).toEqual([
      'CurrentLock',
      'DEFAULT_JOBS_PATH',
      'DistributedLock',
      'DistributedLockInterceptor',
      'InvalidLockPathError',
      'InvalidOptionsError',
      'JOB_CHANNELS',
      'LeaderElection',
      'LeadershipService',
      'LockAbortedError',
      'LockBusyException',
      'LockLostError',
      'LockService',
      'LockTimeoutError',
      'NotConnectedError',
      'OnOneInstance',
      'WithoutOverlapping',
      'ZK_LOCK_OPTIONS',
      'ZK_LOCK_RESOLVED_OPTIONS',
      'ZkConnectError',
      'ZkConnectionService',
      'ZkLockError',
      'ZkLockExceptionFilter',
      'ZkLockModule',
      'ZkUnavailableError',
      'ZooKeeperError',
      'encodeLockKey',
      'lockPathFor',
      'validateLockPath',
    ]);
  });

  it('exports no undefined values', async () => {
    const api: Record<string, unknown> = await import('../../lib/index.js');
    const missing = Object.entries(api)
      .filter(([, value]) => value === undefined || value === null)
      .map(([name]) => name);
    expect(missing).toEqual([]);
  });

  it('the path helpers are the same functions as in lib/lock/lock-path.ts', async () => {
    const api = await import('../../lib/index.js');
    const paths = await import('../../lib/lock/lock-path.js');
    expect(api.encodeLockKey).toBe(paths.encodeLockKey);
    expect(api.lockPathFor).toBe(paths.lockPathFor);
    expect(api.validateLockPath).toBe(paths.validateLockPath);
  });
});
