import { describe, expect, it } from 'vitest';

import type { Schemas } from '../api/client';
import { diffContent, diffLines } from './diff';

const first: Schemas['RecordContent'] = {
  title: 'Community-acquired pneumonia',
  description: 'Fever for three days\nCough',
  diagnosis: { code: 'J18.9', description: 'Pneumonia, unspecified' },
  treatment: null,
  medications: [],
};

describe('a line diff', () => {
  it('keeps common lines and marks what was removed and added, in order', () => {
    expect(diffLines(['a', 'b', 'c'], ['a', 'x', 'c', 'd'])).toEqual([
      { op: 'same', text: 'a' },
      { op: 'removed', text: 'b' },
      { op: 'added', text: 'x' },
      { op: 'same', text: 'c' },
      { op: 'added', text: 'd' },
    ]);
  });

  it('of identical or empty sides has nothing added or removed', () => {
    expect(diffLines(['a'], ['a'])).toEqual([{ op: 'same', text: 'a' }]);
    expect(diffLines([], [])).toEqual([]);
    expect(diffLines([], ['new'])).toEqual([{ op: 'added', text: 'new' }]);
  });
});

describe('a diff between two versions', () => {
  it('marks exactly the fields an amendment changed', () => {
    const amended: Schemas['RecordContent'] = {
      ...first,
      description: 'Fever for three days\nProductive cough',
      treatment: 'Amoxicillin',
      medications: [{ name: 'amoxicillin', dose: { amount: '500', unit: 'mg' }, route: 'oral', frequency: 'three times daily' }],
    };
    const changes = diffContent(first, amended);
    expect(changes.filter((c) => c.changed).map((c) => c.field)).toEqual(['description', 'treatment', 'medications']);
    expect(changes.find((c) => c.field === 'description')?.lines).toEqual([
      { op: 'same', text: 'Fever for three days' },
      { op: 'removed', text: 'Cough' },
      { op: 'added', text: 'Productive cough' },
    ]);
    expect(changes.find((c) => c.field === 'medications')?.lines).toEqual([{ op: 'added', text: 'amoxicillin 500 mg oral three times daily' }]);
  });

  it('against a shredded (absent) version shows the whole later content as added', () => {
    const changes = diffContent(null, first);
    expect(changes.every((c) => c.lines.every((line) => line.op === 'added'))).toBe(true);
    expect(changes.find((c) => c.field === 'title')?.changed).toBe(true);
  });
});
