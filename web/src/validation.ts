// Form rules mirroring the API's own (the server checks them again; these save a
// round trip and say what is wrong where it is typed).

/** Login names: 3–64 ASCII letters, digits, `-` or `_` (as `Username::parse`). */
export function validUsername(value: string): boolean {
  return /^[A-Za-z0-9_-]{3,64}$/.test(value);
}

/** Passwords: at least 12 characters mixing three of lower, upper, digits, symbols. */
export function validPassword(value: string): boolean {
  const kinds = [/[a-z]/, /[A-Z]/, /[0-9]/, /[^A-Za-z0-9]/].filter((kind) => kind.test(value)).length;
  return [...value].length >= 12 && kinds >= 3;
}

/** A TOTP code: six digits. */
export function validTotp(value: string): boolean {
  return /^[0-9]{6}$/.test(value);
}

/** Short text (`ShortText`): 1–200 characters, not only spaces, no control characters (Unicode Cc, as Rust's `char::is_control`). */
export function validShortText(value: string): boolean {
  // eslint-disable-next-line no-control-regex
  return value.trim().length > 0 && [...value].length <= 200 && !/[\u0000-\u001f\u007f-\u009f]/.test(value);
}

/** Narrative text (`LongText`): 1–20,000 characters, not only spaces; line breaks and tabs allowed, other control characters not. */
export function validLongText(value: string): boolean {
  // eslint-disable-next-line no-control-regex
  return value.trim().length > 0 && [...value].length <= 20_000 && !/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]/.test(value);
}

/** A medical record number: 1–32 ASCII letters, digits, `-`, `_`, `.` or `/` (as `Mrn::parse`). */
export function validMrn(value: string): boolean {
  return /^[A-Za-z0-9_./-]{1,32}$/.test(value);
}

/** What the patient search box asks the API for. */
export type PatientQuery = { name: string } | { birthdate: string } | { identifier: string };

/** An ICD-10 code as `Icd10Code::parse` takes it (e.g. `J18.9`, `e11`). */
export function validIcd10(value: string): boolean {
  return /^[A-Za-z][0-9][0-9ABab](\.[0-9A-Za-z]{1,4})?$/.test(value);
}

/** A patient search as the API takes it: `name`, `birthdate` or `identifier`, told apart by shape. */
export function patientQuery(text: string): PatientQuery | null {
  const value = text.trim();
  if (value.length === 0) return null;
  if (/^\d{4}(-\d{2}(-\d{2})?)?$/.test(value)) return { birthdate: value };
  if (/^[A-Za-z]*-?[A-Za-z]*\d[A-Za-z0-9_./|:-]*$/.test(value)) return { identifier: value };
  return { name: value };
}

/** How long access lasts when a clinician asks for it or a patient approves it without a date. */
export const DEFAULT_ACCESS_DAYS = 30;

/** The instant `days` days from now, as the API takes instants (RFC 3339). */
export function daysFromNow(days: number): string {
  return new Date(Date.now() + days * 86_400_000).toISOString();
}

/** The claims of our own access token that the screens need (the server verifies it). */
export interface Claims {
  sub: string;
  role: string;
  exp: number;
}

export function claimsOf(token: string): Claims | null {
  const payload = token.split('.')[1];
  if (!payload) return null;
  try {
    const json: unknown = JSON.parse(atob(payload.replace(/-/g, '+').replace(/_/g, '/')));
    if (typeof json !== 'object' || json === null) return null;
    const { sub, role, exp } = json as Record<string, unknown>;
    return typeof sub === 'string' && typeof role === 'string' && typeof exp === 'number' ? { sub, role, exp } : null;
  } catch {
    return null;
  }
}
