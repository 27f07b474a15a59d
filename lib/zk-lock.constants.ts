/** Metadata key under which @DistributedLock stores its spec on the decorated method. */
export const DISTRIBUTED_LOCK_METADATA = 'zk_lock:distributed_lock';
