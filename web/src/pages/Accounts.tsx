// Administrators: open accounts (clinicians with their licensed profile), look one
// up, lift a lockout or a suspension (a suspension needs a reason), move a staff
// account to another role, reset a lost authenticator, close it.
import { useState } from 'react';
import { Button, Card, Descriptions, Empty, Form, Input, Select, Space, Table, Tag, Typography } from 'antd';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';

import { CommandIntent, ProblemError, api, unwrap, type Schemas } from '../api/client';
import { ProblemAlert } from '../components/ProblemAlert';
import { ruleOf } from '../components/rules';
import { useI18n } from '../i18n';
import { validPassword, validShortText, validUsername } from '../validation';

type Role = Schemas['Role'];
const ROLES: Role[] = ['physician', 'nurse', 'admin', 'auditor', 'researcher', 'hospital'];

interface NewAccount {
  username: string;
  password: string;
  role: Role;
  full_name?: string;
  licence_number?: string;
  department?: string;
  specialization?: string;
}

function OpenAccount({ onOpened }: { onOpened: (userId: string) => void }) {
  const { t } = useI18n();
  const [form] = Form.useForm<NewAccount>();
  const role = Form.useWatch('role', form);
  const clinician = role === 'physician' || role === 'nurse';
  const [intent] = useState(() => new CommandIntent());
  const open = useMutation({
    mutationFn: (values: NewAccount) => {
      const body = {
        username: values.username,
        password: values.password,
        role: values.role,
        profile: clinician
          ? {
              full_name: values.full_name ?? '',
              licence_number: values.licence_number ?? '',
              department: values.department ?? '',
              specialization: values.specialization ?? '',
            }
          : null,
      };
      return intent.send(body, (headers) => unwrap(api.POST('/v1/accounts', { body, headers })));
    },
    onSuccess: (created) => {
      form.resetFields();
      onOpened(created.user_id);
    },
  });
  return (
    <Form<NewAccount> name="account" form={form} layout="vertical" onFinish={(values) => open.mutate(values)} initialValues={{ role: 'physician' }} style={{ maxWidth: 520 }}>
      <Form.Item label={t('username')} name="username" rules={[ruleOf(validUsername, t('usernameRequired'))]}>
        <Input autoComplete="off" />
      </Form.Item>
      <Form.Item label={t('password')} name="password" rules={[ruleOf(validPassword, t('passwordRule'))]}>
        <Input.Password autoComplete="new-password" />
      </Form.Item>
      <Form.Item label={t('role')} name="role">
        <Select options={ROLES.map((value) => ({ value, label: value }))} />
      </Form.Item>
      {clinician && (
        <>
          <Form.Item label={t('name')} name="full_name" rules={[ruleOf(validShortText, t('nameRequired'))]}>
            <Input />
          </Form.Item>
          <Form.Item label={t('licence')} name="licence_number" rules={[ruleOf((v) => /^[A-Za-z0-9-]{4,32}$/.test(v), t('licenceRule'))]}>
            <Input />
          </Form.Item>
          <Form.Item label={t('department')} name="department" rules={[ruleOf(validShortText, t('textRequired'))]}>
            <Input />
          </Form.Item>
          <Form.Item label={t('specialization')} name="specialization" rules={[ruleOf(validShortText, t('textRequired'))]}>
            <Input />
          </Form.Item>
        </>
      )}
      <ProblemAlert error={open.error} />
      <Button type="primary" htmlType="submit" loading={open.isPending} style={{ marginTop: 8 }}>
        {t('openAccount')}
      </Button>
    </Form>
  );
}

const STAFF_ROLES = ['physician', 'nurse', 'admin', 'auditor', 'researcher'] as const;
type StaffRole = (typeof STAFF_ROLES)[number];
const isStaff = (role: string | null | undefined): role is StaffRole => STAFF_ROLES.some((staff) => staff === role);

/** The account as shown: a change made on it applies only if nobody changed it since
 * (`If-Match` with its version; a 412 shows the problem and reloads the account). */
interface Shown {
  userId: string;
  version: number;
  onChanged: () => void;
}

const asShown = (version: number) => ({ 'if-match': `"${version}"` });

const reloadIfChanged = (onChanged: () => void) => (error: unknown) => {
  if (error instanceof ProblemError && error.status === 412) onChanged();
};

/** Moves a staff account to another staff role; the server ends its sessions. */
function ChangeRole({ userId, version, onChanged, current }: Shown & { current: StaffRole }) {
  const { t } = useI18n();
  const [form] = Form.useForm<{ role: StaffRole; reason: string }>();
  const change = useMutation({
    mutationFn: ({ role, reason }: { role: StaffRole; reason: string }) =>
      unwrap(
        api.POST('/v1/accounts/{user_id}/role', {
          params: { path: { user_id: userId } },
          body: { role, reason, profile: null },
          headers: asShown(version),
        }),
      ),
    onSuccess: () => {
      form.resetFields(['reason']);
      onChanged();
    },
    onError: reloadIfChanged(onChanged),
  });
  return (
    <section aria-label={t('changeRole')}>
      <Form name="changeRole" form={form} layout="inline" initialValues={{ role: current }} onFinish={(values) => change.mutate(values)}>
        <Form.Item label={t('newRole')} name="role">
          <Select style={{ width: 160 }} options={STAFF_ROLES.map((value) => ({ value, label: value }))} />
        </Form.Item>
        <Form.Item label={t('roleChangeReason')} name="reason" rules={[ruleOf(validShortText, t('textRequired'))]}>
          <Input style={{ width: 280 }} />
        </Form.Item>
        <Button htmlType="submit" loading={change.isPending}>
          {t('changeRole')}
        </Button>
      </Form>
      <Typography.Paragraph type="secondary" style={{ marginTop: 8 }}>
        {t('changeRoleHint')}
      </Typography.Paragraph>
      <ProblemAlert error={change.error} />
    </section>
  );
}

/** Clears an account's TOTP enrolment (a lost device); the server ends its sessions. */
function ResetMfa({ userId, version, onChanged }: Shown) {
  const { t } = useI18n();
  const [form] = Form.useForm<{ reason: string }>();
  const reset = useMutation({
    mutationFn: ({ reason }: { reason: string }) =>
      unwrap(api.POST('/v1/accounts/{user_id}/mfa-reset', { params: { path: { user_id: userId } }, body: { reason }, headers: asShown(version) })),
    onSuccess: () => {
      form.resetFields();
      onChanged();
    },
    onError: reloadIfChanged(onChanged),
  });
  return (
    <section aria-label={t('resetMfa')}>
      <Form name="resetMfa" form={form} layout="inline" onFinish={(values) => reset.mutate(values)}>
        <Form.Item label={t('mfaResetReason')} name="reason" rules={[ruleOf(validShortText, t('textRequired'))]}>
          <Input style={{ width: 280 }} />
        </Form.Item>
        <Button danger htmlType="submit" loading={reset.isPending}>
          {t('resetMfa')}
        </Button>
      </Form>
      <Typography.Paragraph type="secondary" style={{ marginTop: 8 }}>
        {t('resetMfaHint')}
      </Typography.Paragraph>
      <ProblemAlert error={reset.error} />
    </section>
  );
}

function Account({ userId }: { userId: string }) {
  const { t, date } = useI18n();
  const queries = useQueryClient();
  const account = useQuery({
    queryKey: ['account', userId],
    queryFn: () => unwrap(api.GET('/v1/accounts/{user_id}', { params: { path: { user_id: userId } } })),
    retry: false,
  });
  const refresh = () => {
    void queries.invalidateQueries({ queryKey: ['account', userId] });
    void queries.invalidateQueries({ queryKey: ['accounts'] });
  };
  const unlock = useMutation({
    mutationFn: () => unwrap(api.POST('/v1/accounts/{user_id}/unlock', { params: { path: { user_id: userId } }, body: { reason: null } })),
    onSuccess: refresh,
  });
  const close = useMutation({
    mutationFn: () => unwrap(api.POST('/v1/accounts/{user_id}/deactivation', { params: { path: { user_id: userId } } })),
    onSuccess: refresh,
  });
  if (account.error) return <ProblemAlert error={account.error} />;
  const view = account.data;
  if (!view) return <Typography.Text>{t('loading')}</Typography.Text>;
  return (
    <Space direction="vertical" style={{ width: '100%' }}>
      <Descriptions bordered size="small" column={2}>
        <Descriptions.Item label={t('username')}>{view.username ?? '—'}</Descriptions.Item>
        <Descriptions.Item label={t('role')}>{view.role ?? '—'}</Descriptions.Item>
        <Descriptions.Item label={t('status')}>
          <Tag>{view.status}</Tag>
        </Descriptions.Item>
        <Descriptions.Item label="MFA">{view.mfa_enabled ? '✓' : '—'}</Descriptions.Item>
        <Descriptions.Item label={t('lockedUntil')}>{view.locked_until ? date(view.locked_until) : '—'}</Descriptions.Item>
        <Descriptions.Item label={t('name')}>{view.profile?.full_name ?? '—'}</Descriptions.Item>
      </Descriptions>
      <Space>
        <Button onClick={() => unlock.mutate()} loading={unlock.isPending}>
          {t('unlock')}
        </Button>
        <Button danger onClick={() => close.mutate()} loading={close.isPending} disabled={view.status !== 'active'}>
          {t('closeAccount')}
        </Button>
      </Space>
      <ProblemAlert error={unlock.error ?? close.error} />
      {view.status === 'active' && isStaff(view.role) && (
        <ChangeRole key={view.role} userId={userId} version={view.sequence} current={view.role} onChanged={refresh} />
      )}
      {view.status === 'active' && view.mfa_enabled && <ResetMfa userId={userId} version={view.sequence} onChanged={refresh} />}
    </Space>
  );
}

const ALL_ROLES = ['physician', 'nurse', 'patient', 'admin', 'auditor', 'researcher', 'hospital'] as const;

/** Every account, a page at a time, filtered by role, status or the start of the username. */
function AccountList({ onOpen }: { onOpen: (userId: string) => void }) {
  const { t, date } = useI18n();
  const [role, setRole] = useState<string | undefined>();
  const [status, setStatus] = useState<string | undefined>('active');
  const [username, setUsername] = useState('');
  const [page, setPage] = useState(1);
  const pageSize = 20;
  /** A filter's setter that also goes back to the first page (the old page may not exist). */
  const fromFirstPage =
    <T,>(set: (value: T) => void) =>
    (value: T) => {
      set(value);
      setPage(1);
    };
  const accounts = useQuery({
    queryKey: ['accounts', role, status, username, page],
    queryFn: () =>
      unwrap(
        api.GET('/v1/accounts', {
          params: { query: { role, status, username: username || undefined, limit: pageSize + 1, offset: (page - 1) * pageSize } },
        }),
      ),
    refetchInterval: 5_000,
  });
  const rows = accounts.data ?? [];
  return (
    <Space direction="vertical" style={{ width: '100%' }}>
      <Space wrap>
        <Select
          aria-label={t('role')}
          allowClear
          placeholder={t('role')}
          style={{ width: 160 }}
          value={role}
          onChange={fromFirstPage(setRole)}
          options={ALL_ROLES.map((value) => ({ value, label: value }))}
        />
        <Select
          aria-label={t('status')}
          allowClear
          placeholder={t('status')}
          style={{ width: 160 }}
          value={status}
          onChange={fromFirstPage(setStatus)}
          options={['active', 'deactivated'].map((value) => ({ value, label: value }))}
        />
        <Input.Search
          aria-label={t('usernameStartsWith')}
          placeholder={t('usernameStartsWith')}
          allowClear
          style={{ width: 260 }}
          onSearch={(text) => fromFirstPage(setUsername)(text.trim())}
        />
      </Space>
      <ProblemAlert error={accounts.error} />
      <Table
        size="small"
        rowKey="user_id"
        loading={accounts.isLoading}
        dataSource={rows.slice(0, pageSize)}
        locale={{ emptyText: <Empty description={t('noAccounts')} /> }}
        pagination={{ current: page, pageSize, total: (page - 1) * pageSize + rows.length, onChange: setPage, showSizeChanger: false }}
        columns={[
          { title: t('username'), dataIndex: 'username' },
          { title: t('role'), dataIndex: 'role' },
          { title: t('status'), render: (_, row) => <Tag>{row.status}</Tag> },
          { title: 'MFA', render: (_, row) => (row.mfa_enabled ? '✓' : '—') },
          {
            title: t('lockedUntil'),
            render: (_, row) => (row.suspended ? t('suspended') : row.locked_until && new Date(row.locked_until) > new Date() ? date(row.locked_until) : '—'),
          },
          {
            title: t('actions'),
            render: (_, row) => (
              <Button size="small" onClick={() => onOpen(row.user_id)} aria-label={`${t('openAccountDetails')} ${row.username}`}>
                {t('openRecord')}
              </Button>
            ),
          },
        ]}
      />
    </Space>
  );
}

export default function Accounts() {
  const { t } = useI18n();
  const [userId, setUserId] = useState<string | null>(null);
  return (
    <Space direction="vertical" size="large" style={{ width: '100%' }}>
      <Card title={<Typography.Title level={2} style={{ fontSize: 18, margin: 0 }}>{t('findAccount')}</Typography.Title>}>
        <Space direction="vertical" style={{ width: '100%' }}>
          <Input.Search aria-label={t('findAccount')} placeholder={t('accountId')} enterButton={t('search')} onSearch={(id) => setUserId(id.trim() || null)} />
          {userId && <Account userId={userId} />}
        </Space>
      </Card>
      <Card title={<Typography.Title level={2} style={{ fontSize: 18, margin: 0 }}>{t('accounts')}</Typography.Title>}>
        <AccountList onOpen={setUserId} />
      </Card>
      <Card title={<Typography.Title level={2} style={{ fontSize: 18, margin: 0 }}>{t('openAccount')}</Typography.Title>}>
        <OpenAccount onOpened={setUserId} />
      </Card>
    </Space>
  );
}
