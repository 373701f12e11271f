// The operations dashboard: records per type per day, active grants, patients per
// hospital and how far each read model trails the log — refreshed every 5 s.
import { useMemo } from 'react';
import { Card, Col, Row, Statistic, Table, Typography } from 'antd';
import { useQuery } from '@tanstack/react-query';

import { api, unwrap } from '../api/client';
import { EChart, type ChartOption } from '../components/Chart';
import { ProblemAlert } from '../components/ProblemAlert';
import { useI18n } from '../i18n';

const LIVE = 5_000;

export default function Operations() {
  const { t } = useI18n();
  const dashboard = useQuery({
    queryKey: ['dashboard'],
    queryFn: () => unwrap(api.GET('/v1/read/dashboard', { params: { query: { days: 30 } } })),
    refetchInterval: LIVE,
  });
  const lags = useQuery({ queryKey: ['projections'], queryFn: () => unwrap(api.GET('/v1/projections')), refetchInterval: LIVE });

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
      <ProblemAlert error={dashboard.error ?? lags.error} />
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
          <Typography.Title level={3} style={{ fontSize: 16 }}>
            {t('recordsPerDay')}
          </Typography.Title>
          <EChart option={records} label={t('recordsPerDay')} />
        </Col>
        <Col xs={24} lg={10}>
          <Typography.Title level={3} style={{ fontSize: 16 }}>
            {t('readModelLag')}
          </Typography.Title>
          <EChart option={lag} label={t('readModelLag')} />
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
