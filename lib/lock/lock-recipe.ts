/**
 * ZooKeeper's "Locks" and "Shared Locks" recipes, as the mature clients do them (no Nest in here);
 * the parts live in `recipe/`, this module is their public face.
 *
 *  1. the lock is a directory (a container, created on demand with its missing parents);
 *  2. a contender creates an EPHEMERAL_SEQUENTIAL child named `_c_<attempt id>-lock-<seq>` for an
 *     exclusive (write) lock (Curator's InterProcessMutex naming, so both exclude each other) or
 *     `_c_<attempt id>-__READ__<seq>` for a shared (read) lock (Curator's read-lock naming); the
 *     attempt id makes the create recoverable after a connection loss;
 *  3. it lists the children WITHOUT a watch and orders them by creation: by the 10-digit sequence
 *     read as unsigned, and by creation zxid once the directory's counter reached 2^31 - 1
 *     (recipe/queue-order.ts);
 *  4. a write holds the lock when it is first; a read holds it when no write is ahead of it;
 *  5. otherwise a write watches its immediate predecessor (of either kind) and a read watches the
 *     last write ahead of it: a release wakes only the waiters it may unblock;
 *  6-7. release, time-out and abort delete our node.
 *
 * Every wait is bounded by the attempt's deadline and signal (recipe/attempt.ts). The counting
 * semaphore is {@link acquireLease} (recipe/acquire-lease.ts).
 */
export { acquireLock, type AcquireRequest, type Acquired } from './recipe/acquire-lock.js';
export { acquireLease, type LeaseRequest } from './recipe/acquire-lease.js';
export { CLEANUP_WAIT_MS, GiveUp, settledWithin } from './recipe/attempt.js';
export { attemptId, MARKER, parseNode, sequenceOf, type NodeKind, type QueueNode } from './recipe/node-names.js';
export { deleteNode, removeNode } from './recipe/our-node.js';
export {
  blockerOf,
  compareQueued,
  fencingToken,
  lockQueue,
  positionOf,
  sortLockNodes,
  type CreationOrder,
  type Position,
} from './recipe/queue-order.js';
