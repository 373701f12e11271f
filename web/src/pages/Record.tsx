// One record: what it says now or at a chosen instant (point-in-time replay from
// the log), its versions with a diff between any two, its attachments (upload,
// download, a server-drawn preview of DICOM and other images), and amendment.
// Every read here is recorded by the server as a disclosure the patient can see.
import { useEffect, useState } from 'react';
import { Alert, Button, Card, DatePicker, Descriptions, Empty, Form, Image, Input, Result, Select, Space, Table, Tag, Typography } from 'antd';
import type { Dayjs } from 'dayjs';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { Link, useParams } from 'react-router-dom';

import { CommandIntent, ProblemError, api, unwrap, type Schemas } from '../api/client';
import { ProblemAlert } from '../components/ProblemAlert';
import { ReasonDialog } from '../components/ReasonDialog';
import { ruleOf } from '../components/rules';
import { useI18n } from '../i18n';
import { diffContent, linesOf, type Line } from '../records/diff';
import { useSession } from '../session';
import { validIcd10, validLongText, validShortText } from '../validation';

type RecordView = Schemas['RecordView'];
type Version = Schemas['VersionView'];
type Content = Schemas['RecordContent'];
type AttachmentView = Schemas['AttachmentView'];

const LINE_STYLE: Record<Line['op'], { background?: string; prefix: string }> = {
  same: { prefix: '  ' },
  added: { background: '#d9f7be', prefix: '+ ' },
  removed: { background: '#ffccc7', prefix: '− ' },
};

function ContentView({ content }: { content: Content }) {
  const { t } = useI18n();
  return (
    <Descriptions bordered column={1} size="small">
      <Descriptions.Item label={t('title')}>{content.title}</Descriptions.Item>
      <Descriptions.Item label={t('description')}>{content.description ?? '—'}</Descriptions.Item>
      <Descriptions.Item label={t('diagnosis')}>{linesOf(content, 'diagnosis')[0] ?? '—'}</Descriptions.Item>
      <Descriptions.Item label={t('treatment')}>{content.treatment ?? '—'}</Descriptions.Item>
      <Descriptions.Item label={t('medications')}>{linesOf(content, 'medications').join('; ') || '—'}</Descriptions.Item>
    </Descriptions>
  );
}

/** Two versions side by side as a mark-up: removed lines struck, added lines marked. */
function VersionDiff({ versions }: { versions: Version[] }) {
  const { t } = useI18n();
  const numbers = versions.map((v) => v.version);
  const [from, setFrom] = useState(numbers.length > 1 ? numbers[numbers.length - 2] : numbers[0]);
  const [to, setTo] = useState(numbers[numbers.length - 1]);
  const before = versions.find((v) => v.version === from);
  const after = versions.find((v) => v.version === to);
  const changes = diffContent(before?.content, after?.content);
  const options = numbers.map((n) => ({ value: n, label: `v${n}` }));
  return (
    <section aria-label={t('compareVersions')}>
      <Space wrap>
        <label htmlFor="diff-from">{t('fromVersion')}</label>
        <Select id="diff-from" value={from} onChange={setFrom} options={options} style={{ width: 90 }} />
        <label htmlFor="diff-to">{t('toVersion')}</label>
        <Select id="diff-to" value={to} onChange={setTo} options={options} style={{ width: 90 }} />
      </Space>
      {after?.reason && (
        <Typography.Paragraph style={{ marginTop: 8 }}>
          {t('amendmentReason')}: {after.reason}
        </Typography.Paragraph>
      )}
      <Table
        rowKey="field"
        size="small"
        pagination={false}
        style={{ marginTop: 8 }}
        dataSource={changes}
        columns={[
          { title: t('field'), render: (_, change) => <>{t(change.field)} {change.changed && <Tag color="#ad4e00">{t('changed')}</Tag>}</> },
          {
            title: t('change'),
            render: (_, change) =>
              change.lines.length === 0 ? (
                '—'
              ) : (
                <pre data-testid={`diff-${change.field}`} style={{ margin: 0, whiteSpace: 'pre-wrap', fontFamily: 'inherit' }}>
                  {change.lines.map((line, index) => (
                    <div key={index} style={{ background: LINE_STYLE[line.op].background }}>
                      {line.op === 'removed' ? <del>{LINE_STYLE[line.op].prefix + line.text}</del> : line.op === 'added' ? <ins style={{ textDecoration: 'none' }}>{LINE_STYLE[line.op].prefix + line.text}</ins> : LINE_STYLE[line.op].prefix + line.text}
                    </div>
                  ))}
                </pre>
              ),
          },
        ]}
      />
    </section>
  );
}

interface AmendForm {
  title: string;
  description?: string;
  diagnosis_code?: string;
  diagnosis_description?: string;
  treatment?: string;
  reason: string;
}

function Amend({ record, current }: { record: RecordView; current: Content }) {
  const { t } = useI18n();
  const queries = useQueryClient();
  const [form] = Form.useForm<AmendForm>();
  const [intent] = useState(() => new CommandIntent());
  const amend = useMutation({
    mutationFn: (values: AmendForm) => {
      const body = {
        reason: values.reason,
        content: {
          ...current,
          title: values.title,
          description: values.description?.trim() ? values.description : null,
          treatment: values.treatment?.trim() ? values.treatment : null,
          diagnosis: values.diagnosis_code ? { code: values.diagnosis_code, description: values.diagnosis_description || values.title } : null,
        },
      };
      return intent.send(body, (headers) => unwrap(api.POST('/v1/records/{record_id}/amendments', { params: { path: { record_id: record.record_id } }, body, headers })));
    },
    onSuccess: () => {
      form.resetFields(['reason']);
      void queries.invalidateQueries({ queryKey: ['record', record.record_id] });
    },
  });
  return (
    <section aria-label={t('amendRecord')}>
      <Typography.Title level={3} style={{ fontSize: 16 }}>
        {t('amendRecord')}
      </Typography.Title>
      <Form<AmendForm>
        name="amend"
        form={form}
        layout="vertical"
        style={{ maxWidth: 640 }}
        onFinish={(values) => amend.mutate(values)}
        initialValues={{
          title: current.title,
          description: current.description ?? '',
          treatment: current.treatment ?? '',
          diagnosis_code: current.diagnosis?.code ?? '',
          diagnosis_description: current.diagnosis?.description ?? '',
        }}
      >
        <Form.Item label={t('title')} name="title" rules={[ruleOf(validShortText, t('titleRequired'))]}>
          <Input />
        </Form.Item>
        <Form.Item label={t('description')} name="description" rules={[ruleOf((text) => text === '' || validLongText(text), t('longTextRule'))]}>
          <Input.TextArea rows={3} />
        </Form.Item>
        <Space align="start">
          <Form.Item label={t('icd10')} name="diagnosis_code" rules={[ruleOf((code) => code === '' || validIcd10(code), t('icd10Rule'))]}>
            <Input style={{ width: 110 }} />
          </Form.Item>
          <Form.Item label={t('diagnosis')} name="diagnosis_description">
            <Input style={{ width: 360 }} />
          </Form.Item>
        </Space>
        <Form.Item label={t('treatment')} name="treatment" rules={[ruleOf((text) => text === '' || validLongText(text), t('longTextRule'))]}>
          <Input.TextArea rows={2} />
        </Form.Item>
        <Form.Item label={t('amendmentReason')} name="reason" rules={[ruleOf(validShortText, t('amendReasonRequired'))]}>
          <Input />
        </Form.Item>
        <Button type="primary" htmlType="submit" loading={amend.isPending}>
          {t('saveAmendment')}
        </Button>
      </Form>
      <ProblemAlert error={amend.error} />
      {amend.isSuccess && <Alert type="success" showIcon message={t('amended')} />}
    </section>
  );
}

const PREVIEWABLE = /^(application\/dicom|image\/(png|jpeg))$/;

/** The preview PNG the server draws, shown from an object URL (the request carries the session's token). */
function Preview({ recordId, attachment }: { recordId: string; attachment: AttachmentView }) {
  const { t } = useI18n();
  const preview = useQuery({
    queryKey: ['preview', recordId, attachment.attachment_id],
    queryFn: async () =>
      URL.createObjectURL(
        await unwrap(
          api.GET('/v1/records/{record_id}/attachments/{attachment_id}/preview', {
            params: { path: { record_id: recordId, attachment_id: attachment.attachment_id }, query: { size: 512 } },
            parseAs: 'blob',
          }),
        ),
      ),
    staleTime: Infinity,
    retry: false,
  });
  const url = preview.data;
  useEffect(
    () => () => {
      if (url) URL.revokeObjectURL(url);
    },
    [url],
  );
  if (preview.error) return <ProblemAlert error={preview.error} />;
  if (!url) return <Typography.Text>{t('loading')}</Typography.Text>;
  return <Image src={url} alt={t('previewOf') + ' ' + attachment.attachment_id} width={256} />;
}

async function download(recordId: string, attachment: AttachmentView): Promise<void> {
  const blob = await unwrap(
    api.GET('/v1/records/{record_id}/attachments/{attachment_id}/content', {
      params: { path: { record_id: recordId, attachment_id: attachment.attachment_id } },
      parseAs: 'blob',
    }),
  );
  const link = document.createElement('a');
  link.href = URL.createObjectURL(blob);
  link.download = `${attachment.attachment_id}${attachment.mime_type === 'application/dicom' ? '.dcm' : ''}`;
  link.click();
  URL.revokeObjectURL(link.href);
}

function Attachments({ record, canWrite }: { record: RecordView; canWrite: boolean }) {
  const { t } = useI18n();
  const queries = useQueryClient();
  const [shown, setShown] = useState<string | null>(null);
  const [file, setFile] = useState<File | null>(null);
  // A new key empties the file input once its file is stored.
  const [uploads, setUploads] = useState(0);
  const fetchFile = useMutation({ mutationFn: (attachment: AttachmentView) => download(record.record_id, attachment) });
  const [intent] = useState(() => new CommandIntent());
  const upload = useMutation({
    // The key becomes the attachment's id: the same file sent again after a dropped
    // connection is stored once.
    mutationFn: (chosen: File) =>
      intent.send({ name: chosen.name, size: chosen.size, modified: chosen.lastModified }, (key) =>
        unwrap(
          api.POST('/v1/records/{record_id}/attachments/content', {
            params: { path: { record_id: record.record_id }, query: { filename: chosen.name } },
            // The body is the file itself, streamed by the browser; the server seals it as it arrives.
            body: chosen as unknown as number[],
            bodySerializer: (body: unknown) => body as BodyInit,
            headers: { ...key, 'content-type': chosen.type || (chosen.name.toLowerCase().endsWith('.dcm') ? 'application/dicom' : 'application/octet-stream') },
          }),
        ),
      ),
    onSuccess: () => {
      setFile(null);
      setUploads((n) => n + 1);
      void queries.invalidateQueries({ queryKey: ['record', record.record_id] });
    },
  });
  return (
    <section aria-label={t('attachments')}>
      <Typography.Title level={3} style={{ fontSize: 16 }}>
        {t('attachments')}
      </Typography.Title>
      <Table
        rowKey="attachment_id"
        size="small"
        pagination={false}
        dataSource={record.attachments}
        locale={{ emptyText: <Empty description={t('noAttachments')} /> }}
        columns={[
          { title: t('fileType'), render: (_, a) => a.mime_type ?? '—' },
          { title: t('size'), render: (_, a) => `${(a.size_bytes / 1024).toFixed(1)} KiB` },
          { title: 'SHA-256', render: (_, a) => <Typography.Text code>{a.sha256.slice(0, 16)}…</Typography.Text> },
          {
            title: t('actions'),
            render: (_, a) => (
              <Space>
                <Button size="small" onClick={() => fetchFile.mutate(a)} loading={fetchFile.isPending && fetchFile.variables === a}>
                  {t('download')}
                </Button>
                {a.mime_type && PREVIEWABLE.test(a.mime_type) && (
                  <Button size="small" onClick={() => setShown(shown === a.attachment_id ? null : a.attachment_id)} aria-expanded={shown === a.attachment_id}>
                    {t('preview')}
                  </Button>
                )}
              </Space>
            ),
          },
        ]}
        expandable={{
          expandedRowKeys: shown ? [shown] : [],
          showExpandColumn: false,
          expandedRowRender: (a) => <Preview recordId={record.record_id} attachment={a} />,
        }}
      />
      <ProblemAlert error={fetchFile.error} />
      {canWrite && (
        <Space style={{ marginTop: 12 }}>
          <label htmlFor="attachment-file">{t('chooseFile')}</label>
          <input key={uploads} id="attachment-file" type="file" onChange={(event) => setFile(event.target.files?.[0] ?? null)} />
          <Button onClick={() => file && upload.mutate(file)} disabled={!file} loading={upload.isPending}>
            {t('upload')}
          </Button>
        </Space>
      )}
      <ProblemAlert error={upload.error} />
    </section>
  );
}

export default function RecordPage() {
  const { t, date } = useI18n();
  const { recordId = '' } = useParams();
  const { session } = useSession();
  const [asOf, setAsOf] = useState<Dayjs | null>(null);
  const at = asOf?.toISOString();
  const record = useQuery({
    queryKey: ['record', recordId, at ?? 'now'],
    queryFn: () => unwrap(api.GET('/v1/records/{record_id}', { params: { path: { record_id: recordId }, query: at ? { at_time: at } : {} } })),
    retry: false,
  });
  const view = record.data;
  const role = session?.claims.role ?? '';
  const clinician = role === 'physician' || role === 'nurse';
  const latest = view?.versions[view.versions.length - 1];
  const missing = record.error instanceof ProblemError && record.error.status === 404;
  const refused = record.error instanceof ProblemError && record.error.status === 403;
  const queries = useQueryClient();
  return (
    <Card
      title={<Typography.Title level={2} style={{ fontSize: 18, margin: 0 }}>{t('record')}</Typography.Title>}
      extra={view?.patient_id && clinician ? <Link to={`/patients/${view.patient_id}`}>{t('backToChart')}</Link> : undefined}
    >
      <Space direction="vertical" size="large" style={{ width: '100%' }}>
        <Space wrap>
          <label htmlFor="as-of">{t('asOf')}</label>
          <DatePicker id="as-of" showTime value={asOf} onChange={setAsOf} />
          {asOf && <Button onClick={() => setAsOf(null)}>{t('now')}</Button>}
        </Space>
        {asOf && view && (
          <Alert type="info" showIcon message={`${t('replayedAt')} ${asOf.format('YYYY-MM-DD HH:mm:ss')}`} description={`${t('position')} ${view.position} · v${latest?.version ?? 0}`} />
        )}
        {record.isLoading && <Typography.Text>{t('loading')}</Typography.Text>}
        {missing && asOf ? (
          <Alert type="warning" showIcon message={t('notYetAt')} />
        ) : refused && clinician && !asOf ? (
          <Result
            status="403"
            title={t('refused')}
            subTitle={record.error instanceof ProblemError ? record.error.problem.detail : ''}
            extra={
              <ReasonDialog
                name="recordBreakGlass"
                title={t('breakGlass')}
                warning={t('breakGlassWarning')}
                reasonLabel={t('reason')}
                reasonRule={t('reasonRequired')}
                confirm={t('confirmBreakGlass')}
                act={(reason) => unwrap(api.POST('/v1/records/{record_id}/break-glass', { params: { path: { record_id: recordId } }, body: { reason } }))}
                onDone={(opened) => queries.setQueryData(['record', recordId, 'now'], opened)}
              />
            }
          />
        ) : (
          <ProblemAlert error={record.error} />
        )}
        {view && (
          <>
            <Descriptions bordered column={2} size="small">
              <Descriptions.Item label={t('recordType')}>{view.record_type ?? '—'}</Descriptions.Item>
              <Descriptions.Item label={t('visitDate')}>{view.visit_date ? date(view.visit_date) : '—'}</Descriptions.Item>
              <Descriptions.Item label={t('status')}>{view.status}</Descriptions.Item>
              <Descriptions.Item label={t('author')}>{view.doctor_id ?? '—'}</Descriptions.Item>
              <Descriptions.Item label={t('hospital')}>{view.hospital_id ?? '—'}</Descriptions.Item>
              <Descriptions.Item label={t('versions')}>{view.versions.length}</Descriptions.Item>
            </Descriptions>
            {view.redacted && <Alert type="info" showIcon message={t('contentWithheld')} />}
            {latest?.shredded && <Alert type="warning" showIcon message={t('shredded')} />}
            {latest?.content && <ContentView content={latest.content} />}
            {view.versions.length > 1 && !view.redacted && (
              <>
                <Typography.Title level={3} style={{ fontSize: 16 }}>
                  {t('versionHistory')}
                </Typography.Title>
                <VersionDiff key={view.versions.length} versions={view.versions} />
              </>
            )}
            {!view.redacted && <Attachments record={view} canWrite={clinician && !asOf} />}
            {clinician && !asOf && latest?.content && view.status === 'active' && <Amend key={latest.version} record={view} current={latest.content} />}
          </>
        )}
      </Space>
    </Card>
  );
}
