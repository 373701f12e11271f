import { describe, expect, it } from 'vitest';

import { asReceipt, canonical, signedInstant, verify, type Receipt } from './verify';

const hex = (bytes: ArrayBuffer | Uint8Array) => [...new Uint8Array(bytes)].map((b) => b.toString(16).padStart(2, '0')).join('');
const unhex = (text: string) => new Uint8Array((text.match(/../g) ?? []).map((p) => parseInt(p, 16)));
const sha = async (...parts: Uint8Array[]) => {
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  parts.reduce((at, p) => (all.set(p, at), at + p.length), 0);
  return new Uint8Array(await crypto.subtle.digest('SHA-256', all));
};
const leafOf = async (event: unknown) => sha(new Uint8Array([0]), new TextEncoder().encode(`emr-event/1\n${canonical(event)}`));

/** A receipt for the third of three events, signed by a fresh Ed25519 key. */
async function receiptFor(events: unknown[]): Promise<Receipt> {
  const leaves = await Promise.all(events.map(leafOf));
  const [l0, l1, l2] = leaves as [Uint8Array, Uint8Array, Uint8Array];
  const left = await sha(new Uint8Array([1]), l0, l1);
  const root = hex(await sha(new Uint8Array([1]), left, l2));
  const keys = await crypto.subtle.generateKey({ name: 'Ed25519' }, true, ['sign', 'verify']);
  const key = hex(await crypto.subtle.exportKey('raw', keys.publicKey));
  const head = { size: 3, root, first_position: 1, last_position: 3, signed_at: '2026-12-03T09:10:21.3242Z', key, signature: '' };
  const text = `emr-tree-head/1\n3\n${root}\n1\n3\n2026-12-03T09:10:21.324200Z\n${key}`;
  const signature = new Uint8Array(await crypto.subtle.sign({ name: 'Ed25519' }, keys.privateKey, new TextEncoder().encode(text)));
  head.signature = btoa(String.fromCharCode(...signature));
  return { format: 'emr-receipt/1', leaf_hash: hex(l2), leaf_index: 2, tree_size: 3, root, path: [hex(left)], head, anchors: [] };
}

const events = [1, 2, 3].map((sequence) => ({ key: 'patient.p1', sequence, event_type: 'PatientRegistered', payload: { b: 1, a: [sequence] } }));

describe('receipts verify in the browser, step by step', () => {
  it('passes every step for the event it was made for', async () => {
    const receipt = await receiptFor(events);
    const steps = await verify(events[2], receipt);
    expect(steps.map((s) => [s.name, s.ok])).toEqual([
      ['canonical', true],
      ['leaf', true],
      ['inclusion', true],
      ['head', true],
      ['signature', true],
    ]);
  });

  it('fails at the leaf when the event was altered, and at the signature when the head was', async () => {
    const receipt = await receiptFor(events);
    const altered = { ...events[2], payload: { b: 2, a: [3] } };
    expect((await verify(altered, receipt)).filter((s) => !s.ok).map((s) => s.name)).toEqual(['leaf', 'inclusion']);
    const moved = { ...receipt, head: { ...receipt.head, last_position: 4 } };
    expect((await verify(events[2], moved)).filter((s) => !s.ok).map((s) => s.name)).toEqual(['signature']);
    const shortPath = { ...receipt, path: [] };
    expect((await verify(events[2], shortPath)).find((s) => s.name === 'inclusion')?.ok).toBe(false);
  });

  it('sorts keys at every level and reads only receipt-shaped answers', () => {
    expect(canonical({ b: { d: 1, c: [2, { f: 'x', e: null }] }, a: '✓' })).toBe('{"a":"✓","b":{"c":[2,{"e":null,"f":"x"}],"d":1}}');
    expect(asReceipt({ format: 'x' })).toBeNull();
    expect(signedInstant('2026-12-03T09:10:21Z')).toBe('2026-12-03T09:10:21.000000Z');
    expect(signedInstant('2026-12-03T09:10:21.1234567Z')).toBeNull();
    expect(unhex('00ff')).toEqual(new Uint8Array([0, 255]));
  });
});
