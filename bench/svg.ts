/**
 * The benchmark's picture as hand-written SVG (pure, no dependencies): w2's acquisitions/s and
 * wait p99 against clients, w1's cycle p50 beside the floor's, and the leader's handovers beside
 * a TTL lease's computed bounds.
 */
import type { LeaderCleanLine, LeaderCrashLine } from './leader-lines.js';
import type { BenchLine, CycleLine, W2Line } from './workloads.js';

const WIDTH = 1330;
const HEIGHT = 370;
const PANEL = { width: 260, height: 220, top: 72 };
const LEFTS = [60, 390, 720, 1050];
const COLORS = {
  line: '#1f6feb',
  p99: '#d1242f',
  floor: '#8c959f',
  w1: '#1f6feb',
  ttl: '#bf8700',
  grid: '#d0d7de',
  text: '#24292f',
};

const escape = (raw: string) => raw.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const num = (value: number) => (Math.round(value * 10) / 10).toString();

function text(x: number, y: number, content: string, attrs = ''): string {
  return `<text x="${num(x)}" y="${num(y)}" ${attrs}>${escape(content)}</text>`;
}

/** A round step for about `count` ticks from 0 to `max`. */
function niceStep(max: number, count: number): number {
  const raw = max / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const scaled = raw / power;
  return (scaled <= 1 ? 1 : scaled <= 2 ? 2 : scaled <= 5 ? 5 : 10) * power;
}

const compact = (value: number) =>
  value >= 1_000_000 ? `${num(value / 1_000_000)}M` : value >= 1_000 ? `${num(value / 1_000)}k` : num(value);

interface Series {
  points: { label: string; value: number }[];
  color: string;
  /** Log scale (for values spanning decades), else linear from 0. */
  log: boolean;
  unit: string;
}

function linePanel(left: number, title: string, series: Series, xTitle: string, footnote = ''): string {
  const { width, height, top } = PANEL;
  const bottom = top + height;
  const parts: string[] = [text(left, top - 24, title, 'font-weight="600"')];
  const values = series.points.map((p) => p.value).filter((v) => Number.isFinite(v) && v > 0);
  if (values.length === 0) return [...parts, text(left, top + 20, 'no data')].join('\n');
  let y: (value: number) => number;
  const ticks: number[] = [];
  if (series.log) {
    const lo = Math.floor(Math.log10(Math.min(...values)));
    const hi = Math.max(lo + 1, Math.ceil(Math.log10(Math.max(...values))));
    y = (value) => bottom - ((Math.log10(value) - lo) / (hi - lo)) * height;
    for (let e = lo; e <= hi; e++) ticks.push(10 ** e);
  } else {
    const step = niceStep(Math.max(...values) * 1.1, 5);
    const max = Math.ceil((Math.max(...values) * 1.1) / step) * step;
    y = (value) => bottom - (value / max) * height;
    for (let t = 0; t <= max + step / 2; t += step) ticks.push(t);
  }
  for (const tick of ticks) {
    parts.push(
      `<line x1="${left}" y1="${num(y(tick))}" x2="${left + width}" y2="${num(y(tick))}" stroke="${COLORS.grid}" stroke-width="1"/>`,
      text(left - 6, y(tick) + 4, compact(tick), 'text-anchor="end"'),
    );
  }
  const n = series.points.length;
  const x = (i: number) => left + (n === 1 ? width / 2 : 20 + (i * (width - 40)) / (n - 1));
  const coords = series.points
    .map((p, i) => ({ ...p, x: x(i) }))
    .filter((p) => Number.isFinite(p.value) && p.value > 0)
    .map((p) => ({ ...p, y: y(p.value) }));
  parts.push(
    `<polyline fill="none" stroke="${series.color}" stroke-width="2" points="${coords.map((c) => `${num(c.x)},${num(c.y)}`).join(' ')}"/>`,
  );
  for (const c of coords) {
    parts.push(
      `<circle cx="${num(c.x)}" cy="${num(c.y)}" r="3.5" fill="${series.color}"/>`,
      text(
        c.x,
        c.y - 8,
        c.value >= 100 ? String(Math.round(c.value)) : num(c.value),
        `text-anchor="middle" fill="${series.color}"`,
      ),
    );
  }
  series.points.forEach((p, i) => parts.push(text(x(i), bottom + 18, p.label, 'text-anchor="middle"')));
  parts.push(
    `<line x1="${left}" y1="${bottom}" x2="${left + width}" y2="${bottom}" stroke="${COLORS.text}" stroke-width="1"/>`,
    text(left + width / 2, bottom + 38, xTitle, 'text-anchor="middle"'),
    text(left, top - 8, series.unit + (series.log ? ' (log scale)' : ''), 'fill="#57606a"'),
  );
  if (footnote) parts.push(text(left + width / 2, bottom + 56, footnote, 'text-anchor="middle" fill="#57606a"'));
  return parts.join('\n');
}

function barPanel(
  left: number,
  title: string,
  bars: { label: string; value: number; color: string }[],
  note: string,
): string {
  const { width, height, top } = PANEL;
  const bottom = top + height;
  const parts: string[] = [
    text(left, top - 24, title, 'font-weight="600"'),
    text(left, top - 8, 'µs per acquire + release', 'fill="#57606a"'),
  ];
  const values = bars.map((b) => b.value).filter((v) => Number.isFinite(v));
  if (values.length === 0) return [...parts, text(left, top + 20, 'no data')].join('\n');
  const step = niceStep(Math.max(...values) * 1.15, 5);
  const max = Math.ceil((Math.max(...values) * 1.15) / step) * step;
  const y = (value: number) => bottom - (value / max) * height;
  for (let t = 0; t <= max + step / 2; t += step) {
    parts.push(
      `<line x1="${left}" y1="${num(y(t))}" x2="${left + width}" y2="${num(y(t))}" stroke="${COLORS.grid}" stroke-width="1"/>`,
      text(left - 6, y(t) + 4, compact(t), 'text-anchor="end"'),
    );
  }
  const slot = width / bars.length;
  bars.forEach((bar, i) => {
    const x = left + i * slot + slot * 0.2;
    const w = slot * 0.6;
    if (Number.isFinite(bar.value)) {
      parts.push(
        `<rect x="${num(x)}" y="${num(y(bar.value))}" width="${num(w)}" height="${num(bottom - y(bar.value))}" fill="${bar.color}"/>`,
        text(x + w / 2, y(bar.value) - 6, `${Math.round(bar.value)}`, 'text-anchor="middle"'),
      );
    }
    parts.push(text(x + w / 2, bottom + 18, bar.label, 'text-anchor="middle"'));
  });
  parts.push(
    `<line x1="${left}" y1="${bottom}" x2="${left + width}" y2="${bottom}" stroke="${COLORS.text}" stroke-width="1"/>`,
    text(left + width / 2, bottom + 38, note, 'text-anchor="middle"'),
  );
  return parts.join('\n');
}

/**
 * The leader's handovers (measured p50, clean and after a crash) beside the bounds of a TTL lease
 * with the same settings (computed), on a log scale of ms.
 */
function leaderPanel(left: number, clean: LeaderCleanLine | undefined, crash: LeaderCrashLine | undefined): string {
  const { width, height, top } = PANEL;
  const bottom = top + height;
  const parts: string[] = [
    text(left, top - 24, 'Leader handover vs a TTL lease', 'font-weight="600"'),
    text(left, top - 8, 'ms (log scale); TTL lease: computed bound', 'fill="#57606a"'),
  ];
  const bars = [
    { label: 'clean p50', value: clean?.p50_ms, color: COLORS.line },
    { label: 'TTL: clean', value: clean?.ttl_lease_bound_ms, color: COLORS.ttl },
    { label: 'crash p50', value: crash?.p50_ms, color: COLORS.line },
    { label: 'TTL: crash', value: crash?.ttl_lease_bound_ms, color: COLORS.ttl },
  ];
  const values = bars.map((b) => b.value).filter((v): v is number => v !== undefined && Number.isFinite(v) && v > 0);
  if (values.length === 0) return [...parts, text(left, top + 20, 'no data')].join('\n');
  const lo = Math.min(0, Math.floor(Math.log10(Math.min(...values))));
  const hi = Math.max(lo + 1, Math.ceil(Math.log10(Math.max(...values))));
  const y = (value: number) => bottom - ((Math.log10(value) - lo) / (hi - lo)) * height;
  for (let e = lo; e <= hi; e++) {
    parts.push(
      `<line x1="${left}" y1="${num(y(10 ** e))}" x2="${left + width}" y2="${num(y(10 ** e))}" stroke="${COLORS.grid}" stroke-width="1"/>`,
      text(left - 6, y(10 ** e) + 4, compact(10 ** e), 'text-anchor="end"'),
    );
  }
  const slot = width / bars.length;
  bars.forEach((bar, i) => {
    const x = left + i * slot + slot * 0.2;
    const w = slot * 0.6;
    if (bar.value !== undefined && Number.isFinite(bar.value) && bar.value > 0) {
      parts.push(
        `<rect x="${num(x)}" y="${num(y(bar.value))}" width="${num(w)}" height="${num(bottom - y(bar.value))}" fill="${bar.color}"/>`,
        text(
          x + w / 2,
          y(bar.value) - 6,
          bar.value >= 100 ? String(Math.round(bar.value)) : num(bar.value),
          'text-anchor="middle"',
        ),
      );
    }
    parts.push(text(x + w / 2, bottom + 18, bar.label, 'text-anchor="middle"'));
  });
  const timeout = (clean ?? crash)?.session_timeout_ms;
  parts.push(
    `<line x1="${left}" y1="${bottom}" x2="${left + width}" y2="${bottom}" stroke="${COLORS.text}" stroke-width="1"/>`,
    text(
      left + width / 2,
      bottom + 38,
      timeout === undefined ? '' : `session timeout = TTL = ${num(timeout / 1000)} s, polled every TTL / 3`,
      'text-anchor="middle"',
    ),
  );
  return parts.join('\n');
}

/** The chart of one run's lines, as an SVG document. */
export function renderChart(lines: BenchLine[], subtitle: string): string {
  const w2 = lines.filter((l): l is W2Line => l.workload === 'w2').toSorted((a, b) => a.clients - b.clients);
  const w2c = lines.find((l): l is W2Line => l.workload === 'w2c' && l.clients === 64);
  const floor = lines.find((l): l is CycleLine => l.workload === 'floor');
  const w1 = lines.find((l): l is CycleLine => l.workload === 'w1');
  const clean = lines.find((l): l is LeaderCleanLine => l.workload === 'leader' && l.point === 'clean');
  const crash = lines.find((l): l is LeaderCrashLine => l.workload === 'leader' && l.point === 'crash');
  const ratio = floor && w1 ? ` w1 / floor = ${(w1.p50_us / floor.p50_us).toFixed(2)}` : '';
  const body = [
    linePanel(
      LEFTS[0],
      'w2: acquisitions/s, one lock',
      {
        points: w2.map((l) => ({ label: String(l.clients), value: l.per_s })),
        color: COLORS.line,
        log: false,
        unit: 'acquisitions/s',
      },
      'clients (sessions)',
      w2c ? `w2c (64 callers, one session, coalesce): ${Math.round(w2c.per_s)}/s` : '',
    ),
    linePanel(
      LEFTS[1],
      'w2: wait p99, one lock',
      {
        points: w2.map((l) => ({ label: String(l.clients), value: l.wait_p99_us / 1_000 })),
        color: COLORS.p99,
        log: true,
        unit: 'ms',
      },
      'clients (sessions)',
    ),
    barPanel(
      LEFTS[2],
      'Uncontended cycle, p50',
      [
        { label: 'floor (raw client)', value: floor?.p50_us ?? Number.NaN, color: COLORS.floor },
        { label: 'w1 (LockService)', value: w1?.p50_us ?? Number.NaN, color: COLORS.w1 },
      ],
      ratio.trim(),
    ),
    leaderPanel(LEFTS[3], clean, crash),
  ].join('\n');
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="-apple-system, 'Segoe UI', Helvetica, Arial, sans-serif" font-size="12" fill="${COLORS.text}">`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="#ffffff"/>`,
    text(WIDTH / 2, 22, `nestjs-zk-lock benchmark: ${subtitle}`, 'text-anchor="middle" font-size="13" fill="#57606a"'),
    body,
    '</svg>',
    '',
  ].join('\n');
}
