// Sessions for component tests: tokens shaped as the server issues them (only
// their claims matter to the screens; the server verifies the signature).
import type { Claims } from '../validation';

/** An unsigned token carrying `claims` (the screens read claims; they never verify). */
export function tokenFor(claims: Claims): string {
  return `header.${btoa(JSON.stringify(claims)).replace(/=+$/, '')}.signature`;
}

/** Claims of `role` for user `sub`, expiring `seconds` from now. */
export function claims(role: string, sub: string, seconds = 600): Claims {
  return { sub, role, exp: Math.floor(Date.now() / 1000) + seconds };
}

/** Stores a session as the session provider keeps it, as if signed in before the page loaded. */
export function signedInAs(role: string, sub: string, seconds = 600): void {
  const signed = claims(role, sub, seconds);
  sessionStorage.setItem('emr.session', JSON.stringify({ accessToken: tokenFor(signed), refreshToken: `refresh-${sub}`, claims: signed }));
}
