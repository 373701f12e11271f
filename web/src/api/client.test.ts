// @vitest-environment jsdom
import { describe, expect, it } from 'vitest';

import { answerWith, reply } from '../test/setup';
import { ProblemError, api, unwrap } from './client';

describe('an answer unwrapped', () => {
  it('is its body, nothing for 204 No Content, and the server problem otherwise', async () => {
    answerWith(() => new Response(null, { status: 204 }));
    await expect(unwrap(api.POST('/v1/accounts/{user_id}/unlock', { params: { path: { user_id: 'u' } }, body: { reason: null } }))).resolves.toBeUndefined();

    answerWith(() => reply(423, { type: 'about:blank', title: 'Locked', status: 423, detail: 'locked for 15 minutes', code: 'account-locked', retryable: true }));
    const refused = unwrap(api.POST('/v1/auth/login', { body: { username: 'dr_li', password: 'x' } }));
    await expect(refused).rejects.toBeInstanceOf(ProblemError);
    await expect(refused).rejects.toMatchObject({ status: 423, problem: { code: 'account-locked', detail: 'locked for 15 minutes' } });

    answerWith(() => reply(200, { mfa_token: 't', enrolment_required: false }));
    await expect(unwrap(api.POST('/v1/auth/login', { body: { username: 'dr_li', password: 'x' } }))).resolves.toEqual({ mfa_token: 't', enrolment_required: false });
  });
});
