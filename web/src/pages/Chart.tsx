// A patient's chart: demographics and the records index, under the caller's grants.
// Without a grant the server refuses; a physician or nurse may then break the glass
// with a stated reason, after a warning that the patient will see it.
import { Alert, Button, Card, DatePicker, Descriptions, Form, Input, Result, Select, Space, Typography, message } from 'antd';
import { useState } from 'react';
import type { Dayjs } from 'dayjs';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { Link, useParams } from 'react-router-dom';

import { CommandIntent, ProblemError, api, unwrap, type Schemas } from '../api/client';
import { ProblemAlert } from '../components/ProblemAlert';
import { ReasonDialog } from '../components/ReasonDialog';
import { RecordList } from '../components/RecordList';
import { ruleOf } from '../components/rules';
import { useI18n } from '../i18n';
import { useSession } from '../session';
import { DEFAULT_ACCESS_DAYS, daysFromNow, validIcd10, validShortText } from '../validation';

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

function BreakGlass({ patientId, onOpened }: { patientId: string; onOpened: (patient: PatientView) => void }) {
  const { t } = useI18n();
  return (
    <ReasonDialog
      name="breakGlass"
      title={t('breakGlass')}
      warning={t('breakGlassWarning')}
      reasonLabel={t('reason')}
      reasonRule={t('reasonRequired')}
      confirm={t('confirmBreakGlass')}
      act={(reason) => unwrap(api.POST('/v1/patients/{patient_id}/break-glass', { params: { path: { patient_id: patientId } }, body: { reason } }))}
      onDone={onOpened}
    />
  );
}

/** Asks the patient for read access for 30 days, with a reason they will see. */
function RequestAccess({ patientId }: { patientId: string }) {
  const [intent] = useState(() => new CommandIntent());
  const { t } = useI18n();
  return (
    <ReasonDialog
      name="accessRequest"
      title={t('requestAccess')}
      reasonLabel={t('requestReason')}
      reasonRule={t('textRequired')}
      confirm={t('sendRequest')}
      danger={false}
      act={(reason) => {
        const body = { patient_id: patientId, scopes: ['read' as const], reason, requested_until: daysFromNow(DEFAULT_ACCESS_DAYS) };
        // The end date moves with the clock: the same request sent again is the same patient and reason.
        return intent.send({ patientId, reason }, (headers) => unwrap(api.POST('/v1/access-requests', { body, headers })));
      }}
      onDone={() => void message.success(t('requestSent'))}
    />
  );
}

const RECORD_TYPES = ['consultation', 'diagnosis', 'lab_result', 'imaging', 'prescription', 'surgery', 'discharge_summary', 'vaccination'] as const;

interface NewRecord {
  record_type: (typeof RECORD_TYPES)[number];
  visit_date: Dayjs;
  title: string;
  diagnosis_code?: string;
  diagnosis_description?: string;
}

/** A new record in the physician's own name (the API stamps the author from the session). */
function CreateRecord({ patient }: { patient: PatientView }) {
  const { t } = useI18n();
  const { session } = useSession();
  const queries = useQueryClient();
  const [form] = Form.useForm<NewRecord>();
  const [intent] = useState(() => new CommandIntent());
  const create = useMutation({
    mutationFn: (values: NewRecord) => {
      const body = {
        patient_id: patient.patient_id,
        doctor_id: session?.claims.sub ?? '',
        hospital_id: patient.hospital_id ?? '',
        record_type: values.record_type,
        visit_date: values.visit_date.format('YYYY-MM-DD'),
        content: {
          title: values.title,
          description: null,
          diagnosis: values.diagnosis_code ? { code: values.diagnosis_code, description: values.diagnosis_description ?? values.title } : null,
          treatment: null,
          medications: [],
        },
      };
      return intent.send(body, (headers) => unwrap(api.POST('/v1/records', { body, headers })));
    },
    onSuccess: () => {
      form.resetFields();
      void queries.invalidateQueries({ queryKey: ['records', patient.patient_id] });
    },
  });
  return (
    <section aria-label={t('newRecord')}>
      <Typography.Title level={3} style={{ fontSize: 16 }}>
        {t('newRecord')}
      </Typography.Title>
      <Form<NewRecord> name="record" form={form} layout="inline" onFinish={(values) => create.mutate(values)} initialValues={{ record_type: 'consultation' }}>
        <Form.Item label={t('recordType')} name="record_type">
          <Select style={{ width: 180 }} options={RECORD_TYPES.map((value) => ({ value, label: value }))} />
        </Form.Item>
        <Form.Item label={t('visitDate')} name="visit_date" rules={[{ required: true, message: t('visitDateRequired') }]}>
          <DatePicker />
        </Form.Item>
        <Form.Item label={t('title')} name="title" rules={[ruleOf(validShortText, t('titleRequired'))]}>
          <Input />
        </Form.Item>
        <Form.Item label={t('icd10')} name="diagnosis_code" rules={[ruleOf((code) => code === '' || validIcd10(code), t('icd10Rule'))]}>
          <Input style={{ width: 110 }} />
        </Form.Item>
        <Form.Item label={t('diagnosis')} name="diagnosis_description">
          <Input />
        </Form.Item>
        <Button type="primary" htmlType="submit" loading={create.isPending}>
          {t('createRecord')}
        </Button>
      </Form>
      <ProblemAlert error={create.error} />
      {create.data && (
        <Alert
          type="success"
          showIcon
          message={t('recordCreated')}
          description={
            <Space>
              <span data-testid="created-record">{create.data.aggregate_id}</span>
              <Link to={`/records/${create.data.aggregate_id}`}>{t('openTheRecord')}</Link>
            </Space>
          }
        />
      )}
    </section>
  );
}

export default function Chart() {
  const { t } = useI18n();
  const { patientId = '' } = useParams();
  const queries = useQueryClient();
  const { session } = useSession();
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
          extra={
            <Space>
              <RequestAccess patientId={patientId} />
              <BreakGlass patientId={patientId} onOpened={(opened) => queries.setQueryData(['patient', patientId], opened)} />
            </Space>
          }
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
          <RecordList patientId={patientId} />
          {(session?.claims.role === 'physician' || session?.claims.role === 'nurse') && <CreateRecord patient={patient.data} />}
        </Space>
      )}
    </Card>
  );
}
