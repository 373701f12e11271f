// Receipt verification in the browser, step by step (docs/receipts.md, format
// `emr-receipt/1`): the auditor's own check, with nothing but Web Crypto — the
// server's word is not needed for any step but the anchor lookups it lists.

/** One step of a verification and what it found. */
export interface Step {
  name: 'canonical' | 'leaf' | 'inclusion' | 'head' | 'signature';
  ok: boolean;
  detail: string;
}

export interface TreeHead {
  size: number;
  root: string;
  first_position: number;
  last_position: number;
  signed_at: string;
  key: string;
  signature: string;
}

export interface Anchor {
  ledger: string;
  transaction_id: string;
  block: number;
  status?: string;
}

export interface Receipt {
  format: string;
  leaf_hash: string;
  leaf_index: number;
  tree_size: number;
  root: string;
  path: string[];
  head: TreeHead;
  anchors: Anchor[];
}

const HASH = /^[0-9a-f]{64}$/;

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The receipt as served, or null when it is not one (a wrong shape is a failed check, not a crash). */
export function asReceipt(value: unknown): Receipt | null {
  if (!isObject(value) || !isObject(value.head) || !Array.isArray(value.path) || !Array.isArray(value.anchors)) return null;
  const { head } = value;
  const numbers = [value.leaf_index, value.tree_size, head.size, head.first_position, head.last_position];
  const texts = [value.format, value.leaf_hash, value.root, head.root, head.signed_at, head.key, head.signature];
  if (!numbers.every((n) => typeof n === 'number') || !texts.every((t) => typeof t === 'string')) return null;
  if (!value.path.every((p) => typeof p === 'string') || !value.anchors.every(isObject)) return null;
  return value as unknown as Receipt;
}

/** JSON with object keys sorted at every level and no whitespace: the event's canonical text. */
export function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (isObject(value)) {
    const keys = Object.keys(value).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${keys.map((key) => `${JSON.stringify(key)}:${canonical(value[key])}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

function hexOf(bytes: ArrayBuffer | Uint8Array): string {
  return [...new Uint8Array(bytes)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

function bytesOf(hex: string): Uint8Array<ArrayBuffer> {
  return new Uint8Array((hex.match(/../g) ?? []).map((pair) => parseInt(pair, 16)));
}

async function sha256(...parts: Uint8Array[]): Promise<Uint8Array<ArrayBuffer>> {
  const joined = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    joined.set(part, at);
    at += part.length;
  }
  return new Uint8Array(await crypto.subtle.digest('SHA-256', joined));
}

/** `signed_at` as the head signs it: RFC 3339 UTC with exactly six fractional digits. */
export function signedInstant(text: string): string | null {
  const match = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,6}))?(?:Z|\+00:00)$/.exec(text);
  if (!match) return null;
  return `${match[1]}.${(match[2] ?? '').padEnd(6, '0')}Z`;
}

/** Checks `receipt` for `event` (the history entry exactly as served). */
export async function verify(event: unknown, receipt: Receipt): Promise<Step[]> {
  const steps: Step[] = [];
  const encoder = new TextEncoder();
  const bytes = encoder.encode(`emr-event/1\n${canonical(event)}`);
  steps.push({ name: 'canonical', ok: receipt.format === 'emr-receipt/1', detail: `${bytes.length} bytes; format ${receipt.format}` });

  const leaf = hexOf(await sha256(new Uint8Array([0]), bytes));
  steps.push({ name: 'leaf', ok: leaf === receipt.leaf_hash, detail: `SHA-256(0x00 ‖ bytes) = ${leaf}` });

  // RFC 9162 §2.1.3.2.
  let fn = receipt.leaf_index;
  let sn = receipt.tree_size - 1;
  let r = bytesOf(leaf);
  let pathOk = receipt.path.every((p) => HASH.test(p)) && fn <= sn;
  for (const p of receipt.path) {
    if (!pathOk || sn === 0) {
      pathOk = false;
      break;
    }
    if (fn % 2 === 1 || fn === sn) {
      r = await sha256(new Uint8Array([1]), bytesOf(p), r);
      while (fn % 2 === 0 && fn !== 0) {
        fn = Math.floor(fn / 2);
        sn = Math.floor(sn / 2);
      }
    } else {
      r = await sha256(new Uint8Array([1]), r, bytesOf(p));
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  const root = hexOf(r);
  steps.push({
    name: 'inclusion',
    ok: pathOk && sn === 0 && root === receipt.root,
    detail: `${receipt.path.length} hashes from leaf ${receipt.leaf_index} to root ${root} of ${receipt.tree_size} leaves`,
  });

  const { head } = receipt;
  steps.push({ name: 'head', ok: head.size === receipt.tree_size && head.root === receipt.root, detail: `head of ${head.size} leaves, root ${head.root}` });

  const instant = signedInstant(head.signed_at);
  let signatureOk = false;
  if (instant && /^[0-9a-f]{64}$/.test(head.key)) {
    const text = `emr-tree-head/1\n${head.size}\n${head.root}\n${head.first_position}\n${head.last_position}\n${instant}\n${head.key}`;
    try {
      const key = await crypto.subtle.importKey('raw', bytesOf(head.key), { name: 'Ed25519' }, false, ['verify']);
      const signature = Uint8Array.from(atob(head.signature), (c) => c.charCodeAt(0));
      signatureOk = await crypto.subtle.verify({ name: 'Ed25519' }, key, signature, encoder.encode(text));
    } catch {
      signatureOk = false;
    }
  }
  steps.push({ name: 'signature', ok: signatureOk, detail: `Ed25519 by ${head.key}, signed ${head.signed_at}` });
  return steps;
}
