// Federated learning as coordinators and auditors follow it: each task's status
// and privacy budget, and for a chosen task its rounds as curves (held-out loss,
// accuracy, AUC), ε spent per round against the budget, and each hospital's update.
import { useMemo, useState } from 'react';
import { Button, Card, Col, Empty, Progress, Row, Table, Tag, Typography } from 'antd';
import { useQuery } from '@tanstack/react-query';

import { api, unwrap, type Schemas } from '../api/client';
import { EChart, type ChartOption } from '../components/Chart';
import { ProblemAlert } from '../components/ProblemAlert';
import { GOOD } from '../components/tone';
import { useI18n } from '../i18n';

type Task = Schemas['FederatedTaskRow'];

const LIVE = 5_000;

function Rounds({ task }: { task: Task }) {
  const { t, date } = useI18n();
  const rounds = useQuery({
    queryKey: ['federated-rounds', task.task_id],
    queryFn: () => unwrap(api.GET('/v1/read/federated-tasks/{task_id}/rounds', { params: { path: { task_id: task.task_id } } })),
    refetchInterval: LIVE,
  });
  const aggregated = useMemo(() => (rounds.data?.rounds ?? []).filter((round) => round.status === 'aggregated'), [rounds.data]);
  const metrics = useMemo<ChartOption>(
    () => ({
      tooltip: { trigger: 'axis' },
      legend: { data: [t('loss'), t('accuracy'), 'AUC'] },
      xAxis: { type: 'category', name: t('round'), data: aggregated.map((round) => round.round) },
      yAxis: { type: 'value' },
      series: [
        { name: t('loss'), type: 'line', data: aggregated.map((round) => round.loss ?? null) },
        { name: t('accuracy'), type: 'line', data: aggregated.map((round) => round.accuracy ?? null) },
        { name: 'AUC', type: 'line', data: aggregated.map((round) => round.auc ?? null) },
      ],
    }),
    [aggregated, t],
  );
  const epsilon = useMemo<ChartOption>(
    () => ({
      tooltip: { trigger: 'axis' },
      xAxis: { type: 'category', name: t('round'), data: (rounds.data?.rounds ?? []).map((round) => round.round) },
      yAxis: { type: 'value', name: 'ε', max: task.epsilon_budget ?? undefined },
      series: [{ name: 'ε', type: 'line', step: 'end', data: (rounds.data?.rounds ?? []).map((round) => round.epsilon ?? null) }],
    }),
    [rounds.data, task.epsilon_budget, t],
  );
  if (rounds.error) return <ProblemAlert error={rounds.error} />;
  return (
    <Row gutter={[24, 24]}>
      <Col xs={24} lg={12}>
        <Typography.Title level={3} style={{ fontSize: 16 }}>
          {t('heldOutMetrics')}
        </Typography.Title>
        {aggregated.length === 0 ? <Empty description={t('noRoundsYet')} /> : <EChart option={metrics} label={t('heldOutMetrics')} />}
      </Col>
      <Col xs={24} lg={12}>
        <Typography.Title level={3} style={{ fontSize: 16 }}>
          {t('epsilonSpent')}
        </Typography.Title>
        {task.epsilon_budget == null ? (
          <Typography.Text>{t('notPrivate')}</Typography.Text>
        ) : (
          <>
            <Progress percent={Math.round(((task.epsilon_spent ?? 0) / task.epsilon_budget) * 100)} format={() => `${(task.epsilon_spent ?? 0).toFixed(2)} / ${task.epsilon_budget}`} />
            <EChart option={epsilon} label={t('epsilonSpent')} height={220} />
          </>
        )}
      </Col>
      <Col span={24}>
        <Table
          size="small"
          rowKey={(update) => `${update.round}:${update.hospital}`}
          loading={rounds.isLoading}
          dataSource={rounds.data?.updates ?? []}
          locale={{ emptyText: <Empty description={t('noUpdates')} /> }}
          pagination={{ pageSize: 10 }}
          columns={[
            { title: t('round'), dataIndex: 'round' },
            { title: t('hospital'), dataIndex: 'hospital' },
            { title: t('samples'), dataIndex: 'samples' },
            { title: t('loss'), render: (_, update) => update.loss?.toFixed(4) ?? '—' },
            { title: t('accuracy'), render: (_, update) => update.accuracy?.toFixed(3) ?? '—' },
            { title: 'AUC', render: (_, update) => update.auc?.toFixed(3) ?? '—' },
            { title: t('when'), render: (_, update) => date(update.submitted_at) },
          ]}
        />
      </Col>
    </Row>
  );
}

export default function Federated() {
  const { t, date } = useI18n();
  const [chosen, setChosen] = useState<string | null>(null);
  const tasks = useQuery({
    queryKey: ['federated-tasks'],
    queryFn: () => unwrap(api.GET('/v1/read/federated-tasks', { params: { query: { limit: 100 } } })),
    refetchInterval: LIVE,
  });
  const task = (tasks.data ?? []).find((row) => row.task_id === chosen) ?? tasks.data?.[0];
  return (
    <Card title={<Typography.Title level={2} style={{ fontSize: 18, margin: 0 }}>{t('federatedLearning')}</Typography.Title>}>
      <ProblemAlert error={tasks.error} />
      <Table
        size="small"
        rowKey="task_id"
        loading={tasks.isLoading}
        dataSource={tasks.data ?? []}
        locale={{ emptyText: <Empty description={t('noTasks')} /> }}
        pagination={{ pageSize: 10 }}
        columns={[
          { title: t('name'), dataIndex: 'name' },
          { title: t('strategy'), dataIndex: 'strategy' },
          { title: t('status'), render: (_, row) => <Tag style={row.status === 'completed' ? GOOD : undefined}>{row.status}</Tag> },
          { title: t('hospitals'), dataIndex: 'hospitals' },
          { title: t('rounds'), render: (_, row) => `${row.rounds_aggregated} / ${row.rounds}` },
          { title: 'ε', render: (_, row) => (row.epsilon_budget == null ? '—' : `${(row.epsilon_spent ?? 0).toFixed(2)} / ${row.epsilon_budget}`) },
          { title: t('secureAggregation'), render: (_, row) => (row.secure_aggregation ? '✓' : '—') },
          { title: t('updated'), render: (_, row) => date(row.updated_at) },
          {
            title: t('actions'),
            render: (_, row) => (
              <Button
                size="small"
                type={row.task_id === task?.task_id ? 'primary' : 'default'}
                aria-pressed={row.task_id === task?.task_id}
                aria-label={`${t('showRounds')} ${row.name}`}
                onClick={() => setChosen(row.task_id)}
              >
                {t('showRounds')}
              </Button>
            ),
          },
        ]}
      />
      {task && (
        <section aria-label={task.name} style={{ marginTop: 24 }}>
          <Typography.Title level={3} style={{ fontSize: 16 }}>
            {task.name}
          </Typography.Title>
          <Rounds task={task} />
        </section>
      )}
    </Card>
  );
}
