/** The human-readable side of the benchmark (pure): a table of the JSON lines and the ratios (docs/benchmarks.md). */
import type { LeaderCleanLine, LeaderCrashLine, LeaderLine, LeaderSkipLine } from './leader-lines.js';
import { round } from './stats.js';
import type { TlsLine } from './tls.js';
import type { BenchLine, CycleLine, HttpLine, MemLine, W2Line } from './workloads.js';

const dash = '-';
const int = (value: number) => (Number.isFinite(value) ? Math.round(value).toLocaleString('en-US') : String(value));
const fixed = (value: number, digits: number) => (Number.isFinite(value) ? value.toFixed(digits) : String(value));
const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

/** A row of a timed workload: count, wait p50/p99, per second, requests per op, then `detail`. */
function waitRow(
  name: string,
  line: Pick<W2Line, 'clients' | 'acquisitions' | 'wait_p50_us' | 'wait_p99_us' | 'per_s' | 'requests_per_op'>,
  detail: string,
): string[] {
  return [
    name,
    String(line.clients),
    int(line.acquisitions),
    `wait ${int(line.wait_p50_us)}`,
    `wait ${int(line.wait_p99_us)}`,
    int(line.per_s),
    fixed(line.requests_per_op, 3),
    detail,
  ];
}

/** A row of the leader workload (times in ms, said so in the cells). */
function leaderRow(line: LeaderLine): string[] {
  const ms = (value: number) => `${fixed(value, 1)} ms`;
  switch (line.point) {
    case 'clean':
    case 'crash':
      return [
        `leader ${line.point}`,
        String(line.instances),
        int(line.handovers),
        ms(line.p50_ms),
        ms(line.p99_ms),
        dash,
        fixed(line.requests_per_op, 3),
        `max ${ms(line.max_ms)}` +
          (line.point === 'crash'
            ? ` = ${fixed(line.max_ratio, 2)} x the session timeout (${int(line.session_timeout_ms)} ms)`
            : '') +
          `, overlaps ${line.overlaps}; a TTL lease: up to ${int(line.ttl_lease_bound_ms)} ms`,
      ];
    case 'skip':
      return [
        'leader skip',
        String(line.instances),
        int(line.skipped_ticks),
        dash,
        dash,
        dash,
        fixed(line.requests_per_op, 3),
        `skipped ticks, runs on the instances that do not hold the job ${line.runs}`,
      ];
  }
  throw new Error(`unknown line ${JSON.stringify(line)}`);
}

function row(line: BenchLine): string[] {
  switch (line.workload) {
    case 'leader':
      return leaderRow(line);
    case 'floor':
    case 'w1':
    case 'nest':
    case 'idle':
      return [
        line.workload,
        dash,
        int(line.cycles),
        int(line.p50_us),
        int(line.p99_us),
        int(line.per_s),
        fixed(line.requests_per_op, 3),
        '',
      ];
    case 'w2':
    case 'w2c':
      return waitRow(
        line.workload,
        line,
        `overlaps ${line.overlaps}, watch events/acq ${fixed(line.watch_events_per_acq, 3)}`,
      );
    case 'w3':
      return [
        'w3',
        String(line.clients),
        int(line.acquisitions),
        int(line.p50_us),
        int(line.p99_us),
        int(line.per_s),
        fixed(line.requests_per_op, 3),
        line.keys === undefined
          ? ''
          : `${int(line.keys)} keys, ${int(line.leftover_dirs ?? Number.NaN)} dirs left after ${int(line.reclaim_ms ?? Number.NaN)} ms`,
      ];
    case 'mem':
      return [
        'mem',
        dash,
        int(line.cycles),
        dash,
        dash,
        dash,
        fixed(line.requests_per_op, 3),
        `heap ${mib(line.heap_start_bytes)} -> ${mib(line.heap_end_bytes)}, ` +
          `server watches ${line.server_watches_after}, leftover nodes ${line.leftover_nodes}`,
      ];
    case 'http':
      return [
        'http',
        dash,
        int(line.requests),
        `lock ${int(line.locked_p50_us)}`,
        dash,
        dash,
        fixed(line.requests_per_op, 3),
        `plain p50 ${int(line.plain_p50_us)} us, overhead p50 ${int(line.overhead_p50_us)} us`,
      ];
    case 'rw':
      return waitRow(
        'rw',
        line,
        `reads ${int(line.reads)}, writes ${int(line.writes)}, overlaps ${line.overlaps}, ` +
          `max readers inside ${line.max_readers_inside}, watch events/acq ${fixed(line.watch_events_per_acq, 3)}, ` +
          `per woken waiter ${fixed(line.wakeups_per_waiter_woken, 3)}`,
      );
    case 'sem':
      return waitRow(
        'sem',
        line,
        `${line.leases} leases, hold ${line.hold_ms} ms, overlaps ${line.overlaps}, max inside ${line.max_inside}, ` +
          `watch events/acq ${fixed(line.watch_events_per_acq, 3)}`,
      );
    case 'tls':
      return [
        `tls ${line.point}`,
        String(line.clients),
        int(line.count),
        `${line.point === 'w2' ? 'wait ' : ''}${int(line.tls_p50_us)}`,
        `${line.point === 'w2' ? 'wait ' : ''}${int(line.tls_p99_us)}`,
        int(line.tls_per_s),
        fixed(line.requests_per_op, 3),
        `plaintext p50 ${int(line.plain_p50_us)}, p99 ${int(line.plain_p99_us)}, per s ${int(line.plain_per_s)}: ` +
          `p50 x${fixed(line.p50_ratio, 3)}, per s x${fixed(line.per_s_ratio, 3)}` +
          (line.point === 'w2' ? `, overlaps ${line.overlaps}` : ''),
      ];
    case 'multi':
      return waitRow(
        'multi',
        line,
        `2 of ${line.paths} paths, overlaps ${line.overlaps}, deadlocks ${line.deadlocks}, ` +
          `watch events/acq ${fixed(line.watch_events_per_acq, 3)}`,
      );
  }
  throw new Error(`unknown line ${JSON.stringify(line)}`);
}

/**
 * The invariants of one run that did not hold (empty when all did): holders overlapping in w2,
 * w2c, rw, sem or multi; rw's readers never inside together; sem not reaching exactly its leases
 * at most; a multi-lock loop not finished by its deadline; two leaders at once in a leader
 * handover; a skipped tick that ran or made a request.
 */
export function failures(lines: BenchLine[]): string[] {
  const failed: string[] = [];
  for (const line of lines) {
    switch (line.workload) {
      case 'w2':
      case 'w2c':
        if (line.overlaps > 0) {
          failed.push(`${line.overlaps} overlapping holder(s) in ${line.workload} at ${line.clients} clients`);
        }
        break;
      case 'rw':
        if (line.overlaps > 0)
          failed.push(`${line.overlaps} overlap(s) in rw (a reader with a writer, or two writers)`);
        if (line.max_readers_inside < 2) {
          failed.push(`rw: at most ${line.max_readers_inside} reader(s) inside at once (readers must share the lock)`);
        }
        break;
      case 'sem':
        if (line.overlaps > 0 || line.max_inside > line.leases) {
          failed.push(
            `sem: ${line.max_inside} holders inside at once (${line.overlaps} time(s) more than ${line.leases} leases)`,
          );
        } else if (line.max_inside < line.leases) {
          failed.push(`sem: never more than ${line.max_inside} of ${line.leases} leases held at once`);
        }
        break;
      case 'tls':
        if (line.overlaps > 0) failed.push(`${line.overlaps} overlapping holder(s) in tls ${line.point}`);
        break;
      case 'multi':
        if (line.overlaps > 0) failed.push(`${line.overlaps} overlap(s) on a path in multi`);
        if (line.deadlocks > 0) failed.push(`multi: ${line.deadlocks} session(s) still waiting at the deadline`);
        break;
      case 'leader':
        if (line.point === 'skip') {
          if (line.runs > 0) failed.push(`leader: ${line.runs} run(s) on instances that do not hold the job`);
          if (line.requests_per_op !== 0) {
            failed.push(`leader: ${line.requests_per_op} requests per skipped tick (must be 0)`);
          }
        } else if (line.overlaps > 0) {
          failed.push(`leader: ${line.overlaps} ${line.point} handover(s) with two leaders at once`);
        }
        break;
      default:
        break;
    }
  }
  return failed;
}

/** The table: one row per JSON line (times in µs). */
export function table(lines: BenchLine[]): string {
  const header = ['workload', 'clients', 'count', 'p50 us', 'p99 us', 'per s', 'req/op', ''];
  const rows = [header, ...lines.map(row)];
  const widths = header.map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows
    .map((r) =>
      r
        .map((cell, c) => (c === 0 || c === r.length - 1 ? cell.padEnd(widths[c]) : cell.padStart(widths[c])))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

export interface Ratio {
  name: string;
  value: number | undefined;
  /** How it is computed, with the numbers. */
  detail: string;
}

const find = <T extends BenchLine>(lines: BenchLine[], test: (line: BenchLine) => line is T) => lines.find(test);

/** The ratios docs/benchmarks.md sets targets for, and two more, from lines of one run (undefined when a workload is missing). */
export function ratios(lines: BenchLine[]): Ratio[] {
  const floor = find(lines, (l): l is CycleLine => l.workload === 'floor');
  const w1 = find(lines, (l): l is CycleLine => l.workload === 'w1');
  const nest = find(lines, (l): l is CycleLine => l.workload === 'nest');
  const idle = find(lines, (l): l is CycleLine => l.workload === 'idle');
  const w2At = (clients: number) => find(lines, (l): l is W2Line => l.workload === 'w2' && l.clients === clients);
  const w2at4 = w2At(4);
  const w2at64 = w2At(64);
  const w2cAt64 = find(lines, (l): l is W2Line => l.workload === 'w2c' && l.clients === 64);
  const mem = find(lines, (l): l is MemLine => l.workload === 'mem');
  const http = find(lines, (l): l is HttpLine => l.workload === 'http');
  const clean = find(lines, (l): l is LeaderCleanLine => l.workload === 'leader' && l.point === 'clean');
  const crash = find(lines, (l): l is LeaderCrashLine => l.workload === 'leader' && l.point === 'crash');
  const skip = find(lines, (l): l is LeaderSkipLine => l.workload === 'leader' && l.point === 'skip');
  const tlsW1 = find(lines, (l): l is TlsLine => l.workload === 'tls' && l.point === 'w1');
  const tlsW2 = find(lines, (l): l is TlsLine => l.workload === 'tls' && l.point === 'w2');
  const ratio = (a: number | undefined, b: number | undefined) =>
    a === undefined || b === undefined || b === 0 ? undefined : round(a / b, 3);
  return [
    {
      name: 'w1.p50_us / floor.p50_us',
      value: ratio(w1?.p50_us, floor?.p50_us),
      detail: `${w1?.p50_us ?? '?'} / ${floor?.p50_us ?? '?'} (library overhead over the bare protocol)`,
    },
    {
      name: 'w2.per_s at 64 clients / at 4',
      value: ratio(w2at64?.per_s, w2at4?.per_s),
      detail: `${w2at64?.per_s ?? '?'} / ${w2at4?.per_s ?? '?'} (throughput under 16x the contention)`,
    },
    {
      name: 'w2.watch_events_per_acq at 64 clients',
      value: w2at64?.watch_events_per_acq,
      detail: 'about 1: one waiter woken per release; about 64 would be a herd',
    },
    {
      name: 'w2c.per_s / w2.per_s at 64',
      value: ratio(w2cAt64?.per_s, w2at64?.per_s),
      detail: `${w2cAt64?.per_s ?? '?'} / ${w2at64?.per_s ?? '?'} (64 callers in one process with coalesce vs 64 sessions)`,
    },
    {
      name: 'mem.heap_end_bytes / heap_start_bytes',
      value: ratio(mem?.heap_end_bytes, mem?.heap_start_bytes),
      detail: `${mem?.heap_end_bytes ?? '?'} / ${mem?.heap_start_bytes ?? '?'} (heap after GC at 100% vs 10% of the cycles)`,
    },
    {
      name: 'nest.p50_us / w1.p50_us',
      value: ratio(nest?.p50_us, w1?.p50_us),
      detail: `${nest?.p50_us ?? '?'} / ${w1?.p50_us ?? '?'} (@DistributedLock on a service method vs a bare acquire + release; no target)`,
    },
    {
      name: 'idle.p50_us / floor.p50_us',
      value: ratio(idle?.p50_us, floor?.p50_us),
      detail: `${idle?.p50_us ?? '?'} / ${floor?.p50_us ?? '?'} (the raw protocol's cycle after 1 ms idle, as in a request, vs back to back; no target)`,
    },
    {
      name: 'http.overhead_p50_us / w1.p50_us',
      value: ratio(http?.overhead_p50_us, w1?.p50_us),
      detail: `${http?.overhead_p50_us ?? '?'} / ${w1?.p50_us ?? '?'} (what the lock adds to a request vs a bare acquire + release)`,
    },
    {
      name: 'tls w1.p50_us / plaintext w1.p50_us',
      value: tlsW1?.p50_ratio,
      detail: `${tlsW1?.tls_p50_us ?? '?'} / ${tlsW1?.plain_p50_us ?? '?'} (TLS vs plaintext on one server, taking turns; target at most 1.2)`,
    },
    {
      name: 'tls w2.per_s at 64 / plaintext',
      value: tlsW2?.per_s_ratio,
      detail: `${tlsW2?.tls_per_s ?? '?'} / ${tlsW2?.plain_per_s ?? '?'} (throughput of 64 sessions on one lock over TLS vs plaintext)`,
    },
    {
      name: 'leader clean p50_ms / TTL lease bound',
      value: ratio(clean?.p50_ms, clean?.ttl_lease_bound_ms),
      detail: `${clean?.p50_ms ?? '?'} / ${clean?.ttl_lease_bound_ms ?? '?'} (a clean handover vs a TTL lease's next poll, TTL / 3)`,
    },
    {
      name: 'leader crash max_ms / session timeout',
      value: crash?.max_ratio,
      detail: `${crash?.max_ms ?? '?'} / ${crash?.session_timeout_ms ?? '?'} (the server expires a silent session after its timeout, checked every tickTime)`,
    },
    {
      name: 'leader requests per skipped tick',
      value: skip?.requests_per_op,
      detail: 'must be 0: who holds the job is known from the watch, not asked per tick',
    },
  ];
}

/**
 * The leader workload against a TTL lease of the same settings, computed, not built (TTL = the
 * session timeout; the holder renews and the others poll every TTL / 3). Undefined without it.
 */
export function leaderComparison(lines: BenchLine[]): string | undefined {
  const clean = find(lines, (l): l is LeaderCleanLine => l.workload === 'leader' && l.point === 'clean');
  const crash = find(lines, (l): l is LeaderCrashLine => l.workload === 'leader' && l.point === 'crash');
  const skip = find(lines, (l): l is LeaderSkipLine => l.workload === 'leader' && l.point === 'skip');
  if (!clean && !crash && !skip) return undefined;
  const ttl = (clean ?? crash)?.session_timeout_ms;
  const ms = (value: number) => `${fixed(value, value < 100 ? 1 : 0)} ms`;
  const out = [
    ttl === undefined
      ? 'Leader handover:'
      : `Leader handover against a TTL lease of the same settings (computed, not built: TTL = the session timeout, ` +
        `${int(ttl)} ms; the holder renews it and the others poll every TTL / 3 = ${ms(ttl / 3)}):`,
  ];
  if (clean) {
    out.push(
      `  clean shutdown: nestjs-zk-lock p50 ${ms(clean.p50_ms)}, p99 ${ms(clean.p99_ms)} (measured, ${clean.handovers} handovers: ` +
        `one notification); a TTL lease deleted at shutdown: up to ${ms(clean.ttl_lease_bound_ms)} (the next poll; half that on average)`,
    );
  }
  if (crash) {
    out.push(
      `  crash:          nestjs-zk-lock p50 ${ms(crash.p50_ms)} (${fixed(crash.p50_ratio, 2)} x the session timeout), ` +
        `max ${ms(crash.max_ms)} (${fixed(crash.max_ratio, 2)} x; measured, ${crash.handovers} handovers: the server ` +
        `expires a silent session T to T + tickTime after its last packet); a TTL lease: up to ${ms(crash.ttl_lease_bound_ms)} ` +
        '(TTL + one poll)',
    );
  }
  if (skip) {
    out.push(
      `  skipped tick:   nestjs-zk-lock ${skip.requests_per_op} requests per skipped tick (measured, ${int(skip.skipped_ticks)} ticks, ` +
        'pings left out)',
    );
  }
  return out.join('\n');
}

export function ratiosText(list: Ratio[]): string {
  const width = Math.max(...list.map((r) => r.name.length));
  return list
    .map((r) => `${r.name.padEnd(width)}  ${r.value === undefined ? 'n/a' : String(r.value)}  ${r.detail}`)
    .join('\n');
}
