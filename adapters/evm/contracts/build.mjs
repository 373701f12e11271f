// Compiles the Solidity contracts offline with solc-js (pinned compiler and
// evmVersion) into <Name>.json ({abi, bytecode}), the artifacts the Rust client embeds.
//   node build.mjs          write the artifacts
//   node build.mjs --check  fail if a committed artifact differs from a fresh compile
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const solc = require('solc');
const here = new URL('.', import.meta.url).pathname;
const CONTRACTS = ['MerkleAnchor', 'BridgeAnchor'];

function compile(name) {
  const file = `${name}.sol`;
  const input = {
    language: 'Solidity',
    sources: { [file]: { content: readFileSync(here + file, 'utf8') } },
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
  const contract = output.contracts[file][name];
  return JSON.stringify(
    { compiler: `solc ${solc.version()}`, evmVersion: 'paris', abi: contract.abi, bytecode: { object: '0x' + contract.evm.bytecode.object } },
    null,
    2,
  ) + '\n';
}

let stale = false;
for (const name of CONTRACTS) {
  const artifact = compile(name);
  const path = `${here}${name}.json`;
  if (process.argv.includes('--check')) {
    if (readFileSync(path, 'utf8') !== artifact) {
      console.error(`${name}.json differs from a fresh compile of ${name}.sol: run \`node build.mjs\``);
      stale = true;
    } else {
      console.log(`${name}.json matches a fresh compile`);
    }
  } else {
    writeFileSync(path, artifact);
    console.log(`wrote ${path}`);
  }
}
if (stale) process.exit(1);
