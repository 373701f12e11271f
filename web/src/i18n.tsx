// Two languages from day one: Simplified Chinese (the default, for the seed's
// users) and English. Ant Design's own texts follow through its locale.
import { createContext, useContext, useEffect, useMemo, useState, type ReactNode } from 'react';
import { ConfigProvider } from 'antd';
import enUS from 'antd/locale/en_US';
import zhCN from 'antd/locale/zh_CN';
import dayjs from 'dayjs';
import 'dayjs/locale/zh-cn';

export type Language = 'zh' | 'en';

const en = {
  appName: 'EMR Ledger',
  language: 'Language',
  signIn: 'Sign in',
  signOut: 'Sign out',
  username: 'Username',
  password: 'Password',
  usernameRequired: 'Enter your username (3–64 letters, digits, _ or -)',
  passwordRequired: 'Enter your password (at least 12 characters)',
  mfaCode: 'Authenticator code',
  mfaCodeRule: 'Six digits from your authenticator app',
  verify: 'Verify',
  enrolTitle: 'Set up two-factor authentication',
  enrolHint: 'Scan this code with an authenticator app, or enter the key by hand, then type the six digits it shows.',
  enrolKey: 'Key',
  sessionExpired: 'Your session has ended. Please sign in again.',
  patients: 'Patients',
  whoSawMyData: 'Who saw my data',
  searchPatients: 'Find a patient',
  searchHint: 'Start of a name, a birth date (YYYY, YYYY-MM or YYYY-MM-DD) or an identifier',
  search: 'Search',
  name: 'Name',
  birthDate: 'Date of birth',
  gender: 'Gender',
  identifier: 'Identifier',
  mrn: 'MRN',
  hospital: 'Hospital',
  noPatients: 'No patient found among those who granted you access.',
  registerPatient: 'Register a patient',
  register: 'Register',
  registered: 'Patient registered',
  patientId: 'Patient id',
  openChart: 'Open the chart',
  chart: 'Chart',
  records: 'Records',
  noRecords: 'No records.',
  visitDate: 'Visit',
  recordType: 'Type',
  status: 'Status',
  breakGlass: 'Break the glass',
  breakGlassWarning:
    'Emergency access without a grant. It is recorded, raised to the security officers, and the patient will see that you read their record.',
  reason: 'Emergency reason',
  reasonRequired: 'State the emergency (1–200 characters)',
  confirmBreakGlass: 'Read in an emergency',
  refused: 'Access refused',
  accessor: 'Reader',
  role: 'Role',
  basis: 'Basis',
  resource: 'What',
  when: 'When',
  noAccess: 'Nobody has read your data yet.',
  male: 'Male',
  female: 'Female',
  other: 'Other',
  unknown: 'Unknown',
  loading: 'Loading…',
  back: 'Back',
  nameRequired: 'Enter the name (1–200 characters)',
  birthDateRequired: 'Choose the date of birth',
  mrnRule: '1–32 letters, digits, - _ . or /',
  hospitalRule: 'The hospital code (1–64 letters, digits, - or _)',
  noScreensYet: 'The screens for this role are still being built; the API serves it in full.',
  patientAccount: 'Patient account (optional)',
  patientAccountRule: 'The id of the patient\'s own account (a UUID)',
  newRecord: 'New record',
  title: 'Title',
  titleRequired: 'Enter a title (1–200 characters)',
  visitDateRequired: 'Choose the visit date',
  icd10: 'ICD-10',
  icd10Rule: 'An ICD-10 code such as J18.9',
  diagnosis: 'Diagnosis',
  createRecord: 'Create record',
  recordCreated: 'Record created',
  textRequired: 'Say why (1–200 characters)',
  myGrants: 'My grants',
  noGrants: 'You have granted no one access.',
  grantee: 'Grantee (user id)',
  granteeRule: 'The user id of the person you grant access (a UUID)',
  scopes: 'Scopes',
  scopesRule: 'Choose at least one scope',
  scopeRead: 'Read',
  scopeWrite: 'Write',
  expires: 'Expires',
  expiresRule: 'Choose when the access ends',
  grantReason: 'Why',
  grant: 'Grant access',
  grantAccess: 'Grant access',
  revoke: 'Revoke',
  revokeReason: 'Why you revoke it',
  confirmRevoke: 'Revoke access',
  operations: 'Operations',
  activeGrants: 'Active grants',
  logHead: 'Log position',
  slowestReadModel: 'Slowest read model behind by',
  recordsPerDay: 'Records per type per day (30 days)',
  readModelLag: 'Read-model lag',
  commitsBehind: 'commits behind',
  patientsPerHospital: 'Patients per hospital',
  activePatients: 'Active',
  erasedPatients: 'Erased',
  securityEvents: 'Security events',
  noSecurityEvents: 'No security events.',
  kind: 'Kind',
  severity: 'Severity',
  summary: 'Summary',
  user: 'User',
  acknowledge: 'Acknowledge',
  truePositive: 'Resolve: real',
  falsePositive: 'Resolve: false alarm',
  integrity: 'Integrity',
  aggregateType: 'Kind',
  aggregateId: 'Id',
  showHistory: 'Show history',
  noEvents: 'No events.',
  eventType: 'Event',
  position: 'Log position',
  actor: 'Actor',
  causation: 'Caused by',
  verification: 'Verification',
  verified: 'Verified: this event is in the anchored log, unaltered',
  notVerified: 'Not verified: a step failed',
  notAnchoredYet: 'Not anchored yet: the anchor worker has not covered this event',
  stepCanonical: 'Canonical bytes',
  stepLeaf: 'Leaf hash',
  stepInclusion: 'Inclusion proof',
  stepHead: 'Tree head',
  stepSignature: 'Head signature',
  ledger: 'Ledger',
  transaction: 'Transaction',
  block: 'Block',
  final: 'final',
  howToVerify: 'How it is checked',
  howToVerifyText:
    'Your browser hashes the event as served, follows the inclusion proof to the root, and checks the Ed25519 signature of the tree head (docs/receipts.md). Compare the signing key with the one your organisation trusts.',
} as const;

export type MessageKey = keyof typeof en;

const zh: Record<MessageKey, string> = {
  appName: 'EMR 账本',
  language: '语言',
  signIn: '登录',
  signOut: '退出',
  username: '用户名',
  password: '密码',
  usernameRequired: '请输入用户名（3–64 个字母、数字、_ 或 -）',
  passwordRequired: '请输入密码（至少 12 个字符）',
  mfaCode: '验证码',
  mfaCodeRule: '身份验证器显示的六位数字',
  verify: '验证',
  enrolTitle: '设置双因素认证',
  enrolHint: '用身份验证器扫描此二维码，或手动输入密钥，然后输入显示的六位数字。',
  enrolKey: '密钥',
  sessionExpired: '会话已结束，请重新登录。',
  patients: '患者',
  whoSawMyData: '谁查看了我的数据',
  searchPatients: '查找患者',
  searchHint: '姓名开头、出生日期（YYYY、YYYY-MM 或 YYYY-MM-DD）或标识符',
  search: '搜索',
  name: '姓名',
  birthDate: '出生日期',
  gender: '性别',
  identifier: '标识符',
  mrn: '病历号',
  hospital: '医院',
  noPatients: '在授权您访问的患者中未找到。',
  registerPatient: '登记患者',
  register: '登记',
  registered: '患者已登记',
  patientId: '患者编号',
  openChart: '打开病历',
  chart: '病历',
  records: '记录',
  noRecords: '暂无记录。',
  visitDate: '就诊日期',
  recordType: '类型',
  status: '状态',
  breakGlass: '紧急访问',
  breakGlassWarning: '无授权的紧急访问将被记录并通报安全人员，患者将看到您查看了其病历。',
  reason: '紧急原因',
  reasonRequired: '请说明紧急情况（1–200 个字符）',
  confirmBreakGlass: '紧急查看',
  refused: '访问被拒绝',
  accessor: '查看者',
  role: '角色',
  basis: '依据',
  resource: '内容',
  when: '时间',
  noAccess: '尚无人查看您的数据。',
  male: '男',
  female: '女',
  other: '其他',
  unknown: '未知',
  loading: '加载中…',
  back: '返回',
  nameRequired: '请输入姓名（1–200 个字符）',
  birthDateRequired: '请选择出生日期',
  mrnRule: '1–32 个字母、数字或 - _ . /',
  hospitalRule: '医院代码（1–64 个字母、数字、- 或 _）',
  noScreensYet: '该角色的界面仍在建设中；API 已完整提供其功能。',
  patientAccount: '患者账号（可选）',
  patientAccountRule: '患者本人账号的编号（UUID）',
  newRecord: '新建记录',
  title: '标题',
  titleRequired: '请输入标题（1–200 个字符）',
  visitDateRequired: '请选择就诊日期',
  icd10: 'ICD-10',
  icd10Rule: 'ICD-10 编码，例如 J18.9',
  diagnosis: '诊断',
  createRecord: '创建记录',
  recordCreated: '记录已创建',
  textRequired: '请说明原因（1–200 个字符）',
  myGrants: '我的授权',
  noGrants: '您尚未授权任何人访问。',
  grantee: '被授权人（用户编号）',
  granteeRule: '被授权人的用户编号（UUID）',
  scopes: '权限范围',
  scopesRule: '请至少选择一项权限',
  scopeRead: '读取',
  scopeWrite: '写入',
  expires: '到期',
  expiresRule: '请选择访问结束的日期',
  grantReason: '原因',
  grant: '授权访问',
  grantAccess: '授权访问',
  revoke: '撤销',
  revokeReason: '撤销原因',
  confirmRevoke: '撤销访问',
  operations: '运行',
  activeGrants: '有效授权',
  logHead: '日志位置',
  slowestReadModel: '最慢读模型落后',
  recordsPerDay: '每日各类型记录数（30 天）',
  readModelLag: '读模型延迟',
  commitsBehind: '落后提交数',
  patientsPerHospital: '各医院患者数',
  activePatients: '在册',
  erasedPatients: '已删除',
  securityEvents: '安全事件',
  noSecurityEvents: '暂无安全事件。',
  kind: '类型',
  severity: '严重程度',
  summary: '摘要',
  user: '用户',
  acknowledge: '确认',
  truePositive: '结案：属实',
  falsePositive: '结案：误报',
  integrity: '完整性',
  aggregateType: '类别',
  aggregateId: '编号',
  showHistory: '查看历史',
  noEvents: '暂无事件。',
  eventType: '事件',
  position: '日志位置',
  actor: '操作者',
  causation: '起因',
  verification: '验证',
  verified: '已验证：该事件在已锚定的日志中，未被篡改',
  notVerified: '未通过验证：有步骤失败',
  notAnchoredYet: '尚未锚定：锚定进程尚未覆盖此事件',
  stepCanonical: '规范字节',
  stepLeaf: '叶哈希',
  stepInclusion: '包含证明',
  stepHead: '树头',
  stepSignature: '树头签名',
  ledger: '账本',
  transaction: '交易',
  block: '区块',
  final: '已确定',
  howToVerify: '验证方法',
  howToVerifyText: '浏览器对服务器返回的事件计算哈希，沿包含证明计算到根，并验证树头的 Ed25519 签名（见 docs/receipts.md）。请将签名公钥与贵机构信任的公钥比对。',
};

const messages: Record<Language, Record<MessageKey, string>> = { en, zh };

/**
 * Contrast to WCAG AA (4.5:1, checked by axe in the end-to-end run): Ant Design's
 * default blue (#1677ff) gives white text 4.1:1, so blue-7 (blue-8 on hover); its lighter greys for
 * secondary text (empty states, descriptions) are darkened the same way.
 */
const THEME = {
  token: {
    colorPrimary: '#0958d9',
    colorLink: '#0958d9',
    colorPrimaryHover: '#003eb3',
    colorLinkHover: '#003eb3',
    colorError: '#cf1322',
    colorTextSecondary: 'rgba(0, 0, 0, 0.68)',
    colorTextTertiary: 'rgba(0, 0, 0, 0.62)',
    colorTextQuaternary: 'rgba(0, 0, 0, 0.58)',
    colorTextDescription: 'rgba(0, 0, 0, 0.62)',
  },
};

interface I18n {
  language: Language;
  setLanguage: (language: Language) => void;
  t: (key: MessageKey) => string;
  /** A date or instant as this language writes it. */
  date: (value: string) => string;
}

const I18nContext = createContext<I18n | null>(null);

export function I18nProvider({ children }: { children: ReactNode }) {
  const [language, setLanguage] = useState<Language>(() => (localStorage.getItem('emr.language') === 'en' ? 'en' : 'zh'));
  useEffect(() => {
    dayjs.locale(language === 'zh' ? 'zh-cn' : 'en');
    document.documentElement.lang = language === 'zh' ? 'zh-CN' : 'en';
  }, [language]);
  const value = useMemo<I18n>(() => {
    return {
      language,
      setLanguage: (next) => {
        localStorage.setItem('emr.language', next);
        setLanguage(next);
      },
      t: (key) => messages[language][key],
      date: (value) => new Intl.DateTimeFormat(language === 'zh' ? 'zh-CN' : 'en-GB', { dateStyle: 'medium' }).format(new Date(value)),
    };
  }, [language]);
  return (
    <I18nContext.Provider value={value}>
      <ConfigProvider locale={language === 'zh' ? zhCN : enUS} theme={THEME}>
        {children}
      </ConfigProvider>
    </I18nContext.Provider>
  );
}

export function useI18n(): I18n {
  const value = useContext(I18nContext);
  if (!value) throw new Error('useI18n outside I18nProvider');
  return value;
}
