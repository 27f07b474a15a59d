/**
 * The ZooKeeper server the benchmark runs against: one it starts (the tests' harness, with
 * ZooKeeper's default tickTime of 2 s so that sessions are realistic), or one given with --connect.
 * Counters come from the server itself through four letter words.
 */
import { fourLetter, packetsReceived, watchCount } from '../test/support/four-letter.js';
import { startZooKeeper, type ZkServer } from '../test/support/zookeeper.js';

export interface BenchServer {
  /** `host:port` */
  readonly connectString: string;
  /** True when the benchmark started it (and stops it). */
  readonly local: boolean;
  /** Requests and pings the server received from clients so far (`mntr` zk_packets_received, minus our 4-letter words). */
  packets(): Promise<number>;
  /** Watches set on the server, all sessions (`wchs`). */
  watches(): Promise<number>;
  /** `srvr`'s "Zookeeper version" line, e.g. `3.8.0-...`. */
  version(): Promise<string>;
  /** Stops a server we started; nothing for --connect. Safe to call twice. */
  stop(): Promise<void>;
}

export async function openServer(connect: string | undefined): Promise<BenchServer> {
  let started: ZkServer | undefined;
  if (connect === undefined) started = await startZooKeeper({ tickTime: 2_000 });
  const connectString = started?.connectString ?? connect!;
  const server: BenchServer = {
    connectString,
    local: started !== undefined,
    packets: () => packetsReceived(connectString),
    watches: () => watchCount(connectString),
    version: async () => {
      const text = await fourLetter(connectString, 'srvr');
      // Debian's build leaves its git id unexpanded: 3.8.0-${mvngit.commit.id}
      return /^Zookeeper version: ([^,\s]+)/m.exec(text)?.[1].replace(/-\$\{.*\}$/, '') ?? 'unknown';
    },
    stop: async () => {
      const zk = started;
      started = undefined;
      await zk?.dispose();
    },
  };
  try {
    // The counters need mntr and wchs: fail now, with the reason, rather than after the first workload.
    await server.packets();
    await server.watches();
  } catch (error) {
    await server.stop();
    throw new Error(
      `ZooKeeper at ${connectString} does not answer the four letter words mntr and wchs ` +
        `(add "4lw.commands.whitelist=srvr,mntr,wchs" to its zoo.cfg): ${(error as Error).message}`,
      { cause: error },
    );
  }
  return server;
}
