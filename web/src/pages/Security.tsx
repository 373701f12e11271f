// The security officers' queue (administrators and auditors): security events
// newest first, filtered by status; acknowledge, resolve as a true or false positive.
import { useState } from 'react';
import { Button, Card, Empty, Select, Space, Table, Tag, Typography } from 'antd';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';

import { api, unwrap, type Schemas } from '../api/client';
import { ProblemAlert } from '../components/ProblemAlert';
import { SEVERITY } from '../components/tone';
import { useI18n } from '../i18n';

type SecurityEvent = Schemas['SecurityEventRow'];
const STATUSES = ['open', 'acknowledged', 'investigating', 'resolved'] as const;

function Triage({ event, onDone }: { event: SecurityEvent; onDone: () => void }) {
  const { t } = useI18n();
  const path = { params: { path: { security_event_id: event.security_event_id } } };
  const step = useMutation({
    mutationFn: (action: 'acknowledge' | 'true_positive' | 'false_positive') =>
      action === 'acknowledge'
        ? unwrap(api.POST('/v1/security/events/{security_event_id}/acknowledgement', path))
        : unwrap(api.POST('/v1/security/events/{security_event_id}/resolution', { ...path, body: { outcome: action } })),
    onSuccess: onDone,
  });
  if (event.status === 'resolved') return <Typography.Text>{event.outcome}</Typography.Text>;
  return (
    <Space direction="vertical">
      <Space wrap>
        {event.status === 'open' && (
          <Button size="small" onClick={() => step.mutate('acknowledge')} loading={step.isPending}>
            {t('acknowledge')}
          </Button>
        )}
        <Button size="small" onClick={() => step.mutate('true_positive')} loading={step.isPending}>
          {t('truePositive')}
        </Button>
        <Button size="small" onClick={() => step.mutate('false_positive')} loading={step.isPending}>
          {t('falsePositive')}
        </Button>
      </Space>
      <ProblemAlert error={step.error} />
    </Space>
  );
}

export default function Security() {
  const { t, date } = useI18n();
  const queries = useQueryClient();
  const [status, setStatus] = useState<(typeof STATUSES)[number] | undefined>(undefined);
  const events = useQuery({
    queryKey: ['security-events', status],
    queryFn: () => unwrap(api.GET('/v1/security/events', { params: { query: { status } } })),
    refetchInterval: 5_000,
  });
  return (
    <Card
      title={<Typography.Title level={2} style={{ fontSize: 18, margin: 0 }}>{t('securityEvents')}</Typography.Title>}
      extra={
        <Select
          aria-label={t('status')}
          allowClear
          placeholder={t('status')}
          style={{ width: 180 }}
          value={status}
          onChange={setStatus}
          options={STATUSES.map((value) => ({ value, label: value }))}
        />
      }
    >
      <ProblemAlert error={events.error} />
      <Table<SecurityEvent>
        rowKey="security_event_id"
        loading={events.isLoading}
        dataSource={events.data ?? []}
        locale={{ emptyText: <Empty description={t('noSecurityEvents')} /> }}
        columns={[
          { title: t('when'), render: (_, event) => date(event.raised_at) },
          { title: t('kind'), dataIndex: 'kind' },
          { title: t('severity'), render: (_, event) => <Tag style={SEVERITY[event.severity]}>{event.severity}</Tag> },
          { title: t('summary'), dataIndex: 'summary' },
          { title: t('user'), dataIndex: 'user_id' },
          { title: t('status'), dataIndex: 'status' },
          { title: '', render: (_, event) => <Triage event={event} onDone={() => void queries.invalidateQueries({ queryKey: ['security-events'] })} /> },
        ]}
      />
    </Card>
  );
}
