// @vitest-environment jsdom
import { screen } from '@testing-library/react';
import { beforeEach, describe, expect, it } from 'vitest';

import type { Schemas } from '../api/client';
import { signedInAs } from '../test/session';
import { answerWith, reply, sent } from '../test/setup';
import { renderScreen } from '../test/render';
import MyAccess from './MyAccess';

const PHYSICIAN = '01a23bb9-4440-76ef-b67d-0b72b0cb28f3';
const OPEN_PATIENT = '01a23bb9-4440-76ef-b67d-0b72b0cb2801';
const CLOSED_PATIENT = '01a23bb9-4440-76ef-b67d-0b72b0cb2802';

const grant = (patient: string, status: Schemas['GrantStatus'], active_now: boolean): Schemas['GrantView'] => ({
  grant_id: `01a23bb9-4440-76ef-b67d-0b72b0cb29${patient.slice(-2)}`,
  patient_id: patient,
  grantee: PHYSICIAN,
  status,
  scopes: ['read'],
  expires_at: '2026-12-20T00:00:00Z',
  active_now,
});

describe("a practitioner's access", () => {
  beforeEach(() => {
    signedInAs('physician', PHYSICIAN);
    answerWith(() => reply(200, [grant(OPEN_PATIENT, 'active', true), grant(CLOSED_PATIENT, 'revoked', false)]));
  });

  it('asks for their own grants and links only the charts they may open now', async () => {
    renderScreen(<MyAccess />, { path: '/my/access', at: '/my/access' });
    const open = await screen.findByRole('link', { name: OPEN_PATIENT });
    expect(open.getAttribute('href')).toBe(`/patients/${OPEN_PATIENT}`);
    expect(screen.getByText(CLOSED_PATIENT).closest('a')).toBeNull();
    expect(screen.getByText('revoked')).toBeTruthy();
    expect(sent.map((request) => new URL(request.url).pathname)).toContain(`/v1/accounts/${PHYSICIAN}/grants`);
  });
});
