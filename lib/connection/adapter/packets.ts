/**
 * The two requests node-zookeeper-client cannot make, built from its own records where it has them.
 */
import { jute, type RawPacket, type RawRequest } from './raw-client.js';

const OP_DELETE = 2;
const OP_REMOVE_WATCHES = 18;
const OP_CREATE_CONTAINER = 19;
const CONTAINER_FLAGS = 4;
const WATCHER_TYPE_DATA = 2;

/**
 * createContainer (opcode 19, ZooKeeper 3.5+) with the client's CreateRequest record, its header
 * telling the client's reply parser to read a create reply (createContainer's reply starts with the
 * same path; the Stat after it is left unread). `acl`: the client's ACL records.
 */
export function createContainerRequest(path: string, acl: unknown[]): RawRequest {
  const header = new jute.protocol.RequestHeader();
  header.type = jute.OP_CODES.CREATE; // how the reply is parsed
  const serialize = header.serialize.bind(header);
  header.serialize = (buffer, offset) => {
    const written = serialize(buffer, offset);
    buffer.writeInt32BE(OP_CREATE_CONTAINER, offset + 4); // what the server is asked
    return written;
  };
  const payload = new jute.protocol.CreateRequest();
  payload.path = path;
  payload.data = Buffer.alloc(0);
  payload.acl = acl.map((entry) => (entry as { toRecord(): unknown }).toRecord());
  payload.flags = CONTAINER_FLAGS;
  return new jute.Request(header, payload);
}

/**
 * removeWatches (opcode 18) of the data watch on `fullPath` (chroot included), as a packet without
 * a callback: the client never looks at its reply (a NOWATCHER reply is harmless). The header
 * reports DELETE to the client's reply parser (a reply without a body, like removeWatches').
 */
export function removeWatchesPacket(fullPath: string): RawPacket {
  const pathBytes = Buffer.from(fullPath, 'utf8');
  const header = {
    xid: 0,
    type: OP_DELETE,
    byteLength: () => 8,
    serialize(buffer: Buffer, offset: number): number {
      buffer.writeInt32BE(header.xid, offset);
      buffer.writeInt32BE(OP_REMOVE_WATCHES, offset + 4);
      return 8;
    },
  };
  const payload = {
    byteLength: () => 8 + pathBytes.length,
    serialize(buffer: Buffer, offset: number): number {
      buffer.writeInt32BE(pathBytes.length, offset);
      pathBytes.copy(buffer, offset + 4);
      buffer.writeInt32BE(WATCHER_TYPE_DATA, offset + 4 + pathBytes.length);
      return 8 + pathBytes.length;
    },
  };
  const request: RawRequest = {
    header,
    toBuffer(): Buffer {
      const size = header.byteLength() + payload.byteLength();
      const buffer = Buffer.alloc(size + 4);
      buffer.writeInt32BE(size, 0);
      header.serialize(buffer, 4);
      payload.serialize(buffer, 12);
      return buffer;
    },
  };
  return { request, callback: null };
}
