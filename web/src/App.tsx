// The application shell: providers, the signed-in layout and one lazily loaded
// chunk per route. Each role sees the screens its role allows; the server
// enforces every rule again.
import { lazy, Suspense, type ReactNode } from 'react';
import { Button, Layout, Menu, Result, Segmented, Space, Spin, Typography } from 'antd';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { BrowserRouter, Link, Navigate, Route, Routes, useLocation } from 'react-router-dom';

import { I18nProvider, useI18n, type Language, type MessageKey } from './i18n';
import { SessionProvider, useSession } from './session';

const SignIn = lazy(() => import('./pages/SignIn'));
const Patients = lazy(() => import('./pages/Patients'));
const Chart = lazy(() => import('./pages/Chart'));
const RecordPage = lazy(() => import('./pages/Record'));
const MyRecords = lazy(() => import('./pages/MyRecords'));
const AccessLog = lazy(() => import('./pages/AccessLog'));
const Audit = lazy(() => import('./pages/Audit'));
const Grants = lazy(() => import('./pages/Grants'));
const MyAccess = lazy(() => import('./pages/MyAccess'));
const Operations = lazy(() => import('./pages/Operations'));
const Security = lazy(() => import('./pages/Security'));
const Accounts = lazy(() => import('./pages/Accounts'));
const Federated = lazy(() => import('./pages/Federated'));

const queries = new QueryClient({ defaultOptions: { queries: { refetchOnWindowFocus: false, retry: 1 } } });

interface Screen {
  path: string;
  label: MessageKey;
  roles: string[];
}

const SCREENS: Screen[] = [
  { path: '/patients', label: 'patients', roles: ['physician', 'nurse'] },
  { path: '/my/records', label: 'myRecords', roles: ['patient'] },
  { path: '/my/access-log', label: 'whoSawMyData', roles: ['patient'] },
  { path: '/my/grants', label: 'myGrants', roles: ['patient'] },
  { path: '/my/access', label: 'myAccess', roles: ['physician', 'nurse'] },
  { path: '/audit', label: 'integrity', roles: ['auditor'] },
  { path: '/operations', label: 'operations', roles: ['admin', 'auditor'] },
  { path: '/security', label: 'securityEvents', roles: ['admin', 'auditor'] },
  { path: '/accounts', label: 'accounts', roles: ['admin'] },
  { path: '/federated', label: 'federatedLearning', roles: ['researcher', 'auditor'] },
];

function LanguageSwitch() {
  const { language, setLanguage, t } = useI18n();
  return (
    <Segmented<Language>
      aria-label={t('language')}
      value={language}
      onChange={setLanguage}
      options={[
        { label: '中文', value: 'zh' },
        { label: 'English', value: 'en' },
      ]}
    />
  );
}

function Shell({ children }: { children: ReactNode }) {
  const { t } = useI18n();
  const { session, signOut } = useSession();
  const location = useLocation();
  const role = session?.claims.role ?? '';
  const screens = SCREENS.filter((screen) => screen.roles.includes(role));
  return (
    <Layout style={{ minHeight: '100vh' }}>
      <Layout.Header style={{ display: 'flex', alignItems: 'center', gap: 24, background: '#fff', borderBottom: '1px solid #f0f0f0' }}>
        <Typography.Text strong style={{ fontSize: 18 }}>
          {t('appName')}
        </Typography.Text>
        <nav aria-label={t('appName')} style={{ flex: 1 }}>
          <Menu
            mode="horizontal"
            selectedKeys={screens.filter((s) => location.pathname.startsWith(s.path)).map((s) => s.path)}
            items={screens.map((screen) => ({ key: screen.path, label: <Link to={screen.path}>{t(screen.label)}</Link> }))}
          />
        </nav>
        <Space>
          <LanguageSwitch />
          {session && (
            <Button onClick={() => void signOut()}>
              {t('signOut')}
            </Button>
          )}
        </Space>
      </Layout.Header>
      <Layout.Content style={{ padding: 24 }}>
        <main>
          <Suspense fallback={<Spin aria-label={t('loading')} />}>{children}</Suspense>
        </main>
      </Layout.Content>
    </Layout>
  );
}

function Home() {
  const { session } = useSession();
  const { t } = useI18n();
  const screen = SCREENS.find((s) => s.roles.includes(session?.claims.role ?? ''));
  return screen ? <Navigate to={screen.path} replace /> : <Result status="info" title={session?.claims.role} subTitle={t('noScreensYet')} />;
}

function Screens() {
  const { session } = useSession();
  const { t } = useI18n();
  if (!session) {
    return (
      <Suspense fallback={<Spin aria-label={t('loading')} />}>
        <div style={{ position: 'absolute', top: 16, right: 16 }}>
          <LanguageSwitch />
        </div>
        <SignIn />
      </Suspense>
    );
  }
  return (
    <Shell>
      <Routes>
        <Route path="/" element={<Home />} />
        <Route path="/patients" element={<Patients />} />
        <Route path="/patients/:patientId" element={<Chart />} />
        <Route path="/records/:recordId" element={<RecordPage />} />
        <Route path="/my/records" element={<MyRecords />} />
        <Route path="/my/access-log" element={<AccessLog />} />
        <Route path="/audit" element={<Audit />} />
        <Route path="/my/grants" element={<Grants />} />
        <Route path="/my/access" element={<MyAccess />} />
        <Route path="/operations" element={<Operations />} />
        <Route path="/security" element={<Security />} />
        <Route path="/accounts" element={<Accounts />} />
        <Route path="/federated" element={<Federated />} />
        <Route path="*" element={<Navigate to="/" replace />} />
      </Routes>
    </Shell>
  );
}

export function App() {
  return (
    <QueryClientProvider client={queries}>
      <I18nProvider>
        <SessionProvider>
          <BrowserRouter>
            <Screens />
          </BrowserRouter>
        </SessionProvider>
      </I18nProvider>
    </QueryClientProvider>
  );
}
