// What changed between two versions of a record: field by field, and line by
// line inside the narrative fields, so an amendment reads like a change mark-up.
import type { Schemas } from '../api/client';

type Content = Schemas['RecordContent'];

export const FIELDS = ['title', 'description', 'diagnosis', 'treatment', 'medications'] as const;
export type Field = (typeof FIELDS)[number];

/** One line of a line diff: kept, added in the later version, or removed from the earlier. */
export interface Line {
  op: 'same' | 'added' | 'removed';
  text: string;
}

export interface FieldChange {
  field: Field;
  changed: boolean;
  lines: Line[];
}

function medication(m: Schemas['Medication']): string {
  return `${m.name} ${m.dose.amount} ${m.dose.unit} ${m.route} ${m.frequency}`;
}

/** A field as the lines a reader compares (an absent field has none). */
export function linesOf(content: Content | null | undefined, field: Field): string[] {
  if (!content) return [];
  switch (field) {
    case 'title':
      return [content.title];
    case 'description':
      return content.description ? content.description.split('\n') : [];
    case 'treatment':
      return content.treatment ? content.treatment.split('\n') : [];
    case 'diagnosis':
      return content.diagnosis ? [`${content.diagnosis.code} ${content.diagnosis.description}`] : [];
    case 'medications':
      return content.medications.map(medication);
  }
}

/** A shortest line diff (longest common subsequence), earlier lines before later ones. */
export function diffLines(before: string[], after: string[]): Line[] {
  const width = after.length + 1;
  // common[i * width + j]: length of the longest common subsequence of before[i..] and after[j..].
  const common = new Uint32Array((before.length + 1) * width);
  const at = (i: number, j: number): number => common[i * width + j] ?? 0;
  for (let i = before.length - 1; i >= 0; i--) {
    for (let j = after.length - 1; j >= 0; j--) {
      common[i * width + j] = before[i] === after[j] ? at(i + 1, j + 1) + 1 : Math.max(at(i + 1, j), at(i, j + 1));
    }
  }
  const lines: Line[] = [];
  let i = 0;
  let j = 0;
  while (i < before.length || j < after.length) {
    const earlier = before[i];
    const later = after[j];
    if (earlier !== undefined && earlier === later) {
      lines.push({ op: 'same', text: earlier });
      i++;
      j++;
    } else if (earlier !== undefined && (later === undefined || at(i + 1, j) >= at(i, j + 1))) {
      lines.push({ op: 'removed', text: earlier });
      i++;
    } else if (later !== undefined) {
      lines.push({ op: 'added', text: later });
      j++;
    }
  }
  return lines;
}

/** Every field of two versions' contents with its line diff. */
export function diffContent(before: Content | null | undefined, after: Content | null | undefined): FieldChange[] {
  return FIELDS.map((field) => {
    const lines = diffLines(linesOf(before, field), linesOf(after, field));
    return { field, changed: lines.some((line) => line.op !== 'same'), lines };
  });
}
