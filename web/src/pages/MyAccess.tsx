// A practitioner's access: the grants patients gave them and the requests they
// made, newest first, each as its grant holds it now (a revocation shows at once).
import { Card, Empty, Table, Tag, Typography } from 'antd';
import { useQuery } from '@tanstack/react-query';
import { Link } from 'react-router-dom';

import { api, unwrap, type Schemas } from '../api/client';
import { ProblemAlert } from '../components/ProblemAlert';
import { GOOD } from '../components/tone';
import { useI18n } from '../i18n';
import { useSession } from '../session';

type GrantView = Schemas['GrantView'];

export default function MyAccess() {
  const { t, date } = useI18n();
  const { session } = useSession();
  const userId = session?.claims.sub ?? '';
  const grants = useQuery({
    queryKey: ['access', userId],
    queryFn: () => unwrap(api.GET('/v1/accounts/{user_id}/grants', { params: { path: { user_id: userId } } })),
  });
  return (
    <Card title={<Typography.Title level={2} style={{ fontSize: 18, margin: 0 }}>{t('myAccess')}</Typography.Title>}>
      <ProblemAlert error={grants.error} />
      <Table<GrantView>
        rowKey="grant_id"
        loading={grants.isLoading}
        dataSource={grants.data ?? []}
        locale={{ emptyText: <Empty description={t('noGrantsToMe')} /> }}
        pagination={false}
        columns={[
          {
            title: t('patientId'),
            render: (_, grant) => (grant.active_now && grant.patient_id ? <Link to={`/patients/${grant.patient_id}`}>{grant.patient_id}</Link> : grant.patient_id),
          },
          { title: t('scopes'), render: (_, grant) => grant.scopes.map((scope) => <Tag key={scope}>{scope}</Tag>) },
          { title: t('expires'), render: (_, grant) => (grant.expires_at ? date(grant.expires_at) : '') },
          { title: t('status'), render: (_, grant) => <Tag style={grant.active_now ? GOOD : undefined}>{grant.active_now ? t('usableNow') : grant.status}</Tag> },
        ]}
      />
    </Card>
  );
}
