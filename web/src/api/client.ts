// The API client: typed from the server's own OpenAPI document (`openapi.json`,
// checked against the served one by the server's tests), never written by hand.
import createClient, { type Middleware } from 'openapi-fetch';

import type { components, paths } from './schema';

export type Schemas = components['schemas'];
export type Problem = Schemas['Problem'];

/** An RFC 9457 problem answered by the server, kept whole so screens can show it. */
export class ProblemError extends Error {
  constructor(
    readonly status: number,
    readonly problem: Problem,
  ) {
    super(problem.detail || problem.title);
  }
}

let bearerToken: () => string | undefined = () => undefined;

/** Where the client finds the session's access token. */
export function setBearer(source: () => string | undefined): void {
  bearerToken = source;
}

const bearer: Middleware = {
  onRequest({ request }) {
    const token = bearerToken();
    if (token) request.headers.set('authorization', `Bearer ${token}`);
    return request;
  },
};

export const api = createClient<paths>({ baseUrl: window.location.origin });
api.use(bearer);

function asProblem(error: unknown, response: Response): Problem {
  const body = (error ?? {}) as Partial<Problem>;
  return {
    type: body.type ?? 'about:blank',
    title: body.title ?? response.statusText ?? 'Error',
    status: body.status ?? response.status,
    detail: body.detail ?? '',
    code: body.code ?? 'unknown',
    retryable: body.retryable ?? false,
  };
}

/** The answer's body (nothing for 204), or a [`ProblemError`] carrying the server's problem. */
export async function unwrap<T>(call: Promise<{ data?: T; error?: unknown; response: Response }>): Promise<T> {
  const { data, error, response } = await call;
  if (!response.ok) throw new ProblemError(response.status, asProblem(error, response));
  // 204 No Content: the operation's type says there is no body.
  if (response.status === 204) return data as T;
  if (data === undefined) throw new ProblemError(response.status, asProblem(error, response));
  return data;
}

/** A random (version 4) UUID. `crypto.randomUUID` exists only in secure contexts, and a
 * hospital may serve the app over plain HTTP inside its network; `getRandomValues` exists everywhere. */
export function randomUuid(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes.set([(bytes[6]! & 0x0f) | 0x40], 6);
  bytes.set([(bytes[8]! & 0x3f) | 0x80], 8);
  const hex = Array.from(bytes, (byte) => byte.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** True when a failed send may or may not have been applied: the network failed, or the
 * server (or a proxy before it) failed in a way that invites sending it again. */
function outcomeUnknown(error: unknown): boolean {
  return !(error instanceof ProblemError) || error.problem.retryable || error.status >= 500;
}

/**
 * One user intent behind a command — a form's submission — and the `Idempotency-Key`
 * it goes under. Sending the same request again after an unknown outcome (a dropped
 * connection, a retryable problem) reuses the key, so the server applies it at most
 * once: a second click cannot create a second record. A success, a definite refusal or
 * a different request starts a new intent with a new key.
 */
export class CommandIntent {
  private pending: { fingerprint: string; key: string } | undefined;

  /** Sends the request `fingerprint` describes through `call`, under this intent's key. */
  async send<T>(fingerprint: unknown, call: (headers: { 'idempotency-key': string }) => Promise<T>): Promise<T> {
    const print = JSON.stringify(fingerprint);
    if (this.pending?.fingerprint !== print) this.pending = { fingerprint: print, key: randomUuid() };
    try {
      const answer = await call({ 'idempotency-key': this.pending.key });
      this.pending = undefined;
      return answer;
    } catch (error) {
      if (!outcomeUnknown(error)) this.pending = undefined;
      throw error;
    }
  }
}
