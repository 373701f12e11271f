// A patient's own records: the index, each opening with its versions and attachments.
import { Card, Typography } from 'antd';

import { RecordList } from '../components/RecordList';
import { useI18n } from '../i18n';
import { useSession } from '../session';

export default function MyRecords() {
  const { t } = useI18n();
  const { session } = useSession();
  return (
    <Card title={<Typography.Title level={2} style={{ fontSize: 18, margin: 0 }}>{t('myRecords')}</Typography.Title>}>
      <RecordList patientId={session?.claims.sub ?? ''} />
    </Card>
  );
}
