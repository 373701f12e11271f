// The operations dashboard: records per type per day, active grants, patients per
// hospital, how far each read model trails the log, and — from the server's own
// Prometheus metrics, scraped every 5 s — API rate, error rate and latency and
// how long anchoring takes. Everything refreshes live.
import { useMemo, useRef, useState } from 'react';
import { Card, Col, Row, Space, Statistic, Table, Typography } from 'antd';
import { useQuery } from '@tanstack/react-query';

import { api, unwrap } from '../api/client';
import { TitledChart, type ChartOption } from '../components/Chart';
import { ProblemAlert } from '../components/ProblemAlert';
import { useI18n } from '../i18n';
import { between, parse, type Point, type Sample } from '../operations/metrics';

const LIVE = 5_000;
/** Points kept on the live curves: ten minutes at one scrape per 5 s. */
const WINDOW = 120;

interface Timed {
  at: number;
  point: Point;
}

/** Scrapes `/metrics` every 5 s; each scrape after the first adds the point since the one before. */
function useLiveMetrics() {
  const [points, setPoints] = useState<Timed[]>([]);
  const previous = useRef<{ at: number; samples: Sample[] } | null>(null);
  const scrape = useQuery({
    queryKey: ['metrics'],
    queryFn: async () => {
      const response = await fetch('/metrics');
      if (!response.ok) throw new Error(`/metrics: ${response.status} ${response.statusText}`);
      const samples = parse(await response.text());
      const at = Date.now();
      const before = previous.current;
      previous.current = { at, samples };
      if (before) {
        const point = between(before.samples, samples, (at - before.at) / 1000);
        setPoints((kept) => [...kept.slice(1 - WINDOW), { at, point }]);
      }
      return at;
    },
    refetchInterval: LIVE,
  });
  return { points, error: scrape.error };
}

export default function Operations() {
  const { t, language } = useI18n();
  const clock = useMemo(() => new Intl.DateTimeFormat(language === 'zh' ? 'zh-CN' : 'en-GB', { timeStyle: 'medium' }), [language]);
  const dashboard = useQuery({
    queryKey: ['dashboard'],
    queryFn: () => unwrap(api.GET('/v1/read/dashboard', { params: { query: { days: 30 } } })),
    refetchInterval: LIVE,
  });
  const lags = useQuery({ queryKey: ['projections'], queryFn: () => unwrap(api.GET('/v1/projections')), refetchInterval: LIVE });
  const live = useLiveMetrics();

  const traffic = useMemo<ChartOption>(() => {
    const points = live.points;
    return {
      tooltip: { trigger: 'axis' },
      legend: { data: [t('requestsPerSecond'), t('errorRate')] },
      xAxis: { type: 'category', data: points.map((p) => clock.format(p.at)) },
      yAxis: [
        { type: 'value', name: t('requestsPerSecond') },
        { type: 'value', name: '%', max: 100 },
      ],
      series: [
        { name: t('requestsPerSecond'), type: 'line', data: points.map((p) => Number(p.point.requestsPerSecond.toFixed(2))) },
        { name: t('errorRate'), type: 'line', yAxisIndex: 1, data: points.map((p) => (p.point.errorRate === null ? null : Number((p.point.errorRate * 100).toFixed(2)))) },
      ],
    };
  }, [live.points, t, clock]);

  const latency = useMemo<ChartOption>(() => {
    const points = live.points;
    const ms = (value: number | null) => (value === null ? null : Number((value * 1000).toFixed(1)));
    return {
      tooltip: { trigger: 'axis' },
      legend: { data: ['p50', 'p95'] },
      xAxis: { type: 'category', data: points.map((p) => clock.format(p.at)) },
      yAxis: { type: 'value', name: 'ms' },
      series: [
        { name: 'p50', type: 'line', data: points.map((p) => ms(p.point.p50)) },
        { name: 'p95', type: 'line', data: points.map((p) => ms(p.point.p95)) },
      ],
    };
  }, [live.points, clock]);

  const anchoring = useMemo<ChartOption>(() => {
    const points = live.points;
    const ledgers = [...new Set(points.flatMap((p) => Object.keys(p.point.anchorLag)))].sort();
    return {
      tooltip: { trigger: 'axis' },
      legend: { data: ledgers },
      xAxis: { type: 'category', data: points.map((p) => clock.format(p.at)) },
      yAxis: { type: 'value', name: 's' },
      series: ledgers.map((ledger) => ({ name: ledger, type: 'line', data: points.map((p) => p.point.anchorLag[ledger] ?? null) })),
    };
  }, [live.points, clock]);
  const confirmation = live.points.at(-1)?.point.confirmationP95 ?? null;
  const latestP95 = [...live.points].reverse().find((p) => p.point.p95 !== null)?.point.p95 ?? null;

  const records = useMemo<ChartOption>(() => {
    const rows = dashboard.data?.records_per_type_per_day ?? [];
    const days = [...new Set(rows.map(([, day]) => day))].sort();
    const types = [...new Set(rows.map(([type]) => type))].sort();
    return {
      tooltip: { trigger: 'axis' },
      legend: { data: types },
      xAxis: { type: 'category', data: days },
      yAxis: { type: 'value', minInterval: 1 },
      series: types.map((type) => ({
        name: type,
        type: 'bar',
        stack: 'records',
        data: days.map((day) => rows.find(([kind, on]) => kind === type && on === day)?.[2] ?? 0),
      })),
    };
  }, [dashboard.data]);

  const lag = useMemo<ChartOption>(() => {
    const rows = lags.data ?? [];
    return {
      tooltip: { trigger: 'axis' },
      xAxis: { type: 'category', data: rows.map((row) => row.projection), axisLabel: { rotate: 30 } },
      yAxis: { type: 'value', name: t('commitsBehind'), minInterval: 1 },
      series: [{ type: 'bar', data: rows.map((row) => row.behind_commits) }],
    };
  }, [lags.data, t]);

  return (
    <Card title={<Typography.Title level={2} style={{ fontSize: 18, margin: 0 }}>{t('operations')}</Typography.Title>}>
      <ProblemAlert error={dashboard.error ?? lags.error ?? live.error} />
      <Row gutter={[24, 24]}>
        <Col xs={24} md={8}>
          <Statistic title={t('activeGrants')} value={dashboard.data?.active_grants ?? 0} loading={dashboard.isLoading} />
        </Col>
        <Col xs={24} md={8}>
          <Statistic title={t('logHead')} value={lags.data?.[0]?.head ?? 0} loading={lags.isLoading} />
        </Col>
        <Col xs={24} md={8}>
          <Statistic
            title={t('slowestReadModel')}
            value={Math.max(0, ...(lags.data ?? []).map((row) => row.behind_seconds))}
            precision={1}
            suffix="s"
            loading={lags.isLoading}
          />
        </Col>
        <Col xs={24} lg={14}>
          <TitledChart title={t('recordsPerDay')} option={records} />
        </Col>
        <Col xs={24} lg={10}>
          <TitledChart title={t('readModelLag')} option={lag} />
        </Col>
        <Col xs={24} lg={12}>
          <TitledChart title={t('apiTraffic')} option={traffic} />
        </Col>
        <Col xs={24} lg={12}>
          <TitledChart title={t('apiLatency')} option={latency} />
        </Col>
        <Col xs={24} lg={16}>
          <TitledChart title={t('anchoringLag')} option={anchoring} />
        </Col>
        <Col xs={24} lg={8}>
          <Space direction="vertical" size="large">
            <Statistic
              title={t('confirmationP95')}
              value={confirmation === null ? '—' : confirmation.toFixed(2)}
              suffix={confirmation === null ? undefined : 's'}
            />
            <Statistic title={t('latestP95')} value={latestP95 === null ? '—' : (latestP95 * 1000).toFixed(1)} suffix={latestP95 === null ? undefined : 'ms'} />
          </Space>
        </Col>
        <Col span={24}>
          <Typography.Title level={3} style={{ fontSize: 16 }}>
            {t('patientsPerHospital')}
          </Typography.Title>
          <Table
            size="small"
            rowKey={([hospital]) => hospital}
            pagination={false}
            dataSource={dashboard.data?.patients_per_hospital ?? []}
            columns={[
              { title: t('hospital'), render: (_, [hospital]) => hospital },
              { title: t('activePatients'), render: (_, [, active]) => active },
              { title: t('erasedPatients'), render: (_, [, , erased]) => erased },
            ]}
          />
        </Col>
      </Row>
    </Card>
  );
}
