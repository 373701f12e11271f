// Sign-in: password, then a TOTP code — with enrolment (QR code and key) the first
// time. A lockout or a wrong code is shown as the server words it.
import { useState } from 'react';
import { Alert, Button, Card, Form, Input, QRCode, Space, Typography } from 'antd';
import { useMutation } from '@tanstack/react-query';

import { api, unwrap, type Schemas } from '../api/client';
import { ProblemAlert } from '../components/ProblemAlert';
import { ruleOf } from '../components/rules';
import { useI18n } from '../i18n';
import { useSession } from '../session';
import { validTotp, validUsername } from '../validation';

interface Credentials {
  username: string;
  password: string;
}

export default function SignIn() {
  const { t } = useI18n();
  const { signedIn, expired } = useSession();
  const [challenge, setChallenge] = useState<Schemas['Challenge'] | null>(null);
  const [enrolment, setEnrolment] = useState<Schemas['Enrolment'] | null>(null);

  const login = useMutation({
    mutationFn: async (credentials: Credentials) => {
      const next = await unwrap(api.POST('/v1/auth/login', { body: credentials }));
      const enrolling = next.enrolment_required ? await unwrap(api.POST('/v1/auth/mfa/enrolment', { body: { mfa_token: next.mfa_token } })) : null;
      return { next, enrolling };
    },
    onSuccess: ({ next, enrolling }) => {
      setChallenge(next);
      setEnrolment(enrolling);
    },
  });
  const verify = useMutation({
    mutationFn: (code: string) => unwrap(api.POST('/v1/auth/mfa/verification', { body: { mfa_token: challenge?.mfa_token ?? '', code } })),
    onSuccess: signedIn,
  });

  return (
    <main style={{ display: 'flex', justifyContent: 'center', padding: 48 }}>
      <Card style={{ width: 420 }}>
        <Typography.Title level={1} style={{ fontSize: 24 }}>
          {t('appName')}
        </Typography.Title>
        <Space direction="vertical" size="middle" style={{ width: '100%' }}>
          {expired && <Alert type="warning" showIcon message={t('sessionExpired')} />}
          {!challenge ? (
            <Form<Credentials> name="signIn" layout="vertical" onFinish={(values) => login.mutate(values)} requiredMark={false}>
              <Form.Item
                label={t('username')}
                name="username"
                rules={[ruleOf(validUsername, t('usernameRequired'))]}
              >
                <Input autoComplete="username" autoFocus />
              </Form.Item>
              <Form.Item
                label={t('password')}
                name="password"
                rules={[ruleOf((value) => value.length >= 12, t('passwordRequired'))]}
              >
                <Input.Password autoComplete="current-password" />
              </Form.Item>
              <ProblemAlert error={login.error} />
              <Button type="primary" htmlType="submit" loading={login.isPending} block style={{ marginTop: 16 }}>
                {t('signIn')}
              </Button>
            </Form>
          ) : (
            <Form<{ code: string }> name="mfa" layout="vertical" onFinish={({ code }) => verify.mutate(code)} requiredMark={false}>
              {enrolment && (
                <section aria-label={t('enrolTitle')}>
                  <Typography.Title level={2} style={{ fontSize: 18 }}>
                    {t('enrolTitle')}
                  </Typography.Title>
                  <Typography.Paragraph>{t('enrolHint')}</Typography.Paragraph>
                  <QRCode value={enrolment.otpauth_uri} aria-label="otpauth QR" />
                  <Typography.Paragraph>
                    {t('enrolKey')}: <Typography.Text code copyable data-testid="totp-secret">{enrolment.secret}</Typography.Text>
                  </Typography.Paragraph>
                </section>
              )}
              <Form.Item
                label={t('mfaCode')}
                name="code"
                rules={[ruleOf(validTotp, t('mfaCodeRule'))]}
              >
                <Input inputMode="numeric" autoComplete="one-time-code" maxLength={6} autoFocus />
              </Form.Item>
              <ProblemAlert error={verify.error} />
              <Button type="primary" htmlType="submit" loading={verify.isPending} block style={{ marginTop: 16 }}>
                {t('verify')}
              </Button>
            </Form>
          )}
        </Space>
      </Card>
    </main>
  );
}
