// The server's Prometheus exposition (`/metrics`), read by the operations
// dashboard: two scrapes a few seconds apart become a point on each live curve —
// request rate, error rate, latency quantiles, anchoring lag and confirmation time.

/** One sample line: a metric name, its labels and its value. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

function unescape(value: string): string {
  return value.replace(/\\(["\\n])/g, (_, c: string) => (c === 'n' ? '\n' : c));
}

function number(text: string): number {
  if (text === '+Inf') return Infinity;
  if (text === '-Inf') return -Infinity;
  return Number(text);
}

/** The samples of a text exposition (comments and malformed lines are skipped). */
export function parse(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const match = LINE.exec(line);
    if (!match) continue;
    const labels: Record<string, string> = {};
    const [, name = '', labelText = '', valueText = ''] = match;
    for (const [, key = '', value = ''] of labelText.matchAll(LABEL)) labels[key] = unescape(value);
    const value = number(valueText);
    if (!Number.isNaN(value)) samples.push({ name, labels, value });
  }
  return samples;
}

/** The `q` quantile of a histogram given as cumulative `[upper bound, count]` buckets, interpolated as Prometheus does. */
export function quantile(q: number, buckets: [number, number][]): number | null {
  const sorted = [...buckets].sort((a, b) => a[0] - b[0]);
  const total = sorted.at(-1)?.[1] ?? 0;
  if (total <= 0) return null;
  const rank = q * total;
  let lowerBound = 0;
  let lowerCount = 0;
  for (const [bound, count] of sorted) {
    if (count >= rank) {
      if (bound === Infinity) return lowerBound;
      return lowerBound + ((bound - lowerBound) * (rank - lowerCount)) / Math.max(count - lowerCount, Number.EPSILON);
    }
    lowerBound = bound;
    lowerCount = count;
  }
  return lowerBound;
}

/** A histogram's buckets summed over every series passing `keep`: cumulative counts by upper bound. */
function buckets(samples: Sample[], name: string, keep: (labels: Record<string, string>) => boolean): Map<number, number> {
  const byBound = new Map<number, number>();
  for (const sample of samples) {
    if (sample.name !== `${name}_bucket` || !keep(sample.labels)) continue;
    const bound = number(sample.labels.le ?? '+Inf');
    byBound.set(bound, (byBound.get(bound) ?? 0) + sample.value);
  }
  return byBound;
}

function sum(samples: Sample[], name: string, keep: (labels: Record<string, string>) => boolean): number {
  return samples.filter((s) => s.name === name && keep(s.labels)).reduce((total, s) => total + s.value, 0);
}

/** One point of the live curves: what happened between two scrapes. */
export interface Point {
  /** Requests per second (the dashboard's own scrapes left out). */
  requestsPerSecond: number;
  /** Share of requests answered 5xx, 0–1 (null without requests). */
  errorRate: number | null;
  /** Median and 95th-percentile latency in seconds (null without requests). */
  p50: number | null;
  p95: number | null;
  /** How long the oldest unanchored commit has waited, per ledger, at the later scrape. */
  anchorLag: Record<string, number>;
  /** 95th-percentile time for a ledger to confirm a tree head, since the server started (null before the first). */
  confirmationP95: number | null;
}

const counted = (labels: Record<string, string>) => labels.route !== '/metrics';

/** The point made of scrapes `before` and `after`, `seconds` apart (counters that went backwards mean a restart: counted from zero). */
export function between(before: Sample[], after: Sample[], seconds: number): Point {
  const delta = (a: number, b: number) => (b >= a ? b - a : b);
  const requests = delta(sum(before, 'http_requests_total', counted), sum(after, 'http_requests_total', counted));
  const errors = delta(
    sum(before, 'http_requests_total', (l) => counted(l) && (l.status ?? '').startsWith('5')),
    sum(after, 'http_requests_total', (l) => counted(l) && (l.status ?? '').startsWith('5')),
  );
  const earlier = buckets(before, 'http_request_duration_seconds', counted);
  const interval: [number, number][] = [...buckets(after, 'http_request_duration_seconds', counted)].map(([bound, count]) => [bound, delta(earlier.get(bound) ?? 0, count)]);
  const anchorLag: Record<string, number> = {};
  for (const sample of after) if (sample.name === 'emr_anchor_lag_seconds') anchorLag[sample.labels.ledger ?? '?'] = sample.value;
  return {
    requestsPerSecond: seconds > 0 ? requests / seconds : 0,
    errorRate: requests > 0 ? errors / requests : null,
    p50: quantile(0.5, interval),
    p95: quantile(0.95, interval),
    anchorLag,
    confirmationP95: quantile(0.95, [...buckets(after, 'emr_ledger_confirmation_seconds', () => true)]),
  };
}
