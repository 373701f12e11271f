// A patient's grants: who may read (or write) their records until when; grant
// access with scopes and an expiry, revoke it with a reason.
import { useState } from 'react';
import { Button, Card, Checkbox, DatePicker, Empty, Form, Input, Space, Table, Tag, Typography } from 'antd';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import type { Dayjs } from 'dayjs';

import { CommandIntent, api, unwrap, type Schemas } from '../api/client';
import { ProblemAlert } from '../components/ProblemAlert';
import { ReasonDialog } from '../components/ReasonDialog';
import { ruleOf } from '../components/rules';
import { GOOD } from '../components/tone';
import { useI18n } from '../i18n';
import { useSession } from '../session';
import { DEFAULT_ACCESS_DAYS, daysFromNow, validShortText } from '../validation';

type GrantView = Schemas['GrantView'];
type Scope = Schemas['Scope'];

interface NewGrant {
  grantee: string;
  scopes: Scope[];
  expires_at: Dayjs;
  reason: string;
}

function Revoke({ grant, onDone }: { grant: GrantView; onDone: () => void }) {
  const { t } = useI18n();
  return (
    <ReasonDialog
      name="revoke"
      title={t('revoke')}
      reasonLabel={t('revokeReason')}
      reasonRule={t('textRequired')}
      confirm={t('confirmRevoke')}
      small
      act={(reason) => unwrap(api.POST('/v1/grants/{grant_id}/revocation', { params: { path: { grant_id: grant.grant_id } }, body: { reason } }))}
      onDone={onDone}
    />
  );
}

/** A clinician's request: approve for 30 days, or deny with a reason. */
function Decide({ grant, onDone }: { grant: GrantView; onDone: () => void }) {
  const { t } = useI18n();
  const path = { params: { path: { grant_id: grant.grant_id } } };
  const approve = useMutation({
    mutationFn: () =>
      unwrap(api.POST('/v1/grants/{grant_id}/approval', { ...path, body: { expires_at: daysFromNow(DEFAULT_ACCESS_DAYS) } })),
    onSuccess: onDone,
  });
  return (
    <Space>
      <Button size="small" type="primary" onClick={() => approve.mutate()} loading={approve.isPending}>
        {t('approve')}
      </Button>
      <ReasonDialog
        name="deny"
        title={t('deny')}
        reasonLabel={t('denyReason')}
        reasonRule={t('textRequired')}
        confirm={t('deny')}
        small
        act={(reason) => unwrap(api.POST('/v1/grants/{grant_id}/denial', { ...path, body: { reason } }))}
        onDone={onDone}
      />
      <ProblemAlert error={approve.error} />
    </Space>
  );
}

export default function Grants() {
  const { t, date } = useI18n();
  const { session } = useSession();
  const patientId = session?.claims.sub ?? '';
  const queries = useQueryClient();
  const [form] = Form.useForm<NewGrant>();
  // After a grant, the list waits until the read model holds it (the receipt's position).
  const [seen, setSeen] = useState<number | undefined>(undefined);
  const grants = useQuery({
    queryKey: ['grants', patientId, seen],
    queryFn: () =>
      unwrap(api.GET('/v1/patients/{patient_id}/grants', { params: { path: { patient_id: patientId }, query: { min_position: seen } } })),
  });
  const refresh = () => void queries.invalidateQueries({ queryKey: ['grants', patientId] });
  const [intent] = useState(() => new CommandIntent());
  const give = useMutation({
    mutationFn: (values: NewGrant) => {
      const body = {
        patient_id: patientId,
        grantee: values.grantee.trim(),
        scopes: values.scopes,
        expires_at: values.expires_at.endOf('day').toISOString(),
        reason: values.reason,
      };
      return intent.send(body, (headers) => unwrap(api.POST('/v1/grants', { body, headers })));
    },
    onSuccess: (receipt) => {
      form.resetFields();
      setSeen(receipt.position ?? undefined);
      refresh();
    },
  });
  return (
    <Space direction="vertical" size="large" style={{ width: '100%' }}>
      <Card title={<Typography.Title level={2} style={{ fontSize: 18, margin: 0 }}>{t('myGrants')}</Typography.Title>}>
        <ProblemAlert error={grants.error} />
        <Table<GrantView>
          rowKey="grant_id"
          loading={grants.isLoading}
          dataSource={grants.data ?? []}
          locale={{ emptyText: <Empty description={t('noGrants')} /> }}
          pagination={false}
          columns={[
            { title: t('grantee'), dataIndex: 'grantee' },
            { title: t('scopes'), render: (_, grant) => grant.scopes.map((scope) => <Tag key={scope}>{scope}</Tag>) },
            { title: t('expires'), render: (_, grant) => (grant.expires_at ? date(grant.expires_at) : '') },
            { title: t('status'), render: (_, grant) => <Tag style={grant.active_now ? GOOD : undefined}>{grant.status}</Tag> },
            {
              title: '',
              render: (_, grant) =>
                grant.status === 'requested' ? <Decide grant={grant} onDone={refresh} /> : grant.active_now && <Revoke grant={grant} onDone={refresh} />,
            },
          ]}
        />
      </Card>
      <Card title={<Typography.Title level={2} style={{ fontSize: 18, margin: 0 }}>{t('grantAccess')}</Typography.Title>}>
        <Form<NewGrant> name="grant" form={form} layout="vertical" onFinish={(values) => give.mutate(values)} initialValues={{ scopes: ['read'] }} style={{ maxWidth: 520 }}>
          <Form.Item label={t('grantee')} name="grantee" rules={[{ required: true, pattern: /^[0-9a-fA-F-]{36}$/, message: t('granteeRule') }]}>
            <Input />
          </Form.Item>
          <Form.Item
            label={t('scopes')}
            name="scopes"
            // A validator rather than `required`: Ant Design would put aria-required on the group's div.
            rules={[{ validator: (_, value: Scope[] | undefined) => ((value ?? []).length > 0 ? Promise.resolve() : Promise.reject(new Error(t('scopesRule')))) }]}
          >
            <Checkbox.Group options={(['read', 'write'] as const).map((value) => ({ value, label: t(value === 'read' ? 'scopeRead' : 'scopeWrite') }))} />
          </Form.Item>
          <Form.Item label={t('expires')} name="expires_at" rules={[{ required: true, message: t('expiresRule') }]}>
            <DatePicker />
          </Form.Item>
          <Form.Item label={t('grantReason')} name="reason" rules={[ruleOf(validShortText, t('textRequired'))]}>
            <Input />
          </Form.Item>
          <ProblemAlert error={give.error} />
          <Button type="primary" htmlType="submit" loading={give.isPending} style={{ marginTop: 8 }}>
            {t('grant')}
          </Button>
        </Form>
      </Card>
    </Space>
  );
}
