// A patient's chart: demographics and the records index, under the caller's grants.
// Without a grant the server refuses; a physician or nurse may then break the glass
// with a stated reason, after a warning that the patient will see it.
import { useState } from 'react';
import { Alert, Button, Card, Descriptions, Empty, Form, Input, Modal, Result, Space, Table, Typography } from 'antd';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { Link, useParams } from 'react-router-dom';

import { ProblemError, api, unwrap, type Schemas } from '../api/client';
import { ProblemAlert } from '../components/ProblemAlert';
import { useI18n } from '../i18n';
import { validShortText } from '../validation';

type PatientView = Schemas['PatientView'];

function Demographics({ patient }: { patient: PatientView }) {
  const { t, date } = useI18n();
  const person = patient.demographics;
  return (
    <Descriptions bordered column={2} size="small">
      <Descriptions.Item label={t('name')}>{person?.full_name ?? '—'}</Descriptions.Item>
      <Descriptions.Item label={t('birthDate')}>{person ? date(person.date_of_birth) : '—'}</Descriptions.Item>
      <Descriptions.Item label={t('gender')}>{person ? t(person.gender) : '—'}</Descriptions.Item>
      <Descriptions.Item label={t('mrn')}>{patient.identifiers?.mrn ?? '—'}</Descriptions.Item>
      <Descriptions.Item label={t('hospital')}>{patient.hospital_id ?? '—'}</Descriptions.Item>
      <Descriptions.Item label={t('patientId')}>{patient.patient_id}</Descriptions.Item>
    </Descriptions>
  );
}

function Records({ patientId }: { patientId: string }) {
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
      ]}
    />
  );
}

function BreakGlass({ patientId, onOpened }: { patientId: string; onOpened: (patient: PatientView) => void }) {
  const { t } = useI18n();
  const [open, setOpen] = useState(false);
  const emergency = useMutation({
    mutationFn: (reason: string) => unwrap(api.POST('/v1/patients/{patient_id}/break-glass', { params: { path: { patient_id: patientId } }, body: { reason } })),
    onSuccess: (patient) => {
      setOpen(false);
      onOpened(patient);
    },
  });
  return (
    <>
      <Button danger onClick={() => setOpen(true)}>
        {t('breakGlass')}
      </Button>
      <Modal open={open} title={t('breakGlass')} onCancel={() => setOpen(false)} footer={null} destroyOnHidden>
        <Space direction="vertical" style={{ width: '100%' }}>
          <Alert type="warning" showIcon message={t('breakGlassWarning')} />
          <Form<{ reason: string }> layout="vertical" onFinish={({ reason }) => emergency.mutate(reason)}>
            <Form.Item
              label={t('reason')}
              name="reason"
              rules={[{ validator: (_, value: string | undefined) => (validShortText(value ?? '') ? Promise.resolve() : Promise.reject(new Error(t('reasonRequired')))) }]}
            >
              <Input.TextArea rows={2} />
            </Form.Item>
            <ProblemAlert error={emergency.error} />
            <Button type="primary" danger htmlType="submit" loading={emergency.isPending} style={{ marginTop: 8 }}>
              {t('confirmBreakGlass')}
            </Button>
          </Form>
        </Space>
      </Modal>
    </>
  );
}

export default function Chart() {
  const { t } = useI18n();
  const { patientId = '' } = useParams();
  const queries = useQueryClient();
  const patient = useQuery({
    queryKey: ['patient', patientId],
    queryFn: () => unwrap(api.GET('/v1/patients/{patient_id}', { params: { path: { patient_id: patientId } } })),
    retry: false,
  });
  const refused = patient.error instanceof ProblemError && patient.error.status === 403;
  return (
    <Card title={<Typography.Title level={2} style={{ fontSize: 18, margin: 0 }}>{t('chart')}</Typography.Title>} extra={<Link to="/patients">{t('back')}</Link>}>
      {patient.isLoading && <Typography.Text>{t('loading')}</Typography.Text>}
      {refused ? (
        <Result
          status="403"
          title={t('refused')}
          subTitle={patient.error instanceof ProblemError ? patient.error.problem.detail : ''}
          extra={<BreakGlass patientId={patientId} onOpened={(opened) => queries.setQueryData(['patient', patientId], opened)} />}
        />
      ) : (
        <ProblemAlert error={patient.error} />
      )}
      {patient.data && (
        <Space direction="vertical" size="large" style={{ width: '100%' }}>
          <Demographics patient={patient.data} />
          <Typography.Title level={3} style={{ fontSize: 16 }}>
            {t('records')}
          </Typography.Title>
          <Records patientId={patientId} />
        </Space>
      )}
    </Card>
  );
}
