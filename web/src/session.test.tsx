// @vitest-environment jsdom
import { render, screen, waitFor } from '@testing-library/react';
import { describe, expect, it } from 'vitest';

import { api } from './api/client';
import { SessionProvider, useSession } from './session';
import { claims, signedInAs, tokenFor } from './test/session';
import { answerWith, reply, sent } from './test/setup';

function Probe() {
  const { session, expired } = useSession();
  return <p data-testid="session">{session ? `${session.claims.sub} until ${session.claims.exp}` : expired ? 'expired' : 'signed out'}</p>;
}

const path = (request: Request) => new URL(request.url).pathname;

describe('the session', () => {
  it('refreshes the access token a minute before it expires and sends the new one from then on', async () => {
    signedInAs('physician', 'dr-li', 60.3);
    const renewed = claims('physician', 'dr-li', 900);
    answerWith((request) =>
      path(request) === '/v1/auth/refresh' ? reply(200, { access_token: tokenFor(renewed), refresh_token: 'refresh-2', token_type: 'Bearer', expires_in: 900 }) : reply(200, []),
    );
    render(
      <SessionProvider>
        <Probe />
      </SessionProvider>,
    );
    await waitFor(() => expect(screen.getByTestId('session').textContent).toBe(`dr-li until ${renewed.exp}`), { timeout: 5_000 });
    const refresh = sent.find((request) => path(request) === '/v1/auth/refresh');
    expect(await refresh?.json()).toEqual({ refresh_token: 'refresh-dr-li' });
    expect(JSON.parse(sessionStorage.getItem('emr.session') ?? '{}')).toMatchObject({ refreshToken: 'refresh-2' });

    await api.GET('/v1/read/records', { params: { query: {} } });
    expect(sent.at(-1)?.headers.get('authorization')).toBe(`Bearer ${tokenFor(renewed)}`);
  });

  it('ends with a notice when the refresh is refused (revoked or expired), and forgets the tokens', async () => {
    signedInAs('patient', 'wang-fang', 60.2);
    answerWith(() => reply(401, { type: 'about:blank', title: 'Unauthenticated', status: 401, detail: 'the refresh token was revoked', code: 'invalid-token', retryable: false }));
    render(
      <SessionProvider>
        <Probe />
      </SessionProvider>,
    );
    expect(screen.getByTestId('session').textContent).toMatch(/^wang-fang until/);
    await waitFor(() => expect(screen.getByTestId('session').textContent).toBe('expired'), { timeout: 5_000 });
    expect(sessionStorage.getItem('emr.session')).toBeNull();
  });

  it('does not resume a stored session whose access token has already expired', () => {
    signedInAs('physician', 'dr-li', -5);
    render(
      <SessionProvider>
        <Probe />
      </SessionProvider>,
    );
    expect(screen.getByTestId('session').textContent).toBe('signed out');
  });
});
