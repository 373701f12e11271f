import { describe, expect, it } from 'vitest';

import { between, parse, quantile } from './metrics';

const scrape = (requests: number, errors: number, fast: number, slow: number) => `
# HELP http_requests_total HTTP requests by method, route and status
# TYPE http_requests_total counter
http_requests_total{method="GET",route="/v1/records/{record_id}",status="200"} ${requests - errors}
http_requests_total{method="POST",route="/v1/records",status="503"} ${errors}
http_requests_total{method="GET",route="/metrics",status="200"} 999
http_request_duration_seconds_bucket{method="GET",route="/v1/records/{record_id}",le="0.01"} ${fast}
http_request_duration_seconds_bucket{method="GET",route="/v1/records/{record_id}",le="0.1"} ${fast + slow}
http_request_duration_seconds_bucket{method="GET",route="/v1/records/{record_id}",le="+Inf"} ${fast + slow}
emr_anchor_lag_seconds{ledger="evm:31337"} 1.5
emr_ledger_confirmation_seconds_bucket{ledger="evm:31337",le="1"} 4
emr_ledger_confirmation_seconds_bucket{ledger="evm:31337",le="+Inf"} 4
`;

describe('the Prometheus exposition', () => {
  it('parses names, labels (with escapes) and values, skipping comments and junk', () => {
    const samples = parse('# TYPE x counter\nx{a="q\\"uote",b="2"} 3\nnot a sample line at all\ny 1.5e3 1700000000\n');
    expect(samples).toEqual([
      { name: 'x', labels: { a: 'q"uote', b: '2' }, value: 3 },
      { name: 'y', labels: {}, value: 1500 },
    ]);
  });

  it('interpolates quantiles inside the bucket that holds them, and has none of an empty histogram', () => {
    expect(quantile(0.5, [[0.1, 50], [1, 100], [Infinity, 100]])).toBeCloseTo(0.1);
    expect(quantile(0.75, [[0.1, 50], [1, 100], [Infinity, 100]])).toBeCloseTo(0.55);
    expect(quantile(0.5, [[1, 0], [Infinity, 0]])).toBeNull();
  });
});

describe('a point between two scrapes', () => {
  it('gives the rate, the 5xx share and the latency of the requests made in between, leaving out the scrapes', () => {
    const point = between(parse(scrape(100, 0, 100, 0)), parse(scrape(150, 5, 120, 30)), 5);
    expect(point.requestsPerSecond).toBeCloseTo(10);
    expect(point.errorRate).toBeCloseTo(0.1);
    expect(point.p50).toBeCloseTo(0.01 + (0.09 * (25 - 20)) / 30);
    expect(point.p95).toBeGreaterThan(0.09);
    expect(point.anchorLag).toEqual({ 'evm:31337': 1.5 });
    expect(point.confirmationP95).toBeCloseTo(0.95);
  });

  it('after a restart (counters went down) counts from zero instead of going negative', () => {
    const point = between(parse(scrape(500, 0, 500, 0)), parse(scrape(10, 0, 10, 0)), 5);
    expect(point.requestsPerSecond).toBeCloseTo(2);
    expect(point.errorRate).toBe(0);
  });
});
