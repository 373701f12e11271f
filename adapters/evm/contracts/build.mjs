// Compiles MerkleAnchor.sol offline with solc-js (pinned compiler and evmVersion)
// into MerkleAnchor.json ({abi, bytecode}), the artifact the Rust client embeds.
//   node build.mjs          write the artifact
//   node build.mjs --check  fail if the committed artifact differs from a fresh compile
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const solc = require('solc');
const here = new URL('.', import.meta.url).pathname;
const source = readFileSync(here + 'MerkleAnchor.sol', 'utf8');
const input = {
  language: 'Solidity',
  sources: { 'MerkleAnchor.sol': { content: source } },
  settings: {
    evmVersion: 'paris',
    optimizer: { enabled: true, runs: 200 },
    metadata: { bytecodeHash: 'none' },
    outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object'] } },
  },
};
const output = JSON.parse(solc.compile(JSON.stringify(input)));
const errors = (output.errors || []).filter((e) => e.severity === 'error');
if (errors.length) {
  console.error(errors.map((e) => e.formattedMessage).join('\n'));
  process.exit(1);
}
const contract = output.contracts['MerkleAnchor.sol'].MerkleAnchor;
const artifact = JSON.stringify(
  { compiler: `solc ${solc.version()}`, evmVersion: 'paris', abi: contract.abi, bytecode: { object: '0x' + contract.evm.bytecode.object } },
  null,
  2,
) + '\n';
const path = here + 'MerkleAnchor.json';
if (process.argv.includes('--check')) {
  if (readFileSync(path, 'utf8') !== artifact) {
    console.error('MerkleAnchor.json differs from a fresh compile of MerkleAnchor.sol: run `node build.mjs`');
    process.exit(1);
  }
  console.log('MerkleAnchor.json matches a fresh compile');
} else {
  writeFileSync(path, artifact);
  console.log(`wrote ${path}`);
}
