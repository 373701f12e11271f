// @vitest-environment jsdom
import { screen, waitFor } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { describe, expect, it } from 'vitest';

import { answerWith, reply, sent } from '../test/setup';
import { renderScreen } from '../test/render';
import SignIn from './SignIn';

describe('the sign-in form', () => {
  it('says what is wrong with each field and sends nothing until both are valid', async () => {
    const user = userEvent.setup();
    renderScreen(<SignIn />);
    await user.click(screen.getByRole('button', { name: 'Sign in' }));
    expect(await screen.findByText('Enter your username (3–64 letters, digits, _ or -)')).toBeTruthy();
    expect(screen.getByText('Enter your password (at least 12 characters)')).toBeTruthy();
    await user.type(screen.getByLabelText('Username'), 'a b');
    await user.type(screen.getByLabelText('Password'), 'short');
    await user.click(screen.getByRole('button', { name: 'Sign in' }));
    await screen.findByText('Enter your password (at least 12 characters)');
    expect(sent).toHaveLength(0);
  });

  it('shows a lockout as the server words it', async () => {
    const user = userEvent.setup();
    answerWith(() => reply(423, { type: 'about:blank', title: 'Account locked', status: 423, detail: 'too many failed attempts; try again in 15 minutes', code: 'account-locked', retryable: true }));
    renderScreen(<SignIn />);
    await user.type(screen.getByLabelText('Username'), 'dr_li');
    await user.type(screen.getByLabelText('Password'), 'Choose-A-Long-One-9');
    await user.click(screen.getByRole('button', { name: 'Sign in' }));
    expect(await screen.findByText('Account locked')).toBeTruthy();
    expect(screen.getByText('too many failed attempts; try again in 15 minutes (account-locked)')).toBeTruthy();
    expect(sent.map((request) => `${request.method} ${new URL(request.url).pathname}`)).toEqual(['POST /v1/auth/login']);
    expect(await sent[0]?.json()).toEqual({ username: 'dr_li', password: 'Choose-A-Long-One-9' });
  });

  it('asks an enrolling user to scan a code, then wants six digits', async () => {
    const user = userEvent.setup();
    answerWith((request) =>
      new URL(request.url).pathname === '/v1/auth/login'
        ? reply(200, { mfa_token: 'challenge', enrolment_required: true })
        : reply(200, { secret: 'JBSWY3DPEHPK3PXP', otpauth_uri: 'otpauth://totp/EMR:dr_li?secret=JBSWY3DPEHPK3PXP' }),
    );
    renderScreen(<SignIn />);
    await user.type(screen.getByLabelText('Username'), 'dr_li');
    await user.type(screen.getByLabelText('Password'), 'Choose-A-Long-One-9');
    await user.click(screen.getByRole('button', { name: 'Sign in' }));
    expect(await screen.findByText('JBSWY3DPEHPK3PXP')).toBeTruthy();
    await user.type(screen.getByLabelText('Authenticator code'), '12a');
    await user.click(screen.getByRole('button', { name: 'Verify' }));
    expect(await screen.findByText('Six digits from your authenticator app')).toBeTruthy();
    await waitFor(() => expect(sent.map((request) => new URL(request.url).pathname)).toEqual(['/v1/auth/login', '/v1/auth/mfa/enrolment']));
  });
});
