// @vitest-environment jsdom
import { screen, waitFor } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { beforeEach, describe, expect, it } from 'vitest';

import type { Schemas } from '../api/client';
import { signedInAs } from '../test/session';
import { answerWith, reply, sent } from '../test/setup';
import { renderScreen } from '../test/render';
import Accounts from './Accounts';

const NURSE = '01a23bb9-4440-76ef-b67d-0b72b0cb28f2';

const nurse: Schemas['AccountView'] = {
  user_id: NURSE,
  username: 'nurse_chen',
  role: 'nurse',
  status: 'active',
  profile: { full_name: 'Chen Jing', licence_number: 'LIC-2002', department: 'Emergency', specialization: 'Triage' },
  mfa_enabled: true,
  locked_until: null,
  suspended_by: null,
  sequence: 3,
};

const row: Schemas['AccountRow'] = {
  user_id: NURSE,
  username: 'nurse_chen',
  role: 'nurse',
  status: 'active',
  mfa_enabled: 1,
  locked_until: null,
  suspended: 0,
  registered_at: '2026-12-01T08:00:00Z',
  updated_at: '2026-12-01T08:00:00Z',
  position: 12,
};

const resets = () => sent.filter((request) => request.method === 'POST' && request.url.endsWith('/mfa-reset'));

describe('an administrator resetting a lost authenticator', () => {
  beforeEach(() => {
    signedInAs('admin', '01a23bbb-30c7-7455-b637-9083c4236f53');
    answerWith((request) => {
      const path = new URL(request.url).pathname;
      if (request.method === 'POST') return new Response(null, { status: 204 });
      return path === '/v1/accounts' ? reply(200, [row]) : reply(200, nurse);
    });
  });

  it('needs a reason, then sends it for the account opened', async () => {
    const user = userEvent.setup();
    renderScreen(<Accounts />, { path: '/accounts', at: '/accounts' });
    await user.type(screen.getByRole('searchbox', { name: 'Find an account' }), `${NURSE}{Enter}`);
    const reset = await screen.findByRole('button', { name: 'Reset MFA' });
    await user.click(reset);
    expect(await screen.findByText('Say why (1–200 characters)')).toBeTruthy();
    expect(resets()).toHaveLength(0);

    await user.type(screen.getByLabelText('Why (identity check made, ticket)'), 'phone lost; identity checked');
    await user.click(reset);
    await waitFor(() => expect(resets()).toHaveLength(1));
    expect(new URL(resets()[0]?.url ?? '').pathname).toBe(`/v1/accounts/${NURSE}/mfa-reset`);
    expect(await resets()[0]?.json()).toEqual({ reason: 'phone lost; identity checked' });
    expect(resets()[0]?.headers.get('if-match')).toBe('"3"');
  });

  it('refuses to act on an account changed since it was shown, and shows it again', async () => {
    const user = userEvent.setup();
    const reads = () => sent.filter((request) => request.method === 'GET' && new URL(request.url).pathname === `/v1/accounts/${NURSE}`);
    answerWith((request) => {
      const path = new URL(request.url).pathname;
      if (request.method === 'POST') {
        const problem = { type: 'about:blank', title: 'The resource changed since it was read', status: 412, detail: 'expected version 3, found 4', code: 'version-mismatch', retryable: false };
        return reply(412, problem);
      }
      return path === '/v1/accounts' ? reply(200, [row]) : reply(200, nurse);
    });
    renderScreen(<Accounts />, { path: '/accounts', at: '/accounts' });
    await user.type(screen.getByRole('searchbox', { name: 'Find an account' }), `${NURSE}{Enter}`);
    await user.type(await screen.findByLabelText('Why (identity check made, ticket)'), 'phone lost; identity checked');
    const shownBefore = reads().length;
    await user.click(screen.getByRole('button', { name: 'Reset MFA' }));
    expect(await screen.findByText('expected version 3, found 4 (version-mismatch)')).toBeTruthy();
    await waitFor(() => expect(reads().length).toBeGreaterThan(shownBefore));
  });
});
