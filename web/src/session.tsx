// The signed-in session: tokens kept for this tab only (sessionStorage), the
// access token refreshed silently a minute before it expires, and a clear notice
// when the session ends on its own.
import { createContext, useCallback, useContext, useEffect, useMemo, useState, type ReactNode } from 'react';

import { api, setBearer, unwrap, type Schemas } from './api/client';
import { claimsOf, type Claims } from './validation';

interface Stored {
  accessToken: string;
  refreshToken: string;
  claims: Claims;
}

interface SessionContext {
  session: Stored | null;
  /** True after a session ended by itself (expired or revoked), until the next sign-in. */
  expired: boolean;
  signedIn: (tokens: Schemas['TokenPair']) => void;
  signOut: () => Promise<void>;
}

const KEY = 'emr.session';
const Context = createContext<SessionContext | null>(null);

function load(): Stored | null {
  try {
    const stored = JSON.parse(sessionStorage.getItem(KEY) ?? 'null') as Stored | null;
    return stored && stored.claims.exp * 1000 > Date.now() ? stored : null;
  } catch {
    return null;
  }
}

function fromTokens(tokens: Schemas['TokenPair']): Stored | null {
  const claims = claimsOf(tokens.access_token);
  return claims ? { accessToken: tokens.access_token, refreshToken: tokens.refresh_token, claims } : null;
}

export function SessionProvider({ children }: { children: ReactNode }) {
  const [session, setSession] = useState<Stored | null>(load);
  const [expired, setExpired] = useState(false);

  const keep = useCallback((next: Stored | null) => {
    if (next) sessionStorage.setItem(KEY, JSON.stringify(next));
    else sessionStorage.removeItem(KEY);
    setBearer(() => next?.accessToken);
    setSession(next);
  }, []);

  useEffect(() => setBearer(() => session?.accessToken), [session]);

  useEffect(() => {
    if (!session) return;
    const refreshIn = Math.max(session.claims.exp * 1000 - Date.now() - 60_000, 0);
    const timer = window.setTimeout(() => {
      unwrap(api.POST('/v1/auth/refresh', { body: { refresh_token: session.refreshToken } }))
        .then((tokens) => keep(fromTokens(tokens)))
        .catch(() => {
          keep(null);
          setExpired(true);
        });
    }, refreshIn);
    return () => window.clearTimeout(timer);
  }, [session, keep]);

  const value = useMemo<SessionContext>(
    () => ({
      session,
      expired,
      signedIn: (tokens) => {
        setExpired(false);
        keep(fromTokens(tokens));
      },
      signOut: async () => {
        await api.POST('/v1/auth/logout').catch(() => undefined);
        keep(null);
      },
    }),
    [session, expired, keep],
  );
  return <Context.Provider value={value}>{children}</Context.Provider>;
}

export function useSession(): SessionContext {
  const value = useContext(Context);
  if (!value) throw new Error('useSession outside SessionProvider');
  return value;
}
