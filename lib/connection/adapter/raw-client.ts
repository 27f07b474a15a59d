// The declarations must come with this file into every program that compiles it (the sample's,
// the fixtures'...), and an import would be emitted; the reference is not (declaration files drop it).
// oxlint-disable-next-line typescript/triple-slash-reference
/// <reference path="./node-zookeeper-client.d.ts" />
/**
 * The parts of node-zookeeper-client (1.1.3) the adapter uses, typed here (the package ships no
 * types), and the protocol constants. The adapter folder is the only place that loads the client.
 */
import type { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
// Default imports of a CommonJS package: module.exports in both builds (ESM and CommonJS, see
// node-zookeeper-client.d.ts); the full file names are what ESM resolution needs (no "exports" there).
import zkModule from 'node-zookeeper-client';
import juteModule from 'node-zookeeper-client/lib/jute/index.js';
import exceptions from 'node-zookeeper-client/lib/Exception.js';

export interface RawStat {
  czxid: Buffer;
  mzxid: Buffer;
  pzxid: Buffer;
  ephemeralOwner: Buffer;
  version: number;
  cversion: number;
  numChildren: number;
  dataLength: number;
}
export interface RawException {
  getCode(): number;
  message: string;
}
export type Callback<T extends unknown[]> = (error: RawException | null, ...result: T) => void;
export interface RawHeader {
  xid: number;
  type: number;
}
export interface RawRequest {
  header: RawHeader | null;
  toBuffer(): Buffer;
}
export interface RawPacket {
  request: RawRequest;
  callback: ((error: RawException | null, response?: unknown) => void) | null;
}
export interface RawConnectionManager {
  socket?: Socket;
  chrootPath?: string;
  /** One of {@link STATES}. */
  state: number;
  /** The next request's xid (the client counts up from 0 and never wraps). */
  xid: number;
  connect(): void;
  onSocketConnected(): void;
  onSocketData(buffer: Buffer): void;
  onSocketClosed(hadError: boolean): void;
  pendingBuffer: Buffer | null;
  connectTimeoutHandler?: NodeJS.Timeout;
  watcherManager: { dataWatchers: Record<string, EventEmitter | undefined> };
  packetQueue: { push(packet: RawPacket): void; shift(): RawPacket | undefined };
  queue(request: unknown, callback?: (error: RawException | null, response?: unknown) => void): void;
}
export interface RawClient extends EventEmitter {
  connect(): void;
  close(): void;
  getSessionId(): Buffer;
  getSessionPassword(): Buffer;
  getSessionTimeout(): number;
  addAuthInfo(scheme: string, auth: Buffer): void;
  create(path: string, data: Buffer, acls: unknown[], mode: number, cb: Callback<[string]>): void;
  remove(path: string, version: number, cb: Callback<[]>): void;
  getChildren(path: string, cb: Callback<[string[], RawStat]>): void;
  getData(path: string, watcher: ((event: unknown) => void) | undefined, cb: Callback<[Buffer | null, RawStat]>): void;
  exists(path: string, cb: Callback<[RawStat | null]>): void;
  setData(path: string, data: Buffer, version: number, cb: Callback<[RawStat]>): void;
  connectionManager: RawConnectionManager;
}
interface RawModule {
  createClient(connectionString: string, options: Record<string, unknown>): RawClient;
  ACL: new (perms: number, id: unknown) => unknown;
  Id: new (scheme: string, id: string) => unknown;
}
/** The client's protocol records, for the requests it cannot make itself (createContainer, ping on our schedule). */
interface RawJute {
  OP_CODES: { CREATE: number; PING: number };
  XID_PING: number;
  Request: new (header: unknown, payload: unknown) => RawRequest;
  protocol: {
    RequestHeader: new (
      xid?: number,
      type?: number,
    ) => RawHeader & {
      serialize(buffer: Buffer, offset: number): number;
    };
    CreateRequest: new () => { path: string; data: Buffer; acl: unknown[]; flags: number };
  };
}

// The package is CommonJS and ships no types: the ones above are ours.
export const zk = zkModule as RawModule;
export const jute = juteModule as RawJute;

/** Error codes the client knows; on any other code its reply parser throws (in its socket handler). */
export const CLIENT_KNOWN_CODES: ReadonlySet<number> = new Set(
  Object.entries(exceptions)
    .filter(([name, value]) => /^[A-Z_]+$/.test(name) && typeof value === 'number')
    .map(([, value]) => value as number),
);

/** The client's connection states (ConnectionManager.STATES). */
export const STATES = { CONNECTING: 1, CONNECTED: 2, CONNECTED_READ_ONLY: 3 } as const;

export const XID_NOTIFICATION = -1;
/** SYSTEMERROR, a code the client knows: what a reply with a code it does not know is rewritten to before it parses it. */
export const SUBSTITUTE_CODE = -1;

/**
 * Server error codes (ZooKeeper 3.8 KeeperException.Code) the client does not know, by name, for
 * messages. They reach the caller as a failed request; see `TRANSIENT_SERVER_CODES`.
 */
export const SERVER_CODE_NAMES: Readonly<Record<number, string>> = {
  [-12]: 'UNKNOWNSESSION',
  [-13]: 'NEWCONFIGNOQUORUM',
  [-14]: 'RECONFIGINPROGRESS',
  [-118]: 'SESSIONMOVED',
  [-119]: 'NOTREADONLY',
  [-120]: 'EPHEMERALONLOCALSESSION',
  [-121]: 'NOWATCHER',
  [-122]: 'REQUESTTIMEOUT',
  [-123]: 'RECONFIGDISABLED',
  [-124]: 'SESSIONCLOSEDREQUIRESASLAUTH',
  [-125]: 'QUOTAEXCEEDED',
  [-127]: 'THROTTLEDOP',
};

/**
 * Of those, the codes that say "not now" rather than "never": the server was throttling, busy
 * reconfiguring, or timed the request out; the request was not applied, and the same request may
 * succeed after a back-off. Every other code is permanent for the request (QUOTAEXCEEDED stays
 * until an operator raises the quota).
 */
export const TRANSIENT_SERVER_CODES: ReadonlySet<number> = new Set([-127, -122, -118, -14, -13]);

/** The error a reply with a code the client does not know is reported with, shaped like the client's own. */
export function serverException(code: number): RawException {
  const name = SERVER_CODE_NAMES[code] ?? 'UNKNOWN';
  return { getCode: () => code, message: `server error ${name} (${code})` };
}
