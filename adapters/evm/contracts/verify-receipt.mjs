#!/usr/bin/env node
// Verifies an EMR Ledger receipt against a target chain's bridge contract with
// nothing but the chain's JSON-RPC: no EMR Ledger code, no dependencies.
//
//   node verify-receipt.mjs --rpc URL --contract 0x… --receipt receipt.json
//        [--event canonical-bytes.bin] [--transaction 0x… --confirmations N]
//
// 1. with --event: SHA-256(0x00 ‖ the event's canonical bytes) is the receipt's leaf;
// 2. the receipt's inclusion path leads from its leaf to its root (RFC 9162);
// 3. the contract holds that root for the receipt's tree size (rootOf);
// 4. with --transaction: that transaction succeeded, emitted the contract's
//    HeadBridged event for this tree size, and has N confirmations.
// Prints a JSON report; exits 0 when every check passed, 1 otherwise.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';

// 4-byte selector of rootOf(uint64): the first bytes of keccak256("rootOf(uint64)").
const ROOT_OF = '0x9d7384d9';

function args() {
  const out = {};
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) out[argv[i].replace(/^--/, '')] = argv[i + 1];
  for (const required of ['rpc', 'contract', 'receipt']) {
    if (!out[required]) {
      console.error(`missing --${required}`);
      process.exit(2);
    }
  }
  return out;
}

const sha256 = (...parts) => createHash('sha256').update(Buffer.concat(parts)).digest();
const node = (left, right) => sha256(Buffer.from([1]), left, right);

// RFC 9162 section 2.1.3.2: the root the path gives for leaf `index` of `size`.
function rootFromPath(index, size, leaf, path) {
  if (index >= size) return null;
  let fn = index;
  let sn = size - 1n;
  let r = leaf;
  for (const p of path) {
    if (sn === 0n) return null;
    if ((fn & 1n) === 1n || fn === sn) {
      r = node(p, r);
      while ((fn & 1n) === 0n && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      r = node(r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  return sn === 0n ? r : null;
}

async function rpc(url, method, params) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
  });
  const reply = await response.json();
  if (reply.error) throw new Error(`${method}: ${JSON.stringify(reply.error)}`);
  return reply.result;
}

const options = args();
const receipt = JSON.parse(readFileSync(options.receipt, 'utf8'));
const checks = [];
const check = (name, ok, detail) => checks.push({ check: name, ok, detail });

const leaf = Buffer.from(receipt.leaf_hash, 'hex');
if (options.event) {
  const computed = sha256(Buffer.from([0]), readFileSync(options.event));
  check('leaf', computed.equals(leaf), `SHA-256(0x00 ‖ event) = ${computed.toString('hex')}`);
}
const size = BigInt(receipt.tree_size);
const computedRoot = rootFromPath(BigInt(receipt.leaf_index), size, leaf, receipt.path.map((h) => Buffer.from(h, 'hex')));
check('inclusion', computedRoot !== null && computedRoot.toString('hex') === receipt.root, `path gives ${computedRoot?.toString('hex')}`);

const data = ROOT_OF + size.toString(16).padStart(64, '0');
const onChain = (await rpc(options.rpc, 'eth_call', [{ to: options.contract, data }, 'latest'])).replace(/^0x/, '');
check('root-on-chain', onChain === receipt.root, `rootOf(${size}) = ${onChain}`);

if (options.transaction) {
  const mined = await rpc(options.rpc, 'eth_getTransactionReceipt', [options.transaction]);
  const sizeTopic = '0x' + size.toString(16).padStart(64, '0');
  const emitted = mined?.logs?.some(
    (log) => log.address.toLowerCase() === options.contract.toLowerCase() && log.topics[1] === sizeTopic,
  );
  check('transaction', mined?.status === '0x1' && Boolean(emitted), mined ? `status ${mined.status}, block ${BigInt(mined.blockNumber)}` : 'not on chain');
  if (mined) {
    const head = BigInt(await rpc(options.rpc, 'eth_blockNumber', []));
    const confirmations = head - BigInt(mined.blockNumber) + 1n;
    const wanted = BigInt(options.confirmations ?? '1');
    check('confirmations', confirmations >= wanted, `${confirmations} of ${wanted}`);
  }
}

const ok = checks.every((c) => c.ok);
console.log(JSON.stringify({ ok, tree_size: receipt.tree_size, root: receipt.root, checks }, null, 2));
process.exit(ok ? 0 : 1);
