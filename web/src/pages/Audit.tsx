// The auditor's integrity view: an aggregate's full history from the log (PHI
// sealed), and for any event its receipt — verified here in the browser, step by
// step, against the signed tree head, with the ledgers that anchor it.
import { useState } from 'react';
import { Button, Card, Descriptions, Empty, Form, Input, Result, Select, Space, Table, Tag, Typography } from 'antd';
import { useMutation, useQuery } from '@tanstack/react-query';
import { Link } from 'react-router-dom';

import { api, unwrap } from '../api/client';
import { asReceipt, verify, type Receipt, type Step } from '../audit/verify';
import { ProblemAlert } from '../components/ProblemAlert';
import { GOOD } from '../components/tone';
import { useI18n, type MessageKey } from '../i18n';

const TYPES = ['medical_record', 'patient', 'access_grant'] as const;

interface Target {
  aggregate_type: (typeof TYPES)[number];
  aggregate_id: string;
}

type Event = Record<string, unknown>;

const isEvent = (value: unknown): value is Event => typeof value === 'object' && value !== null && !Array.isArray(value);

const field = (event: Event, name: string): unknown => event[name];
/** A scalar of the served event as text (anything else shows as nothing). */
const text = (value: unknown): string => (typeof value === 'string' || typeof value === 'number' ? String(value) : '');
const metadataOf = (event: Event): Record<string, unknown> => (field(event, 'metadata') ?? {}) as Record<string, unknown>;

/** An event's receipt as served (null until it is anchored) and, if there is one, each step of its verification here. */
async function checkEvent(target: Target, event: Event): Promise<{ receipt: Receipt | null; steps: Step[] }> {
  const sequence = Number(field(event, 'sequence'));
  const served = await unwrap(
    api.GET('/v1/audit/{aggregate_type}/{aggregate_id}/events/{sequence}/receipt', {
      params: { path: { aggregate_type: target.aggregate_type, aggregate_id: target.aggregate_id, sequence } },
    }),
  );
  const receipt = asReceipt(served);
  return { receipt, steps: receipt ? await verify(event, receipt) : [] };
}

function Verification({ target, event }: { target: Target; event: Event }) {
  const { t } = useI18n();
  const sequence = Number(field(event, 'sequence'));
  const check = useMutation({ mutationFn: () => checkEvent(target, event) });
  const labels: Record<Step['name'], MessageKey> = {
    canonical: 'stepCanonical',
    leaf: 'stepLeaf',
    inclusion: 'stepInclusion',
    head: 'stepHead',
    signature: 'stepSignature',
  };
  return (
    <Space direction="vertical" style={{ width: '100%' }}>
      <Button onClick={() => check.mutate()} loading={check.isPending}>
        {t('verify')} #{sequence}
      </Button>
      <ProblemAlert error={check.error} />
      {check.data && !check.data.receipt && <Result status="warning" title={t('notAnchoredYet')} />}
      {check.data?.receipt && (
        <section aria-label={`${t('verification')} #${sequence}`}>
          <Typography.Title level={3} style={{ fontSize: 16 }}>
            {check.data.steps.every((s) => s.ok) ? `✓ ${t('verified')}` : `✗ ${t('notVerified')}`}
          </Typography.Title>
          <ol>
            {check.data.steps.map((step) => (
              <li key={step.name} data-testid={`step-${step.name}`}>
                <Tag style={step.ok ? GOOD : undefined} color={step.ok ? undefined : 'red'}>
                  {step.ok ? '✓' : '✗'}
                </Tag>
                <Typography.Text strong>{t(labels[step.name])}</Typography.Text> — <Typography.Text code>{step.detail}</Typography.Text>
              </li>
            ))}
          </ol>
          <Table
            size="small"
            rowKey={(anchor) => `${anchor.ledger}:${anchor.transaction_id}`}
            pagination={false}
            dataSource={check.data.receipt.anchors}
            columns={[
              { title: t('ledger'), dataIndex: 'ledger' },
              { title: t('transaction'), dataIndex: 'transaction_id', render: (id: string) => <Typography.Text code>{id}</Typography.Text> },
              { title: t('block'), dataIndex: 'block' },
              { title: t('status'), dataIndex: 'status', render: (status?: string) => status ?? t('final') },
            ]}
          />
        </section>
      )}
    </Space>
  );
}

/** Every event of the aggregate checked in turn: how many verify, how many wait for an anchor, which fail. */
function VerifyAll({ target, events }: { target: Target; events: Event[] }) {
  const { t } = useI18n();
  const run = useMutation({
    mutationFn: async () => {
      const tally = { verified: 0, pending: 0, failed: [] as number[] };
      for (const event of events) {
        const { receipt, steps } = await checkEvent(target, event);
        if (!receipt) tally.pending++;
        else if (steps.every((step) => step.ok)) tally.verified++;
        else tally.failed.push(Number(field(event, 'sequence')));
      }
      return tally;
    },
  });
  return (
    <Space wrap>
      <Button onClick={() => run.mutate()} loading={run.isPending} disabled={events.length === 0}>
        {t('verifyAll')}
      </Button>
      <ProblemAlert error={run.error} />
      {run.data && (
        <Typography.Text data-testid="verify-all" strong>
          {run.data.failed.length === 0 ? '✓' : '✗'} {run.data.verified}/{events.length} {t('eventsVerified')}
          {run.data.pending > 0 && ` · ${run.data.pending} ${t('awaitingAnchor')}`}
          {run.data.failed.length > 0 && ` · ${t('failedAt')} #${run.data.failed.join(', #')}`}
        </Typography.Text>
      )}
    </Space>
  );
}

/** Where each signed tree head was anchored: ledger, transaction, block, pending or final. */
function Anchors() {
  const { t, date } = useI18n();
  const anchors = useQuery({
    queryKey: ['anchors'],
    queryFn: () => unwrap(api.GET('/v1/read/anchors', { params: { query: { limit: 50 } } })),
    refetchInterval: 10_000,
  });
  return (
    <section aria-label={t('anchoring')}>
      <Typography.Title level={3} style={{ fontSize: 16 }}>
        {t('anchoring')}
      </Typography.Title>
      <ProblemAlert error={anchors.error} />
      <Table
        size="small"
        rowKey={(row) => `${row.ledger}:${row.transaction_hash}`}
        loading={anchors.isLoading}
        dataSource={anchors.data ?? []}
        locale={{ emptyText: <Empty description={t('noAnchors')} /> }}
        pagination={{ pageSize: 10 }}
        columns={[
          { title: t('treeSize'), dataIndex: 'tree_size' },
          { title: t('root'), render: (_, row) => <Typography.Text code>{row.root.slice(0, 16)}…</Typography.Text> },
          { title: t('ledger'), dataIndex: 'ledger' },
          { title: t('transaction'), render: (_, row) => <Typography.Text code>{row.transaction_hash.slice(0, 18)}…</Typography.Text> },
          { title: t('block'), dataIndex: 'block_number' },
          { title: t('status'), render: (_, row) => <Tag style={row.status === 'confirmed' ? GOOD : undefined}>{row.status}</Tag> },
          { title: t('anchoredAt'), render: (_, row) => date(row.confirmed_at ?? row.created_at) },
        ]}
      />
    </section>
  );
}

export default function Audit() {
  const { t, date } = useI18n();
  const [target, setTarget] = useState<Target | null>(null);
  const history = useQuery({
    queryKey: ['history', target],
    enabled: target !== null,
    queryFn: () =>
      unwrap(
        api.GET('/v1/audit/{aggregate_type}/{aggregate_id}/history', {
          params: { path: { aggregate_type: target?.aggregate_type ?? 'patient', aggregate_id: target?.aggregate_id ?? '' } },
        }),
      ),
    retry: false,
  });
  return (
    <Card title={<Typography.Title level={2} style={{ fontSize: 18, margin: 0 }}>{t('integrity')}</Typography.Title>}>
      <Space direction="vertical" size="large" style={{ width: '100%' }}>
        <Form<Target> name="audit" layout="inline" onFinish={(values) => setTarget({ ...values, aggregate_id: values.aggregate_id.trim() })} initialValues={{ aggregate_type: 'medical_record' }}>
          <Form.Item label={t('aggregateType')} name="aggregate_type">
            <Select style={{ width: 180 }} options={TYPES.map((value) => ({ value, label: value }))} />
          </Form.Item>
          <Form.Item label={t('aggregateId')} name="aggregate_id" rules={[{ required: true, pattern: /^[0-9a-fA-F-]{36}$/, message: t('patientAccountRule') }]}>
            <Input style={{ width: 340 }} />
          </Form.Item>
          <Button type="primary" htmlType="submit">
            {t('showHistory')}
          </Button>
        </Form>
        <ProblemAlert error={history.error} />
        {target && history.data && (
          <Space wrap>
            <VerifyAll target={target} events={history.data.filter(isEvent)} />
            {target.aggregate_type === 'medical_record' && <Link to={`/records/${target.aggregate_id}`}>{t('replayRecord')}</Link>}
          </Space>
        )}
        {target && (
          <Table<Event>
            rowKey={(event) => text(field(event, 'sequence'))}
            loading={history.isLoading}
            dataSource={(history.data ?? []).filter(isEvent)}
            locale={{ emptyText: <Empty description={t('noEvents')} /> }}
            pagination={false}
            expandable={{ expandedRowRender: (event) => <Verification target={target} event={event} />, expandRowByClick: false }}
            columns={[
              { title: '#', render: (_, event) => text(field(event, 'sequence')) },
              { title: t('eventType'), render: (_, event) => text(field(event, 'event_type')) },
              { title: t('when'), render: (_, event) => date(text(metadataOf(event).recorded_at)) },
              { title: t('position'), render: (_, event) => text(metadataOf(event).position) },
              {
                title: t('actor'),
                render: (_, event) => {
                  const actor = (metadataOf(event).actor ?? {}) as Record<string, unknown>;
                  return `${text(actor.role)} ${text(actor.user_id)}`;
                },
              },
              { title: t('causation'), render: (_, event) => <Typography.Text code>{text(metadataOf(event).causation_id)}</Typography.Text> },
            ]}
          />
        )}
        <Anchors />
        <Descriptions size="small" column={1}>
          <Descriptions.Item label={t('howToVerify')}>{t('howToVerifyText')}</Descriptions.Item>
        </Descriptions>
      </Space>
    </Card>
  );
}
