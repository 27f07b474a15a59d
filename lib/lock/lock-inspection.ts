/** Who holds a lock and who waits (`LockService.inspect`), and release requests (`requestRelease`). */
import type { ZkPort, ZkTransport } from '../connection/zk-port.js';
import { ZooKeeperError } from '../errors/zookeeper.error.js';
import { REVOKE_MARKER } from './lock-handle.js';
import { validateLockPath } from './lock-path.js';
import { blockerOf, lockQueue, type NodeKind, type QueueNode } from './lock-recipe.js';

/** Who holds or waits for a lock, from the data in its node. */
export interface LockOwner {
  /** Node name, e.g. `_c_<uuid>-lock-0000000042`. */
  node: string;
  /** `write`, `read`, or `lease` (a semaphore lease, or a wait for one). */
  kind: NodeKind;
  sequence: number;
  /** Owner data as written by the holder (host, pid, app, since), or the raw text for foreign nodes. */
  owner: { host?: string; pid?: number; app?: string; since?: string; leases?: number } | string | null;
  /** The ZooKeeper session that owns the node, 16 hex digits. */
  sessionId: string;
}

export interface LockInfo {
  path: string;
  /** The first current holder, or null when the lock is free. */
  holder: LockOwner | null;
  /** Every current holder: one writer, or any number of readers, or up to N semaphore leases. */
  holders: LockOwner[];
  /** Waiters in the order they will get the lock. */
  queue: LockOwner[];
  /**
   * Present when THIS process's connection (not the holders') is encrypted (the `tls` option):
   * `encrypted: true`, the TLS protocol, the server certificate's subject, and our x509 identity
   * with a client certificate. Absent over plaintext (health checks show `encrypted: false`).
   */
  transport?: ZkTransport;
}

/** See `LockService.inspect`. */
export async function inspectLock(port: ZkPort, path: string): Promise<LockInfo> {
  validateLockPath(path);
  const children = await childrenOf(port, path);
  const holders: LockOwner[] = [];
  const queue: LockOwner[] = [];
  const nodes = await ownersOf(port, path, lockQueue(children));
  nodes.forEach((owner, index) => (blockerOf(nodes, index) ? queue : holders).push(owner));
  if (children.includes('leases')) {
    const leases = await ownersOf(
      port,
      `${path}/leases`,
      lockQueue(await childrenOf(port, `${path}/leases`), ['lease']),
    );
    const last = leases.at(-1)?.owner;
    const limit = typeof last === 'object' && last?.leases ? last.leases : leases.length;
    holders.push(...leases.slice(0, limit));
    queue.push(...leases.slice(limit));
    // Behind the inner lock's holder (whose lease is listed above) wait the other contenders.
    const waiting = await ownersOf(port, `${path}/locks`, lockQueue(await childrenOf(port, `${path}/locks`)));
    queue.push(...waiting.slice(1).map((owner) => ({ ...owner, kind: 'lease' as const })));
  }
  const transport = port.transport?.();
  return { path, holder: holders[0] ?? null, holders, queue, ...(transport?.encrypted ? { transport } : {}) };
}

/** See `LockService.requestRelease`. */
export async function requestRelease(port: ZkPort, path: string): Promise<number> {
  const { holders } = await inspectLock(port, path);
  let asked = 0;
  for (const holder of holders) {
    const dir = holder.kind === 'lease' ? `${path}/leases` : path;
    try {
      await port.setData(`${dir}/${holder.node}`, REVOKE_MARKER);
      asked += 1;
    } catch (error) {
      if (!ZooKeeperError.is(error, 'NO_NODE')) throw error; // released meanwhile
    }
  }
  return asked;
}

async function childrenOf(port: ZkPort, path: string): Promise<string[]> {
  try {
    return (await port.getChildren(path)).children;
  } catch (error) {
    if (ZooKeeperError.is(error, 'NO_NODE')) return [];
    throw error;
  }
}

/**
 * Owner data of `nodes` of `dir`, in creation order (by each node's czxid, which the getData we
 * make anyway returns: right also past the sequence counter's wrap, where names no longer tell
 * the order); nodes gone meanwhile are left out.
 */
async function ownersOf(port: ZkPort, dir: string, nodes: QueueNode[]): Promise<LockOwner[]> {
  const owners = await Promise.all(
    nodes.map(async (node): Promise<{ owner: LockOwner; czxid: bigint } | null> => {
      try {
        const { data, stat } = await port.getData(`${dir}/${node.name}`);
        const owner: LockOwner = {
          node: node.name,
          kind: node.kind,
          sequence: node.sequence,
          owner: parseOwner(data),
          sessionId: stat.ephemeralOwner.toString(16).padStart(16, '0'),
        };
        return { owner, czxid: stat.czxid };
      } catch (error) {
        if (ZooKeeperError.is(error, 'NO_NODE')) return null; // released meanwhile
        throw error;
      }
    }),
  );
  return owners
    .filter((entry) => entry !== null)
    .toSorted((a, b) => (a.czxid < b.czxid ? -1 : a.czxid > b.czxid ? 1 : 0))
    .map((entry) => entry.owner);
}

function parseOwner(data: Buffer): LockOwner['owner'] {
  if (data.length === 0) return null;
  const text = data.toString('utf8');
  try {
    const value: unknown = JSON.parse(text);
    return value !== null && typeof value === 'object' ? value : text;
  } catch {
    return text.slice(0, 200);
  }
}
