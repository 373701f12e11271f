// End to end, in a real Chromium (Debian's), against a real `emr serve` on loopback
// serving the built application (`web/dist`) over its embedded defaults:
//
//   a physician signs in with password and TOTP (enrolling on the way), registers a
//   patient, finds no one in the search (no grant yet), is refused the chart, breaks
//   the glass with a reason and writes a record, attaches a CT slice and sees the
//   server's preview of it, amends the record, compares the versions and replays the
//   record as it was before; the patient signs in (enrolling too), opens their record
//   and sees that read in "who saw my data", approves the physician's access request,
//   grants access and revokes a grant; the physician sees both in "my access"; an
//   auditor verifies the record's first event against the anchored, signed tree
//   head — in the browser, step by step.
//
// Every step is screenshotted into e2e/artifacts/, and axe-core checks each main
// screen for serious or critical accessibility violations. Exits non-zero on any
// failure. Needs: EMR_BIN (the `emr` binary), Chromium at CHROMIUM or /usr/bin/chromium.
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';

import AxeBuilder from '@axe-core/playwright';
import * as OTPAuth from 'otpauth';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const web = resolve(here, '..');
const artifacts = join(here, 'artifacts');
const emr = process.env.EMR_BIN ?? resolve(web, '../target/debug/emr');
const browserPath = process.env.CHROMIUM ?? '/usr/bin/chromium';
const PASSWORD = 'Choose-A-Long-One-9';

function freePort() {
  return new Promise((ok, fail) => {
    const server = createServer();
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => ok(port));
    });
  });
}

/** The TOTP code of `secret`, `ahead` steps from now (a code is good once; the server takes ±1 step). */
function totp(secret, ahead = 0) {
  return new OTPAuth.TOTP({ secret: OTPAuth.Secret.fromBase32(secret), digits: 6, period: 30 }).generate({ timestamp: Date.now() + ahead * 30_000 });
}

async function json(base, method, path, body, token) {
  const headers = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const response = await fetch(`${base}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  const value = text ? JSON.parse(text) : null;
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
  return value;
}

/** Signs in over the API (password, enrolment, TOTP): an access token and the TOTP secret. */
async function apiSignIn(base, username) {
  const challenge = await json(base, 'POST', '/v1/auth/login', { username, password: PASSWORD });
  const enrolment = await json(base, 'POST', '/v1/auth/mfa/enrolment', { mfa_token: challenge.mfa_token });
  const tokens = await json(base, 'POST', '/v1/auth/mfa/verification', { mfa_token: challenge.mfa_token, code: totp(enrolment.secret) });
  return { token: tokens.access_token, secret: enrolment.secret };
}

/**
 * A federated task run through the API as a researcher and two hospitals' service
 * accounts would (the training itself is emr fl client's, tested in the CLI's tests):
 * two rounds, each hospital's update with its own figures, each aggregated with the
 * coordinator's held-out figures.
 */
async function federatedTask(base, adminToken) {
  for (const [username, role] of [['fl_researcher', 'researcher'], ['hosp-a', 'hospital'], ['hosp-b', 'hospital']]) {
    await json(base, 'POST', '/v1/accounts', { username, password: PASSWORD, role }, adminToken);
  }
  const researcher = (await apiSignIn(base, 'fl_researcher')).token;
  const hospitals = [(await apiSignIn(base, 'hosp-a')).token, (await apiSignIn(base, 'hosp-b')).token];
  const spec = {
    name: 'Breast cancer risk across two hospitals',
    model: { kind: { kind: 'logistic_regression' }, precision: 'f64', features: ['mean radius', 'mean texture'], label: 'benign' },
    hospitals: ['HOSP-A', 'HOSP-B'],
    strategy: { name: 'fedavg' },
    rounds: 2,
    local_steps: 5,
    learning_rate: 0.5,
    min_participants: 2,
    round_deadline_secs: 600,
    secure_aggregation: false,
  };
  const { task_id: task } = await json(base, 'POST', '/v1/federated/tasks', { spec }, researcher);
  await json(base, 'POST', `/v1/federated/tasks/${task}/start`, {}, researcher);
  for (const round of [1, 2]) {
    await json(base, 'POST', `/v1/federated/tasks/${task}/rounds`, {}, researcher);
    for (const [h, token] of hospitals.entries()) {
      const metrics = { loss: 0.6 / round + h * 0.01, accuracy: 0.7 + round * 0.08, auc: 0.75 + round * 0.07 };
      await json(base, 'POST', `/v1/federated/tasks/${task}/rounds/${round}/updates`, { parameters: [0.1 * round, -0.2, 0.05 * h], samples: 120 + h, metrics }, token);
    }
    const metrics = { loss: 0.55 / round, accuracy: 0.72 + round * 0.08, auc: 0.78 + round * 0.06 };
    await json(base, 'POST', `/v1/federated/tasks/${task}/rounds/${round}/aggregation`, { metrics }, researcher);
  }
}

const steps = [];
async function step(page, name, check) {
  const started = Date.now();
  try {
    await check();
  } catch (error) {
    await page.screenshot({ path: join(artifacts, `FAILED-${name}.png`), fullPage: true }).catch(() => undefined);
    throw error;
  }
  await page.screenshot({ path: join(artifacts, `${String(steps.length + 1).padStart(2, '0')}-${name}.png`), fullPage: true });
  steps.push(`${name} (${Date.now() - started} ms)`);
  console.log(`ok - ${name}`);
}

async function accessible(page, screen) {
  // Contrast is judged on the settled page: mid-transition, colours are in between.
  await page.waitForFunction(() => document.getAnimations().every((a) => a.playState !== 'running' || a.effect?.getTiming().iterations === Infinity));
  const results = await new AxeBuilder({ page }).analyze();
  const serious = results.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  assert.deepEqual(
    serious.map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).slice(0, 3).join('; ')})`),
    [],
    `${screen}: serious or critical accessibility violations`,
  );
  console.log(`ok - ${screen}: no serious or critical axe violations (${results.passes.length} rules pass)`);
}

/** Every control named in `names` takes the focus by Tab alone, from the top of the page. */
async function reachableByKeyboard(page, screen, names) {
  await page.locator('body').focus();
  const seen = new Set();
  for (let i = 0; i < 80 && names.some((n) => !seen.has(n)); i++) {
    await page.keyboard.press('Tab');
    const name = await page.evaluate(() => {
      const el = document.activeElement;
      if (!el || el === document.body) return '';
      const labelled =
        el.getAttribute('aria-label') || (el.id && document.querySelector(`label[for="${el.id}"]`)?.textContent) || el.closest('label')?.textContent || '';
      // A control's own words, not a container's: that would name everything inside it.
      const own = (el.textContent ?? '').trim();
      return (labelled || (own.length <= 40 ? own : '')).trim();
    });
    for (const wanted of names) if (name.includes(wanted)) seen.add(wanted);
  }
  assert.deepEqual(names.filter((n) => !seen.has(n)), [], `${screen}: controls the keyboard does not reach`);
  console.log(`ok - ${screen}: ${names.length} controls reached by Tab`);
}

/**
 * Signs in through the page with the keyboard only: enrolling TOTP on the way, or,
 * for an account already enrolled with `secret`, with the next step's code.
 */
async function uiSignIn(page, base, username, secret) {
  await page.goto(base);
  await page.getByText('English', { exact: true }).click();
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.keyboard.press('Enter');
  const enrolled = secret ?? (await page.getByTestId('totp-secret').textContent({ timeout: 15_000 })).trim();
  const code = secret ? totp(secret, 1) : totp(enrolled);
  await page.getByLabel('Authenticator code').fill(code);
  await page.keyboard.press('Enter');
  return enrolled;
}

async function main() {
  rmSync(artifacts, { recursive: true, force: true });
  mkdirSync(artifacts, { recursive: true });
  const data = mkdtempSync(join(tmpdir(), 'emr-web-e2e-'));
  const [http, grpc] = [await freePort(), await freePort()];
  const env = {
    ...process.env,
    EMR__STORE__DATA_DIR: data,
    EMR__HTTP__LISTEN: `127.0.0.1:${http}`,
    EMR__GRPC__LISTEN: `127.0.0.1:${grpc}`,
    EMR__HTTP__WEB_DIR: join(web, 'dist'),
    EMR__READ_MODELS__BATCH_SIZE: '10',
    EMR__AUDIT__BATCH_COMMITS: '4',
    EMR__AUDIT__MAX_DELAY_MS: '20',
    RUST_LOG: 'warn',
  };
  const admin = spawnSync(emr, ['accounts', 'create-admin', '--username', 'admin'], { env: { ...env, EMR_ADMIN_PASSWORD: PASSWORD } });
  assert.equal(admin.status, 0, `emr accounts create-admin: ${admin.stderr}`);
  const server = spawn(emr, ['serve'], { env, stdio: ['ignore', 'ignore', 'inherit'] });
  const base = `http://127.0.0.1:${http}`;
  let browser;
  try {
    for (let i = 0; ; i++) {
      const ready = await fetch(`${base}/ready`).then((r) => r.ok).catch(() => false);
      if (ready) break;
      assert.ok(i < 600, 'emr serve never became ready');
      await new Promise((ok) => setTimeout(ok, 100));
    }
    // The accounts an administrator and a patient open, over the API.
    const { token: adminToken, secret: adminSecret } = await apiSignIn(base, 'admin');
    const doctor = await json(base, 'POST', '/v1/accounts', {
      username: 'dr_li', password: PASSWORD, role: 'physician',
      profile: { full_name: 'Li Wei', licence_number: 'LIC-1001', department: 'Emergency', specialization: 'Trauma' },
    }, adminToken);
    await json(base, 'POST', '/v1/accounts', { username: 'auditor_zhao', password: PASSWORD, role: 'auditor' }, adminToken);
    const patient = await json(base, 'POST', '/v1/accounts/self-registration', { username: 'wang_fang', password: PASSWORD });
    let doctorSecret;
    await federatedTask(base, adminToken);

    browser = await chromium.launch({ executablePath: browserPath, args: ['--no-sandbox'] });
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    page.on('pageerror', (error) => console.error(`page error: ${error.message}`));

    await step(page, 'sign-in-page', async () => {
      await page.goto(base);
      // Ant Design spaces two-character Chinese labels: 登 录.
      await page.getByRole('button', { name: /登\s?录|Sign in/ }).waitFor();
      await accessible(page, 'sign-in');
      await reachableByKeyboard(page, 'sign-in', ['用户名', '密码', '登 录']);
    });
    await step(page, 'physician-signed-in-with-mfa', async () => {
      doctorSecret = await uiSignIn(page, base, 'dr_li');
      await page.getByRole('heading', { name: 'Find a patient' }).waitFor({ timeout: 15_000 });
      await accessible(page, 'patients');
      await reachableByKeyboard(page, 'patients', ['Find a patient', 'Name', 'Date of birth', 'Gender', 'MRN', 'Patient account (optional)', 'Hospital', 'Register']);
    });
    await step(page, 'patient-registered', async () => {
      await page.getByLabel('Name', { exact: true }).fill('Wang Fang');
      await page.getByLabel('Date of birth').fill('1980-02-29');
      await page.getByLabel('Date of birth').press('Enter');
      await page.getByLabel('MRN').fill('MRN-0001');
      await page.getByLabel('Patient account').fill(patient.user_id);
      await page.getByRole('button', { name: 'Register', exact: true }).click();
      await page.getByRole('heading', { name: 'Chart' }).waitFor({ timeout: 15_000 });
    });
    await step(page, 'chart-refused-without-a-grant', async () => {
      await page.getByText('Access refused').waitFor({ timeout: 15_000 });
      await accessible(page, 'chart (refused)');
      await reachableByKeyboard(page, 'chart (refused)', ['Patients', 'Back', 'Request access', 'Break the glass']);
      await page.getByRole('button', { name: 'Request access' }).click();
      await page.getByLabel('Why you need access (the patient sees it)').fill('follow-up of chest pain');
      await page.getByRole('button', { name: 'Send request' }).click();
      await page.getByText('Request sent to the patient').waitFor({ timeout: 15_000 });
    });
    await step(page, 'search-finds-no-one-without-a-grant', async () => {
      await page.getByRole('link', { name: 'Back' }).click();
      await page.getByRole('searchbox', { name: 'Find a patient' }).fill('wang');
      await page.keyboard.press('Enter');
      await page.getByText('No patient found among those who granted you access.').waitFor({ timeout: 15_000 });
    });
    await step(page, 'break-glass-read', async () => {
      await page.goto(`${base}/patients/${patient.user_id}`);
      await page.getByRole('button', { name: 'Break the glass' }).click();
      await page.getByText('the patient will see that you read their record').waitFor();
      await accessible(page, 'break-glass dialog');
      await reachableByKeyboard(page, 'break-glass dialog', ['Emergency reason', 'Read in an emergency']);
      await page.getByLabel('Emergency reason').fill('unresponsive on arrival');
      await page.getByRole('button', { name: 'Read in an emergency' }).click();
      await page.getByText('MRN-0001').waitFor({ timeout: 15_000 });
    });
    let record;
    await step(page, 'record-written', async () => {
      await page.getByLabel('Visit', { exact: true }).fill('2026-12-01');
      await page.getByLabel('Visit', { exact: true }).press('Enter');
      await page.getByLabel('Title').fill('Chest pain on arrival');
      await page.getByLabel('ICD-10').fill('I20.9');
      await page.getByRole('button', { name: 'Create record' }).click();
      record = (await page.getByTestId('created-record').textContent({ timeout: 15_000 })).trim();
      assert.match(record, /^[0-9a-f-]{36}$/);
    });
    let beforeAmendment;
    await step(page, 'record-amended-diffed-replayed-and-a-dicom-previewed', async () => {
      // The author reads their own record without a grant (the chart's index needs one).
      await page.getByRole('link', { name: 'Open the record' }).click();
      await page.getByRole('heading', { name: 'Record', exact: true }).waitFor({ timeout: 15_000 });
      // A real CT slice (pydicom's CT_small.dcm), sealed on upload and drawn by the server.
      await page.getByLabel('File to attach').setInputFiles(resolve(web, '../tests/fixtures/dicom/CT_small.dcm'));
      await page.getByRole('button', { name: 'Upload' }).click();
      await page.getByRole('cell', { name: 'application/dicom' }).waitFor({ timeout: 15_000 });
      await page.getByRole('button', { name: 'Preview' }).click();
      await page.waitForFunction(() => {
        const img = document.querySelector('img[alt^="Preview of attachment"]');
        return img !== null && img.complete && img.naturalWidth === 128 && img.naturalHeight === 128;
      }, undefined, { timeout: 15_000 });
      // The picker takes whole seconds: the instant chosen is over a second after
      // the record's last event and over a second before the amendment.
      await new Promise((ok) => setTimeout(ok, 1100));
      beforeAmendment = new Date();
      await new Promise((ok) => setTimeout(ok, 1100));
      await page.getByLabel('Treatment').fill('Aspirin 300 mg\nECG monitoring');
      await page.getByLabel('Reason for the amendment').fill('treatment after ECG');
      await page.getByRole('button', { name: 'Save as a new version' }).click();
      const treatment = page.getByTestId('diff-treatment');
      await treatment.waitFor({ timeout: 15_000 });
      assert.match(await treatment.textContent(), /\+ Aspirin 300 mg/);
      await accessible(page, 'record');
      await reachableByKeyboard(page, 'record', ['As it was at', 'From', 'Download', 'Preview', 'File to attach', 'Title', 'Save as a new version']);
      // Point-in-time replay: the record as it was before the amendment.
      const instant = beforeAmendment.toLocaleString('sv-SE').replace('T', ' ');
      await page.getByLabel('As it was at').fill(instant);
      await page.getByLabel('As it was at').press('Enter');
      await page.getByText(/Replayed from the log as it was at/).waitFor({ timeout: 15_000 });
      await page.getByText(/· v1$/).waitFor({ timeout: 15_000 });
      assert.equal(await page.getByText('ECG monitoring').count(), 0, 'the replayed version has no treatment yet');
    });
    await step(page, 'patient-sees-the-break-glass-read', async () => {
      await page.getByRole('button', { name: 'Sign out' }).click();
      await uiSignIn(page, base, 'wang_fang');
      // The patient lands on their own records and can open them.
      await page.getByRole('heading', { name: 'My records' }).waitFor({ timeout: 15_000 });
      await page.getByRole('link', { name: 'Open', exact: true }).first().click({ timeout: 15_000 });
      await page.getByText('Versions', { exact: true }).waitFor({ timeout: 15_000 });
      await page.getByTestId('diff-treatment').waitFor({ timeout: 15_000 });
      await accessible(page, 'my record');
      await reachableByKeyboard(page, 'my record', ['As it was at', 'From', 'to', 'Download', 'Preview']);
      await page.getByRole('link', { name: 'Who saw my data' }).click();
      await page.getByRole('heading', { name: 'Who saw my data' }).waitFor({ timeout: 15_000 });
      // The access log is a read model: it follows the log within moments.
      for (let i = 0; ; i++) {
        if (await page.getByText('Break the glass').count()) break;
        assert.ok(i < 50, 'the break-glass read never reached the access log');
        await page.reload();
        await page.getByRole('heading', { name: 'Who saw my data' }).waitFor();
        await new Promise((ok) => setTimeout(ok, 200));
      }
      await accessible(page, 'who saw my data');
      await reachableByKeyboard(page, 'who saw my data', ['My records', 'Who saw my data', 'My grants', 'Sign out']);
    });
    await step(page, 'patient-grants-and-revokes-access', async () => {
      await page.getByRole('link', { name: 'My grants' }).click();
      await page.getByRole('heading', { name: 'My grants' }).waitFor();
      // The physician's request waits for the patient's decision.
      const request = page.getByRole('row', { name: /requested/ });
      await request.waitFor({ timeout: 15_000 });
      await request.getByRole('button', { name: 'Approve' }).click();
      await page.getByRole('row', { name: /active/ }).waitFor({ timeout: 15_000 });
      await page.getByLabel('Grantee (user id)').fill(doctor.user_id);
      const until = new Date(Date.now() + 30 * 86_400_000).toISOString().slice(0, 10);
      await page.getByLabel('Expires').fill(until);
      await page.getByLabel('Expires').press('Enter');
      await page.getByLabel('Why', { exact: true }).fill('follow-up care');
      await page.getByRole('button', { name: 'Grant access' }).click();
      await page.getByRole('row', { name: /active/ }).nth(1).waitFor({ timeout: 15_000 });
      await accessible(page, 'my grants');
      await reachableByKeyboard(page, 'my grants', ['Revoke', 'Grantee (user id)', 'Read', 'Expires', 'Why', 'Grant access']);
      await page.getByRole('button', { name: 'Revoke', exact: true }).first().click();
      await page.getByLabel('Why you revoke it').fill('care finished');
      await page.getByRole('button', { name: 'Revoke access' }).click();
      await page.getByText('revoked', { exact: true }).waitFor({ timeout: 15_000 });
    });
    await step(page, 'physician-sees-their-access', async () => {
      await page.getByRole('button', { name: 'Sign out' }).click();
      await uiSignIn(page, base, 'dr_li', doctorSecret);
      await page.getByRole('link', { name: 'My access' }).click();
      await page.getByRole('heading', { name: 'My access' }).waitFor({ timeout: 15_000 });
      // The approved request opens the chart; the revoked grant is listed, not linked.
      await page.getByRole('link', { name: patient.user_id }).first().waitFor({ timeout: 15_000 });
      await page.getByText('revoked', { exact: true }).waitFor({ timeout: 15_000 });
      await accessible(page, 'my access');
    });
    await step(page, 'auditor-verifies-the-record', async () => {
      await page.getByRole('button', { name: 'Sign out' }).click();
      await uiSignIn(page, base, 'auditor_zhao');
      await page.getByRole('heading', { name: 'Integrity' }).waitFor({ timeout: 15_000 });
      await page.getByLabel('Id', { exact: true }).fill(record);
      await page.getByRole('button', { name: 'Show history' }).click();
      await page.getByText('RecordCreated').waitFor({ timeout: 15_000 });
      await page.getByRole('button', { name: 'Expand row' }).first().click();
      // The anchor worker covers new events within moments; until then there is no receipt.
      for (let i = 0; ; i++) {
        await page.getByRole('button', { name: 'Verify #1' }).click();
        await page.getByText(/Verified: |Not verified|Not anchored yet/).first().waitFor({ timeout: 15_000 });
        if (await page.getByText('Verified: this event is in the anchored log, unaltered').count()) break;
        assert.equal(await page.getByText('Not verified').count(), 0, 'a step of the verification failed');
        assert.ok(i < 50, 'the record was never anchored');
        await new Promise((ok) => setTimeout(ok, 200));
      }
      for (const name of ['canonical', 'leaf', 'inclusion', 'head', 'signature']) {
        assert.equal(await page.getByTestId(`step-${name}`).getByText('✓').count(), 1, `step ${name}`);
      }
      // Every event of the record (created, attachment, amendment), each against its receipt.
      for (let i = 0; ; i++) {
        await page.getByRole('button', { name: 'Verify every event' }).click();
        const tally = (await page.getByTestId('verify-all').textContent({ timeout: 15_000 })).trim();
        assert.doesNotMatch(tally, /failed at/, 'an event of the record failed verification');
        if (/^✓ (\d+)\/\1 events verified$/.test(tally)) break;
        assert.ok(i < 50, `the record's events were never all anchored: ${tally}`);
        await new Promise((ok) => setTimeout(ok, 300));
      }
      // The anchoring table lists the tree heads and where they were anchored.
      await page.getByRole('region', { name: 'Anchoring: tree heads per ledger' }).getByRole('row').nth(1).waitFor({ timeout: 15_000 });
      await accessible(page, 'integrity');
      await reachableByKeyboard(page, 'integrity', ['Kind', 'Id', 'Show history', 'Verify every event', 'Open the record (point-in-time replay)', 'Verify #1']);
    });
    await step(page, 'operations-dashboard', async () => {
      await page.getByRole('link', { name: 'Operations' }).click();
      await page.getByRole('heading', { name: 'Operations' }).waitFor();
      await page.getByRole('img', { name: 'Records per type per day (30 days)' }).locator('canvas').waitFor({ timeout: 15_000 });
      await page.getByRole('cell', { name: 'HOSP-001' }).waitFor({ timeout: 15_000 });
      // Live API figures come from the server's own /metrics, two scrapes 5 s apart.
      await page.getByText(/^\d+(\.\d)?ms$/).waitFor({ timeout: 30_000 });
      await accessible(page, 'operations');
    });
    await step(page, 'federated-learning', async () => {
      await page.getByRole('link', { name: 'Federated learning' }).click();
      await page.getByRole('heading', { name: 'Federated learning' }).waitFor();
      // The task, its two aggregated rounds as curves, and each hospital's updates.
      await page.getByRole('row', { name: /Breast cancer risk across two hospitals.*2 \/ 2/ }).waitFor({ timeout: 15_000 });
      await page.getByRole('img', { name: 'Held-out loss, accuracy and AUC per round' }).locator('canvas').waitFor({ timeout: 15_000 });
      await page.getByRole('cell', { name: 'HOSP-B' }).first().waitFor({ timeout: 15_000 });
      await page.getByText('This task adds no differential-privacy noise.').waitFor();
      await accessible(page, 'federated learning');
      await reachableByKeyboard(page, 'federated learning', ['Federated learning', 'Show rounds Breast cancer risk across two hospitals', 'Sign out']);
    });
    await step(page, 'security-event-acknowledged', async () => {
      await page.getByRole('link', { name: 'Security events' }).click();
      // The break-glass read raised a security event for the officers.
      const row = page.getByRole('row', { name: /break_glass_use/ }).first();
      await row.waitFor({ timeout: 15_000 });
      await accessible(page, 'security events');
      await reachableByKeyboard(page, 'security events', ['Status', 'Acknowledge']);
      await row.getByRole('button', { name: 'Acknowledge' }).click();
      await page.getByRole('row', { name: /break_glass_use.*acknowledged/ }).first().waitFor({ timeout: 15_000 });
    });
    await step(page, 'administrator-opens-an-account', async () => {
      await page.getByRole('button', { name: 'Sign out' }).click();
      await uiSignIn(page, base, 'admin', adminSecret);
      await page.getByRole('link', { name: 'Accounts' }).click();
      await page.getByLabel('Username', { exact: true }).fill('nurse_chen');
      await page.getByLabel('Password').fill(PASSWORD);
      await page.getByLabel('Name', { exact: true }).fill('Chen Jing');
      await page.getByLabel('Licence number').fill('LIC-2002');
      await page.getByLabel('Department').fill('Emergency');
      await page.getByLabel('Specialization').fill('Triage');
      await page.getByRole('button', { name: 'Open an account' }).click();
      await page.getByRole('cell', { name: 'nurse_chen' }).first().waitFor({ timeout: 15_000 });
      // The nurse moves to the audit office: a staff role change, with a reason.
      await page.getByLabel('New role').click({ force: true });
      await page.getByTitle('auditor', { exact: true }).click();
      await page.getByLabel('Why', { exact: true }).fill('moved to the audit office');
      await page.getByRole('button', { name: 'Change role' }).click();
      // The account list (a read model) follows: nurse_chen is an auditor now.
      await page.getByRole('row', { name: /nurse_chen\s*auditor\s*active/ }).waitFor({ timeout: 15_000 });
      await accessible(page, 'accounts');
      await reachableByKeyboard(page, 'accounts', ['Username', 'Password', 'Role', 'Name', 'Licence number', 'Department', 'Specialization', 'Open an account', 'Find an account', 'New role', 'Change role', 'Username starts with', 'Open the account nurse_chen']);
    });
    console.log(`web e2e: ${steps.length} steps passed; screenshots in ${artifacts}`);
  } finally {
    await browser?.close();
    const exited = new Promise((ok) => server.once('exit', ok));
    server.kill('SIGTERM');
    await exited;
    rmSync(data, { recursive: true, force: true });
  }
}

main().catch((error) => {
  console.error(`web e2e FAILED: ${error.stack ?? error}`);
  process.exit(1);
});
