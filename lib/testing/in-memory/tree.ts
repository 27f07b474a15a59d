/**
 * The data tree of the in-process ZooKeeper stand-in: znodes with ZooKeeper's Stat fields, one
 * zxid per write (creates, deletes, setData, a session's close, a container's reclaim), sequence
 * suffixes from the parent's count of child creates, ephemeral nodes per session, and CONTAINER
 * nodes that go
 * once they have had children and have none left. Knows nothing of sessions' liveness, watches or
 * connections (see ./server.ts): each write returns the paths it changed or deleted.
 */
import type { ZkErrorCode } from '../../errors/zookeeper.error.js';
import type { NodeStat } from '../../connection/zk-port.js';

/** A request the server refused: its code, and why in words (the connection makes it a ZooKeeperError). */
export class TreeError extends Error {
  constructor(
    readonly zkCode: ZkErrorCode,
    readonly detail: string,
  ) {
    super(`${zkCode}: ${detail}`);
  }
}

/** How a node is created: the port's modes, plus `container`. */
export type TreeCreateMode = 'persistent' | 'ephemeral' | 'ephemeral-sequential' | 'container';

interface ZNode {
  data: Buffer;
  czxid: bigint;
  mzxid: bigint;
  pzxid: bigint;
  ephemeralOwner: bigint;
  version: number;
  /**
   * Children created so far, as a real server stores it: the sequence of the next sequential
   * child, and the Stat's cversion is `2 * creates - numChildren` (every child gone was deleted
   * once). Kept at 2^31 - 1 once there, as ZooKeeper 3.8 does.
   */
  creates: number;
  container: boolean;
  /** Child names, in creation order. */
  children: Set<string>;
}

/** What one write did, for the watches: nodes whose data changed, nodes that went. */
export interface TreeChange {
  changed: string[];
  deleted: string[];
}

const MAX_INT = 2 ** 31 - 1;

/** zxids carry the epoch in their high 32 bits, as a real server's do (epoch 1 here). */
const FIRST_ZXID = 1n << 32n;

export class ZNodeTree {
  private readonly nodes = new Map<string, ZNode>();
  private readonly ephemerals = new Map<bigint, Set<string>>();
  private zxid = FIRST_ZXID;

  constructor() {
    // A real server has these from the start (they show in a listing of the root), with zxid 0.
    for (const path of ['/', '/zookeeper', '/zookeeper/config', '/zookeeper/quota']) {
      this.nodes.set(path, this.newNode(Buffer.alloc(0), 0n, 0n, false));
      if (path !== '/') this.nodes.get(parentOf(path))!.children.add(basename(path));
    }
  }

  /** The latest zxid (of the last write). */
  get lastZxid(): bigint {
    return this.zxid;
  }

  /** A write that changes no node but takes a zxid, as a real server's session creation does. */
  tick(): bigint {
    this.zxid += 1n;
    return this.zxid;
  }

  /** Creates a node; resolves the sequence suffix. Returns the created path. */
  create(path: string, data: Buffer, mode: TreeCreateMode, session: bigint): { path: string; change: TreeChange } {
    checkPath(path, mode === 'ephemeral-sequential');
    const parentPath = parentOf(path);
    const parent = this.nodes.get(parentPath);
    if (!parent) throw fail('NO_NODE');
    if (parent.ephemeralOwner !== 0n) {
      throw fail('OTHER', 'NO_CHILDREN_FOR_EPHEMERALS: an ephemeral node cannot have children');
    }
    const created = mode === 'ephemeral-sequential' ? path + formatSequence(parent.creates) : path;
    if (this.nodes.has(created)) throw fail('NODE_EXISTS');
    const zxid = this.tick();
    const ephemeral = mode === 'ephemeral' || mode === 'ephemeral-sequential';
    this.nodes.set(created, this.newNode(data, zxid, ephemeral ? session : 0n, mode === 'container'));
    parent.children.add(basename(created));
    parent.creates = Math.min(parent.creates + 1, MAX_INT);
    parent.pzxid = zxid;
    if (ephemeral) {
      let owned = this.ephemerals.get(session);
      if (!owned) this.ephemerals.set(session, (owned = new Set()));
      owned.add(created);
    }
    return { path: created, change: { changed: [], deleted: [] } };
  }

  /** Deletes a childless node (`version` -1: any). Reclaims emptied containers above it. */
  remove(path: string, version: number): TreeChange {
    checkPath(path);
    const node = this.nodes.get(path);
    if (!node) throw fail('NO_NODE');
    if (version !== -1 && node.version !== version) throw fail('BAD_VERSION');
    if (node.children.size > 0) throw fail('NOT_EMPTY');
    if (path === '/' || path === '/zookeeper' || path.startsWith('/zookeeper/')) {
      throw fail('OTHER', 'BAD_ARGUMENTS: the server keeps its own nodes');
    }
    const zxid = this.tick();
    const deleted = [path];
    this.unlink(path, node, zxid);
    deleted.push(...this.reclaim(parentOf(path)));
    return { changed: [], deleted };
  }

  setData(path: string, data: Buffer, version: number): { stat: NodeStat; change: TreeChange } {
    checkPath(path);
    const node = this.nodes.get(path);
    if (!node) throw fail('NO_NODE');
    if (version !== -1 && node.version !== version) throw fail('BAD_VERSION');
    node.data = Buffer.from(data);
    node.mzxid = this.tick();
    node.version = (node.version + 1) | 0;
    return { stat: this.statOf(node), change: { changed: [path], deleted: [] } };
  }

  getData(path: string): { data: Buffer; stat: NodeStat } {
    checkPath(path);
    const node = this.nodes.get(path);
    if (!node) throw fail('NO_NODE');
    return { data: Buffer.from(node.data), stat: this.statOf(node) };
  }

  getChildren(path: string): { children: string[]; stat: NodeStat } {
    checkPath(path);
    const node = this.nodes.get(path);
    if (!node) throw fail('NO_NODE');
    return { children: [...node.children], stat: this.statOf(node) };
  }

  exists(path: string): NodeStat | null {
    checkPath(path);
    const node = this.nodes.get(path);
    return node ? this.statOf(node) : null;
  }

  /**
   * A session is over: its ephemeral nodes go in one write (one zxid, as the server's closeSession
   * transaction), then the containers that this emptied.
   */
  closeSession(session: bigint): TreeChange {
    const owned = this.ephemerals.get(session);
    this.ephemerals.delete(session);
    const zxid = this.tick();
    if (!owned || owned.size === 0) return { changed: [], deleted: [] };
    const deleted: string[] = [];
    const parents = new Set<string>();
    for (const path of owned) {
      const node = this.nodes.get(path);
      if (!node) continue;
      this.unlink(path, node, zxid);
      deleted.push(path);
      parents.add(parentOf(path));
    }
    for (const parent of parents) deleted.push(...this.reclaim(parent));
    return { changed: [], deleted };
  }

  /** Every path at or below `under`, parents before children. */
  paths(under = '/'): string[] {
    const out: string[] = [];
    const visit = (path: string): void => {
      const node = this.nodes.get(path);
      if (!node) return;
      out.push(path);
      for (const child of node.children) visit(path === '/' ? `/${child}` : `${path}/${child}`);
    };
    visit(under);
    return out;
  }

  private newNode(data: Buffer, zxid: bigint, owner: bigint, container: boolean): ZNode {
    return {
      data: Buffer.from(data),
      czxid: zxid,
      mzxid: zxid,
      pzxid: zxid,
      ephemeralOwner: owner,
      version: 0,
      creates: 0,
      container,
      children: new Set(),
    };
  }

  private unlink(path: string, node: ZNode, zxid: bigint): void {
    this.nodes.delete(path);
    if (node.ephemeralOwner !== 0n) this.ephemerals.get(node.ephemeralOwner)?.delete(path);
    const parent = this.nodes.get(parentOf(path));
    if (!parent) return;
    parent.children.delete(basename(path));
    parent.pzxid = zxid;
  }

  /**
   * Deletes `path` if it is a container that has had children and has none
   * left, each with its own zxid as the server's container manager does, and so on upwards.
   */
  private reclaim(path: string): string[] {
    const deleted: string[] = [];
    for (let current = path; current !== '/'; current = parentOf(current)) {
      const node = this.nodes.get(current);
      if (!node || !node.container || node.children.size > 0 || node.creates === 0) break;
      this.unlink(current, node, this.tick());
      deleted.push(current);
    }
    return deleted;
  }

  private statOf(node: ZNode): NodeStat {
    return {
      czxid: node.czxid,
      mzxid: node.mzxid,
      pzxid: node.pzxid,
      ephemeralOwner: node.ephemeralOwner,
      version: node.version,
      cversion: (Math.imul(node.creates, 2) - node.children.size) | 0,
      numChildren: node.children.size,
      dataLength: node.data.length,
    };
  }
}

/** Java's `%010d`: 10 digits, or a minus sign and 9 digits for a counter past 2^31 - 1. */
export function formatSequence(counter: number): string {
  return counter >= 0 ? String(counter).padStart(10, '0') : `-${String(-counter).padStart(9, '0')}`;
}

export function parentOf(path: string): string {
  const slash = path.lastIndexOf('/');
  return slash <= 0 ? '/' : path.slice(0, slash);
}

function basename(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

function fail(code: ZkErrorCode, detail?: string): TreeError {
  return new TreeError(code, detail ?? code.toLowerCase().replaceAll('_', ' '));
}

/** The server's path rules (PathUtils.validatePath); a sequential create may end with "/". */
function checkPath(path: string, sequential = false): void {
  const bad = pathProblem(path, sequential);
  if (bad) throw fail('OTHER', `invalid path: ${bad}`);
}

// eslint-disable-next-line no-control-regex
const FORBIDDEN = /[\u0000-\u001f\u007f-\u009f\ud800-\uf8ff\ufff0-\uffff]/;

function pathProblem(path: unknown, sequential: boolean): string | undefined {
  if (typeof path !== 'string' || path === '') return 'a path must be a non-empty string';
  if (!path.startsWith('/')) return 'a path must start with "/"';
  if (path === '/') return undefined;
  const checked = sequential && path.endsWith('/') ? path.slice(0, -1) : path;
  if (checked.endsWith('/')) return 'a path must not end with "/"';
  if (FORBIDDEN.test(checked)) return 'a path must not contain control or reserved characters';
  for (const segment of checked.slice(1).split('/')) {
    if (segment === '') return 'a path must not contain an empty segment';
    if (segment === '.' || segment === '..') return 'a path must not contain relative segments';
  }
  return undefined;
}
