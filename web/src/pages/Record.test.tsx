// @vitest-environment jsdom
import { screen, waitFor } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { beforeEach, describe, expect, it } from 'vitest';

import type { Schemas } from '../api/client';
import { signedInAs } from '../test/session';
import { answerWith, reply, sent } from '../test/setup';
import { renderScreen } from '../test/render';
import RecordPage from './Record';

const RECORD = '01a23bb9-7bcf-735a-8b7c-2f943e2222e4';

const view: Schemas['RecordView'] = {
  record_id: RECORD,
  patient_id: '01a23bb9-4440-76ef-b67d-0b72b0cb28f2',
  doctor_id: '01a23bbb-30c7-7455-b637-9083c4236f53',
  hospital_id: 'HOSP-001',
  record_type: 'consultation',
  visit_date: '2026-12-01',
  status: 'active',
  redacted: false,
  versions: [
    { version: 1, shredded: false, content: { title: 'Chest pain', description: null, diagnosis: null, treatment: null, medications: [] }, reason: null },
    { version: 2, shredded: false, content: { title: 'Chest pain', description: null, diagnosis: null, treatment: 'Aspirin 300 mg', medications: [] }, reason: 'after ECG' },
  ],
  attachments: [],
  disclosure_id: null,
  sequence: 2,
  position: 40,
};

describe('a record', () => {
  beforeEach(() => {
    signedInAs('physician', view.doctor_id ?? '');
    answerWith((request) => (request.method === 'GET' ? reply(200, view) : reply(200, { aggregate_id: RECORD, events: [] })));
  });

  it('shows what the latest amendment changed', async () => {
    renderScreen(<RecordPage />, { path: '/records/:recordId', at: `/records/${RECORD}` });
    const treatment = await screen.findByTestId('diff-treatment');
    expect(treatment.textContent).toBe('+ Aspirin 300 mg');
    expect(screen.getByText('Reason for the amendment: after ECG')).toBeTruthy();
  });

  it('refuses an amendment without a reason or with a malformed ICD-10 code, and sends a valid one whole', async () => {
    const user = userEvent.setup();
    renderScreen(<RecordPage />, { path: '/records/:recordId', at: `/records/${RECORD}` });
    const code = await screen.findByLabelText('ICD-10');
    await user.type(code, 'I2');
    await user.click(screen.getByRole('button', { name: 'Save as a new version' }));
    expect(await screen.findByText('Say why the record changes (1–200 characters)')).toBeTruthy();
    expect(screen.getByText('An ICD-10 code such as J18.9')).toBeTruthy();
    expect(sent.filter((request) => request.method === 'POST')).toHaveLength(0);

    await user.type(code, '0.9');
    await user.type(screen.getByLabelText('Reason for the amendment'), 'coded the diagnosis');
    await user.click(screen.getByRole('button', { name: 'Save as a new version' }));
    await waitFor(() => expect(sent.filter((request) => request.method === 'POST')).toHaveLength(1));
    const amendment = sent.find((request) => request.method === 'POST');
    expect(new URL(amendment?.url ?? '').pathname).toBe(`/v1/records/${RECORD}/amendments`);
    expect(await amendment?.json()).toEqual({
      reason: 'coded the diagnosis',
      content: { title: 'Chest pain', description: null, diagnosis: { code: 'I20.9', description: 'Chest pain' }, treatment: 'Aspirin 300 mg', medications: [] },
    });
  });

  it('saves an amendment sent again after an unknown outcome under the same Idempotency-Key', async () => {
    const user = userEvent.setup();
    answerWith((request) =>
      request.method === 'GET'
        ? reply(200, view)
        : reply(503, { type: 'about:blank', title: 'Unavailable', status: 503, detail: 'the log is unavailable', code: 'log-unavailable', retryable: true }),
    );
    renderScreen(<RecordPage />, { path: '/records/:recordId', at: `/records/${RECORD}` });
    await user.type(await screen.findByLabelText('Reason for the amendment'), 'coded the diagnosis');
    const save = screen.getByRole('button', { name: 'Save as a new version' });
    await user.click(save);
    expect(await screen.findByText('the log is unavailable (log-unavailable)')).toBeTruthy();
    await user.click(save);
    await waitFor(() => expect(sent.filter((request) => request.method === 'POST')).toHaveLength(2));
    const keys = sent.filter((request) => request.method === 'POST').map((request) => request.headers.get('idempotency-key'));
    expect(keys[0]).toBeTruthy();
    expect(keys[1]).toBe(keys[0]);
  });
});
