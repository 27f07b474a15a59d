/**
 * One server watch per path, however many local waiters: node-zookeeper-client would add a
 * listener per call and leak them. When the last local waiter cancels, the client's listener and
 * the server watch (removeWatches, which the client lacks: see packets.ts) go too. A watch request
 * that failed (its deadline passed) but is answered after all is taken back the same way.
 */
import { ZooKeeperError } from '../../errors/zookeeper.error.js';
import type { WatchRegistration } from '../zk-port.js';
import { removeWatchesPacket } from './packets.js';
import type { RawConnectionManager } from './raw-client.js';

interface PathWatch {
  listeners: Set<() => void>;
  /** Resolves with the node's data once the server watch is set, null when the node did not exist. */
  ready: Promise<Buffer | null>;
  armed: boolean;
  /** Its request failed (e.g. on its deadline): a success that still comes is taken back. */
  abandoned: boolean;
  dispatch: () => void;
}

/**
 * Sends the watch request (getData with `dispatch` as the client's watcher); calls `answeredLate`
 * before resolving when the reply is a success, so a late one can be taken back.
 */
export type WatchRequest = (path: string, dispatch: () => void, answered: () => void) => Promise<Buffer | null>;

export class PathWatches {
  private readonly watches = new Map<string, PathWatch>();
  /** Watch notifications received from the server (one per fired server watch). */
  notifications = 0;

  constructor(
    private readonly manager: RawConnectionManager,
    private readonly request: WatchRequest,
    private readonly connected: () => boolean,
  ) {}

  /** Number of paths with a live watch registration (tests check that nothing is left). */
  get size(): number {
    return this.watches.size;
  }

  async watch(path: string, onChange: () => void): Promise<WatchRegistration | null> {
    const watch = this.watches.get(path) ?? this.start(path);
    watch.listeners.add(onChange);
    let data: Buffer | null;
    try {
      data = await watch.ready;
    } catch (error) {
      watch.listeners.delete(onChange);
      throw error;
    }
    if (data === null) {
      watch.listeners.delete(onChange);
      return null;
    }
    return {
      data,
      cancel: () => {
        if (!watch.listeners.delete(onChange)) return;
        if (watch.listeners.size === 0 && watch.armed) this.unwatch(path, watch);
      },
    };
  }

  clear(): void {
    this.watches.clear();
  }

  private start(path: string): PathWatch {
    const created: PathWatch = {
      listeners: new Set(),
      armed: false,
      abandoned: false,
      ready: Promise.resolve(null),
      dispatch: () => {
        this.notifications += 1;
        if (this.watches.get(path) === created) this.watches.delete(path);
        created.armed = false;
        for (const listener of Array.from(created.listeners)) listener();
      },
    };
    created.ready = this.request(path, created.dispatch, () => {
      // Answered after our deadline: the server set the watch, the client registered it.
      if (created.abandoned) this.dropLate(path, created);
    }).then(
      (data) => {
        created.armed = true;
        if (created.listeners.size === 0) this.unwatch(path, created);
        return data ?? Buffer.alloc(0);
      },
      (error: unknown) => {
        created.abandoned = true;
        if (this.watches.get(path) === created) this.watches.delete(path);
        if (ZooKeeperError.is(error, 'NO_NODE')) return null;
        throw error;
      },
    );
    this.watches.set(path, created);
    return created;
  }

  private unwatch(path: string, watch: PathWatch): void {
    if (this.watches.get(path) === watch) this.watches.delete(path);
    watch.armed = false;
    this.forgetDispatch(path, watch);
    if (this.connected()) this.sendRemoveWatches(path);
  }

  /**
   * A watch request that failed (its deadline passed) was answered after all: take the watch
   * back, on the server too unless a live registration on the path now shares it (the server
   * keeps one data watch per path and connection).
   */
  private dropLate(path: string, watch: PathWatch): void {
    this.forgetDispatch(path, watch);
    if (!this.watches.has(path) && this.connected()) this.sendRemoveWatches(path);
  }

  private forgetDispatch(path: string, watch: PathWatch): void {
    const emitter = this.manager.watcherManager.dataWatchers[path];
    emitter?.removeListener('notification', watch.dispatch);
    if (emitter && emitter.listenerCount('notification') === 0) {
      delete this.manager.watcherManager.dataWatchers[path];
    }
  }

  /** removeWatches (opcode 18) is missing from the client: queued ourselves, fire and forget (see packets.ts). */
  private sendRemoveWatches(path: string): void {
    const fullPath = (this.manager.chrootPath ?? '') + path;
    this.manager.packetQueue.push(removeWatchesPacket(fullPath));
  }
}
