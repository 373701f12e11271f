import { describe, expect, it } from 'vitest';

import { claimsOf, patientQuery, validIcd10, validLongText, validMrn, validPassword, validShortText, validTotp, validUsername } from './validation';

describe('form rules mirror the API', () => {
  it('accepts the usernames the API accepts and nothing else', () => {
    expect(validUsername('dr_li-2')).toBe(true);
    expect(validUsername('ab')).toBe(false);
    expect(validUsername('has space')).toBe(false);
    expect(validUsername('x'.repeat(65))).toBe(false);
  });

  it('wants passwords of twelve characters mixing three kinds', () => {
    expect(validPassword('Choose-A-Long-One-9')).toBe(true);
    expect(validPassword('short-A-9')).toBe(false);
    expect(validPassword('alllowercaseletters')).toBe(false);
  });

  it('takes six-digit codes, short texts and MRNs as the server does', () => {
    expect(validTotp('012345')).toBe(true);
    expect(validTotp('12345')).toBe(false);
    expect(validTotp('12345a')).toBe(false);
    expect(validShortText('unresponsive on arrival')).toBe(true);
    expect(validShortText('   ')).toBe(false);
    expect(validShortText('x'.repeat(201))).toBe(false);
    expect(validShortText('line\nbreak')).toBe(false);
    expect(validShortText('C1 control \u0085')).toBe(false);
    expect(validLongText('rest\nfluids\tdaily')).toBe(true);
    expect(validLongText('x'.repeat(20_000))).toBe(true);
    expect(validLongText('x'.repeat(20_001))).toBe(false);
    expect(validLongText(' \n ')).toBe(false);
    expect(validLongText('bell \u0007')).toBe(false);
    expect(validMrn('MRN-2024/0001')).toBe(true);
    expect(validMrn('has space')).toBe(false);
    for (const good of ['J18.9', 'E11', 'S72.001A', 'c34.90', 'O9A.11']) expect(validIcd10(good)).toBe(true);
    for (const bad of ['', 'J1', '18.9', 'J18.', 'J18.12345', 'J18-9', 'JJ8.9']) expect(validIcd10(bad)).toBe(false);
  });
});

describe('the patient search box', () => {
  it('tells birth dates, identifiers and names apart', () => {
    expect(patientQuery(' 1980-02 ')).toEqual({ birthdate: '1980-02' });
    expect(patientQuery('MRN-0001')).toEqual({ identifier: 'MRN-0001' });
    expect(patientQuery('wang f')).toEqual({ name: 'wang f' });
    expect(patientQuery('王')).toEqual({ name: '王' });
    expect(patientQuery('  ')).toBeNull();
  });
});

describe('access token claims', () => {
  it('reads subject, role and expiry, and refuses anything else', () => {
    const payload = btoa(JSON.stringify({ sub: 'u1', role: 'physician', exp: 1 })).replace(/=+$/, '');
    expect(claimsOf(`h.${payload}.s`)).toEqual({ sub: 'u1', role: 'physician', exp: 1 });
    expect(claimsOf('not-a-token')).toBeNull();
    expect(claimsOf('h.e30.s')).toBeNull();
  });
});
