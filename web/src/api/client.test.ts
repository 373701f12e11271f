// @vitest-environment jsdom
import { describe, expect, it } from 'vitest';

import { answerWith, reply, sent } from '../test/setup';
import { CommandIntent, ProblemError, api, unwrap } from './client';

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

describe('a command intent', () => {
  const keyOf = (request: Request) => request.headers.get('idempotency-key');
  const create = (intent: CommandIntent, title: string) => {
    const body = { title };
    return intent.send(body, (headers) => unwrap(api.POST('/v1/auth/login', { body: { username: title, password: 'x' }, headers })));
  };

  it('sends the same key again while the outcome is unknown, so the server applies it once', async () => {
    const intent = new CommandIntent();
    answerWith(() => Promise.reject(new TypeError('network down')));
    await expect(create(intent, 'a')).rejects.toBeInstanceOf(TypeError);
    answerWith(() => reply(503, { type: 'about:blank', title: 'Unavailable', status: 503, detail: 'log down', code: 'log-unavailable', retryable: true }));
    await expect(create(intent, 'a')).rejects.toBeInstanceOf(ProblemError);
    answerWith(() => reply(200, { mfa_token: 't', enrolment_required: false }));
    await create(intent, 'a');
    const keys = sent.map(keyOf);
    expect(keys[0]).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(keys).toEqual([keys[0], keys[0], keys[0]]);
  });

  it('starts a new key after a success, a definite refusal, or for a different request', async () => {
    const intent = new CommandIntent();
    answerWith(() => reply(200, { mfa_token: 't', enrolment_required: false }));
    await create(intent, 'a');
    await create(intent, 'a');
    answerWith(() => reply(422, { type: 'about:blank', title: 'Invalid', status: 422, detail: 'title', code: 'invalid-command', retryable: false }));
    await expect(create(intent, 'a')).rejects.toBeInstanceOf(ProblemError);
    answerWith(() => Promise.reject(new TypeError('network down')));
    await expect(create(intent, 'a')).rejects.toBeInstanceOf(TypeError);
    await expect(create(intent, 'b')).rejects.toBeInstanceOf(TypeError);
    const keys = sent.map(keyOf);
    expect(new Set(keys).size).toBe(5);
  });
});
