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
