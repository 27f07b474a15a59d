/** Metadata key under which @DistributedLock stores its spec on the decorated method. */
export const DISTRIBUTED_LOCK_METADATA = 'zk_lock:distributed_lock';

/**
 * Injection token of the module's options after defaults and validation
 * (`ResolvedZkLockOptions`, frozen), resolved once from `ZK_LOCK_OPTIONS` by ZkLockModule.
 */
export const ZK_LOCK_RESOLVED_OPTIONS = Symbol('ZK_LOCK_RESOLVED_OPTIONS');
