/**
 * node-zookeeper-client without the library, for the floor workload: the bare protocol calls of
 * the lock recipe on one session, wrapped in promises and nothing else.
 */
import { createRequire } from 'node:module';

interface RawException {
  getCode(): number;
  message: string;
}
type Callback<T extends unknown[]> = (error: RawException | null, ...result: T) => void;
interface RawClient {
  connect(): void;
  close(): void;
  once(event: 'connected' | 'disconnected', listener: () => void): void;
  create(path: string, data: Buffer, acls: unknown[], mode: number, cb: Callback<[string]>): void;
  getChildren(path: string, cb: Callback<[string[], unknown]>): void;
  remove(path: string, version: number, cb: Callback<[]>): void;
  mkdirp(path: string, cb: Callback<[string]>): void;
}
interface RawModule {
  createClient(connectionString: string, options: Record<string, unknown>): RawClient;
  ACL: { OPEN_ACL_UNSAFE: unknown[] };
  CreateMode: { EPHEMERAL_SEQUENTIAL: number };
}
// The package is CommonJS and ships no types (the ones above are ours).
const zk = createRequire(import.meta.url)('node-zookeeper-client') as RawModule;

function settle<T extends unknown[]>(resolve: (value: T) => void, reject: (error: Error) => void): Callback<T> {
  return (error, ...result) => {
    if (error) reject(new Error(`ZooKeeper: ${error.message} (${error.getCode()})`));
    else resolve(result);
  };
}

export class RawZooKeeper {
  private constructor(private readonly client: RawClient) {}

  /** Connects one session (same session timeout as the library's default, 15 s). */
  static async connect(connectString: string, timeoutMs = 10_000): Promise<RawZooKeeper> {
    const client = zk.createClient(connectString, { sessionTimeout: 15_000, retries: 0 });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        client.close();
        reject(new Error(`no ZooKeeper session at ${connectString} within ${timeoutMs} ms`));
      }, timeoutMs);
      client.once('connected', () => {
        clearTimeout(timer);
        resolve();
      });
      client.connect();
    });
    return new RawZooKeeper(client);
  }

  /** Creates an EPHEMERAL_SEQUENTIAL node (world:anyone:crwda), resolves with its full path. */
  async createEphemeralSequential(path: string, data: Buffer): Promise<string> {
    const [created] = await new Promise<[string]>((resolve, reject) =>
      this.client.create(
        path,
        data,
        zk.ACL.OPEN_ACL_UNSAFE,
        zk.CreateMode.EPHEMERAL_SEQUENTIAL,
        settle<[string]>(resolve, reject),
      ),
    );
    return created;
  }

  /** Children's names, without a watch (getChildren2, as the library sends it). */
  async getChildren(path: string): Promise<string[]> {
    const [children] = await new Promise<[string[], unknown]>((resolve, reject) =>
      this.client.getChildren(path, settle<[string[], unknown]>(resolve, reject)),
    );
    return children;
  }

  async remove(path: string): Promise<void> {
    await new Promise<[]>((resolve, reject) => this.client.remove(path, -1, settle<[]>(resolve, reject)));
  }

  /** Creates the persistent path and its missing parents. */
  async mkdirp(path: string): Promise<void> {
    await new Promise<[string]>((resolve, reject) => this.client.mkdirp(path, settle<[string]>(resolve, reject)));
  }

  /** Closes the session (its ephemeral nodes go at once); waits up to 5 s for the server. */
  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 5_000);
      this.client.once('disconnected', () => {
        clearTimeout(timer);
        resolve();
      });
      this.client.close();
    });
  }
}
