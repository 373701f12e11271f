// A patient's records index (the read model), each row opening the record.
import { Empty, Table } from 'antd';
import { useQuery } from '@tanstack/react-query';
import { Link } from 'react-router-dom';

import { api, unwrap } from '../api/client';
import { useI18n } from '../i18n';
import { ProblemAlert } from './ProblemAlert';

export function RecordList({ patientId }: { patientId: string }) {
  const { t, date } = useI18n();
  const records = useQuery({
    queryKey: ['records', patientId],
    queryFn: () => unwrap(api.GET('/v1/read/records', { params: { query: { patient_id: patientId } } })),
    retry: false,
  });
  if (records.error) return <ProblemAlert error={records.error} />;
  return (
    <Table
      rowKey="record_id"
      loading={records.isLoading}
      dataSource={records.data ?? []}
      locale={{ emptyText: <Empty description={t('noRecords')} /> }}
      pagination={false}
      columns={[
        { title: t('visitDate'), render: (_, row) => date(row.visit_date) },
        { title: t('recordType'), dataIndex: 'record_type' },
        { title: t('status'), dataIndex: 'status' },
        { title: t('actions'), render: (_, row) => <Link to={`/records/${row.record_id}`}>{t('openRecord')}</Link> },
      ]}
    />
  );
}
