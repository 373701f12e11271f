// A clinician's patients: search (server-side paging over the search index, among
// the patients who granted them access) and registration.
import { useState } from 'react';
import { Button, Card, DatePicker, Empty, Form, Input, Select, Space, Table, Typography, message } from 'antd';
import { useMutation, useQuery } from '@tanstack/react-query';
import { Link, useNavigate } from 'react-router-dom';
import type { Dayjs } from 'dayjs';

import { CommandIntent, api, unwrap, type Schemas } from '../api/client';
import { ProblemAlert } from '../components/ProblemAlert';
import { ruleOf } from '../components/rules';
import { useI18n } from '../i18n';
import { patientQuery, validMrn, validShortText, type PatientQuery } from '../validation';

const PAGE = 20;
type PatientView = Schemas['PatientView'];

function SearchPatients() {
  const { t, date } = useI18n();
  const [query, setQuery] = useState<PatientQuery | null>(null);
  const [page, setPage] = useState(1);
  const found = useQuery({
    queryKey: ['patients', query, page],
    enabled: query !== null,
    queryFn: () =>
      unwrap(api.GET('/v1/patients', { params: { query: { ...query, _count: PAGE, _offset: (page - 1) * PAGE } } })),
  });
  const rows: PatientView[] = found.data?.patients ?? [];
  // Server paging without a total: one more page is offered while pages come full.
  const total = (page - 1) * PAGE + rows.length + (found.data?.next_offset != null ? 1 : 0);
  return (
    <Card title={<Typography.Title level={2} style={{ fontSize: 18, margin: 0 }}>{t('searchPatients')}</Typography.Title>}>
      <Space direction="vertical" style={{ width: '100%' }}>
        <Input.Search
          aria-label={t('searchPatients')}
          placeholder={t('searchHint')}
          enterButton={t('search')}
          allowClear
          onSearch={(text) => {
            setPage(1);
            setQuery(patientQuery(text));
          }}
        />
        <ProblemAlert error={found.error} />
        <Table<PatientView>
          rowKey="patient_id"
          loading={found.isFetching}
          dataSource={rows}
          locale={{ emptyText: <Empty description={query ? t('noPatients') : t('searchHint')} /> }}
          pagination={{ current: page, pageSize: PAGE, total, onChange: setPage, showSizeChanger: false }}
          columns={[
            {
              title: t('name'),
              render: (_, row) => <Link to={`/patients/${row.patient_id}`}>{row.demographics?.full_name ?? row.patient_id}</Link>,
            },
            { title: t('birthDate'), render: (_, row) => (row.demographics ? date(row.demographics.date_of_birth) : '') },
            { title: t('gender'), render: (_, row) => (row.demographics ? t(row.demographics.gender) : '') },
            { title: t('mrn'), render: (_, row) => row.identifiers?.mrn ?? '' },
            { title: t('hospital'), dataIndex: 'hospital_id' },
          ]}
        />
      </Space>
    </Card>
  );
}

interface NewPatient {
  /** The patient's own account, when they have one: their patient id is its user id. */
  patient_id?: string;
  full_name: string;
  date_of_birth: Dayjs;
  gender: 'male' | 'female' | 'other' | 'unknown';
  mrn: string;
  hospital_id: string;
}

function RegisterPatient() {
  const { t } = useI18n();
  const navigate = useNavigate();
  const [form] = Form.useForm<NewPatient>();
  const [intent] = useState(() => new CommandIntent());
  const register = useMutation({
    mutationFn: (values: NewPatient) => {
      const body = {
        patient_id: values.patient_id?.trim() || null,
        hospital_id: values.hospital_id,
        identifiers: { mrn: values.mrn, external: [] },
        demographics: {
          full_name: values.full_name,
          date_of_birth: values.date_of_birth.format('YYYY-MM-DD'),
          gender: values.gender,
          phone_number: null,
          email: null,
          address: null,
        },
      };
      return intent.send(body, (headers) => unwrap(api.POST('/v1/patients', { body, headers })));
    },
    onSuccess: (receipt) => {
      void message.success(t('registered'));
      form.resetFields();
      navigate(`/patients/${receipt.aggregate_id}`);
    },
  });
  return (
    <Card title={<Typography.Title level={2} style={{ fontSize: 18, margin: 0 }}>{t('registerPatient')}</Typography.Title>}>
      <Form<NewPatient> name="patient" form={form} layout="inline" onFinish={(values) => register.mutate(values)} initialValues={{ gender: 'unknown', hospital_id: 'HOSP-001' }}>
        <Form.Item label={t('name')} name="full_name" rules={[ruleOf(validShortText, t('nameRequired'))]}>
          <Input />
        </Form.Item>
        <Form.Item label={t('birthDate')} name="date_of_birth" rules={[{ required: true, message: t('birthDateRequired') }]}>
          <DatePicker />
        </Form.Item>
        <Form.Item label={t('gender')} name="gender">
          <Select
            style={{ width: 120 }}
            options={(['male', 'female', 'other', 'unknown'] as const).map((value) => ({ value, label: t(value) }))}
          />
        </Form.Item>
        <Form.Item label={t('mrn')} name="mrn" rules={[ruleOf(validMrn, t('mrnRule'))]}>
          <Input />
        </Form.Item>
        <Form.Item
          label={t('patientAccount')}
          name="patient_id"
          rules={[{ pattern: /^[0-9a-fA-F-]{36}$/, message: t('patientAccountRule') }]}
        >
          <Input style={{ width: 320 }} />
        </Form.Item>
        <Form.Item label={t('hospital')} name="hospital_id" rules={[{ required: true, pattern: /^[A-Za-z0-9_-]{1,64}$/, message: t('hospitalRule') }]}>
          <Input style={{ width: 120 }} />
        </Form.Item>
        <Button type="primary" htmlType="submit" loading={register.isPending}>
          {t('register')}
        </Button>
      </Form>
      <ProblemAlert error={register.error} />
    </Card>
  );
}

export default function Patients() {
  return (
    <Space direction="vertical" size="large" style={{ width: '100%' }}>
      <SearchPatients />
      <RegisterPatient />
    </Space>
  );
}
