// "Who saw my data": the patient's access log, break-glass reads included.
import { Card, Empty, Table, Tag, Typography } from 'antd';
import { useQuery } from '@tanstack/react-query';

import { api, unwrap } from '../api/client';
import { ProblemAlert } from '../components/ProblemAlert';
import { useI18n } from '../i18n';
import { useSession } from '../session';

export default function AccessLog() {
  const { t, date } = useI18n();
  const { session } = useSession();
  const patientId = session?.claims.sub ?? '';
  const log = useQuery({
    queryKey: ['access-log', patientId],
    queryFn: () => unwrap(api.GET('/v1/read/access-log', { params: { query: { patient_id: patientId } } })),
  });
  return (
    <Card title={<Typography.Title level={2} style={{ fontSize: 18, margin: 0 }}>{t('whoSawMyData')}</Typography.Title>}>
      <ProblemAlert error={log.error} />
      <Table
        rowKey="disclosure_id"
        loading={log.isLoading}
        dataSource={log.data ?? []}
        locale={{ emptyText: <Empty description={t('noAccess')} /> }}
        columns={[
          { title: t('when'), render: (_, row) => date(row.accessed_at) },
          { title: t('accessor'), dataIndex: 'accessor_id' },
          { title: t('role'), dataIndex: 'accessor_role' },
          { title: t('resource'), dataIndex: 'resource' },
          {
            title: t('basis'),
            render: (_, row) => <Tag color={row.basis === 'break_glass' ? 'red' : undefined}>{row.basis === 'break_glass' ? t('breakGlass') : row.basis}</Tag>,
          },
        ]}
      />
    </Card>
  );
}
