/**
 * tls: what TLS costs (issue 16). w1 (acquire + release, one session) and w2 at 64 sessions (one
 * contended lock) over TLS and over plaintext, in the same run, on ONE server that serves both: a
 * local ZooKeeper with the Netty connection factory, a secureClientPort and a plaintext
 * clientPort (the test support's throwaway keystores; server authentication only). So the ratio
 * is TLS alone: same JVM, same factory, same data. w1's two sides take turns in blocks of 50
 * cycles (as floor and w1 do); w2's in halves, plain, TLS, TLS, plain (rates and percentiles are
 * the means of a side's halves). With --connect it is skipped: it needs a server with both ports.
 */
import { fourLetter, packetsReceived, watchCount } from '../test/support/four-letter.js';
import { startZooKeeper, type ZkServer } from '../test/support/zookeeper.js';
import { perOp, perSecond, type BenchContext } from './context.js';
import { runInterleaved } from './harness.js';
import type { BenchServer } from './server.js';
import { round } from './stats.js';
import { openW1, w2, type CycleWorkload, type W2Line } from './workloads.js';

/** The w2 point compared. */
export const TLS_W2_CLIENTS = 64;

export interface TlsLine {
  workload: 'tls';
  /** w1: acquire + release cycles (times are cycle times); w2: acquisitions at 64 sessions (times are waits). */
  point: 'w1' | 'w2';
  clients: number;
  /** w1: cycles per side; w2: acquisitions over TLS. */
  count: number;
  plain_p50_us: number;
  tls_p50_us: number;
  plain_p99_us: number;
  tls_p99_us: number;
  plain_per_s: number;
  tls_per_s: number;
  /** tls_p50_us / plain_p50_us (target for w1: at most 1.2). */
  p50_ratio: number;
  /** tls_per_s / plain_per_s. */
  per_s_ratio: number;
  /** w2: times two holders were inside at once, both sides (must be 0). */
  overlaps: number;
  /** Requests per cycle or acquisition over TLS (the same as plaintext: TLS adds none). */
  requests_per_op: number;
}

/** The comparison's server as the workloads see it: one address (plaintext or TLS), the counters over plaintext. */
function sideOf(server: ZkServer, connectString: string): BenchServer {
  const plain = server.plaintextConnectString!;
  return {
    connectString,
    local: true,
    packets: () => packetsReceived(plain),
    watches: () => watchCount(plain),
    version: async () => /^Zookeeper version: ([^,\s]+)/m.exec(await fourLetter(plain, 'srvr'))?.[1] ?? 'unknown',
    stop: async () => undefined,
  };
}

const ratio = (a: number, b: number) => (b === 0 ? Number.NaN : round(a / b, 3));

/** Two runs of one side of equal length as one: counts summed, rates and percentiles averaged. */
function both(a: W2Line, b: W2Line): W2Line {
  const mean = (x: number, y: number) => round((x + y) / 2, 1);
  return {
    ...a,
    acquisitions: a.acquisitions + b.acquisitions,
    per_s: mean(a.per_s, b.per_s),
    wait_p50_us: Math.round((a.wait_p50_us + b.wait_p50_us) / 2),
    wait_p99_us: Math.round((a.wait_p99_us + b.wait_p99_us) / 2),
    overlaps: a.overlaps + b.overlaps,
    requests_per_op: round((a.requests_per_op + b.requests_per_op) / 2, 3),
  };
}

export async function tlsComparison(ctx: BenchContext): Promise<TlsLine[]> {
  const server = await startZooKeeper({ tickTime: 2_000, tls: { alsoPlaintext: true } });
  try {
    const plainCtx: BenchContext = { ...ctx, server: sideOf(server, server.plaintextConnectString!), tls: undefined };
    const tlsCtx: BenchContext = { ...ctx, server: sideOf(server, server.connectString), tls: { ca: server.tls!.ca } };
    const w1 = await compareW1(plainCtx, tlsCtx);
    // w2's sides in the order plain, TLS, TLS, plain, half the seconds each: a drift of the
    // machine's speed over the run weighs on both alike.
    const half = { ...ctx.args, seconds: Math.max(1, ctx.args.seconds / 2) };
    const runs: W2Line[] = [];
    for (const side of [plainCtx, tlsCtx, tlsCtx, plainCtx])
      runs.push(await w2({ ...side, args: half }, TLS_W2_CLIENTS));
    const [plain, tls] = [both(runs[0], runs[3]), both(runs[1], runs[2])];
    return [
      w1,
      {
        workload: 'tls',
        point: 'w2',
        clients: TLS_W2_CLIENTS,
        count: tls.acquisitions,
        plain_p50_us: plain.wait_p50_us,
        tls_p50_us: tls.wait_p50_us,
        plain_p99_us: plain.wait_p99_us,
        tls_p99_us: tls.wait_p99_us,
        plain_per_s: plain.per_s,
        tls_per_s: tls.per_s,
        p50_ratio: ratio(tls.wait_p50_us, plain.wait_p50_us),
        per_s_ratio: ratio(tls.per_s, plain.per_s),
        overlaps: plain.overlaps + tls.overlaps,
        requests_per_op: tls.requests_per_op,
      },
    ];
  } finally {
    await server.dispose();
  }
}

/** w1 over plaintext and over TLS, taking turns (so that a slow moment of the machine hits both alike). */
async function compareW1(plainCtx: BenchContext, tlsCtx: BenchContext): Promise<TlsLine> {
  const opened: CycleWorkload[] = [];
  try {
    opened.push(await openW1(plainCtx), await openW1(tlsCtx));
    const cycles = plainCtx.args.cycles;
    const [plain, tls] = await runInterleaved(
      cycles,
      opened.map((w) => w.cycle),
      () => plainCtx.server.packets(),
    );
    const [plainP50, plainP99] = plain.latencies.percentiles(50, 99);
    const [tlsP50, tlsP99] = tls.latencies.percentiles(50, 99);
    const plainPerS = perSecond(cycles, plain.elapsedUs);
    const tlsPerS = perSecond(cycles, tls.elapsedUs);
    return {
      workload: 'tls',
      point: 'w1',
      clients: 1,
      count: cycles,
      plain_p50_us: plainP50,
      tls_p50_us: tlsP50,
      plain_p99_us: plainP99,
      tls_p99_us: tlsP99,
      plain_per_s: plainPerS,
      tls_per_s: tlsPerS,
      p50_ratio: ratio(tlsP50, plainP50),
      per_s_ratio: ratio(tlsPerS, plainPerS),
      overlaps: 0,
      requests_per_op: perOp(tls.requests, cycles),
    };
  } finally {
    for (const w of opened) await w.close();
  }
}
