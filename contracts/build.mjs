// Compiles contracts/src/*.sol with the pinned npm `solc` (exact version in package.json) against the pinned
// @openzeppelin/contracts, and writes each contract's ABI and bytecode to contracts/build/<Name>.json. The
// artifacts are committed; `node contracts/build.mjs --check` (run by scripts/test.sh) fails when a fresh
// build differs from them, as gen_protos.sh --check does for the gRPC stubs.
import { existsSync, readFileSync, readdirSync, writeFileSync, mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);
const solc = require("solc");

const root = dirname(fileURLToPath(import.meta.url));
const repo = dirname(root);
const check = process.argv.includes("--check");
// The EVM version the contracts target; tests start anvil with the same hardfork (tests/support/chain.py).
export const EVM_VERSION = "cancun";

const sources = {};
for (const f of readdirSync(join(root, "src")).filter((f) => f.endsWith(".sol")).sort()) {
  sources[f] = { content: readFileSync(join(root, "src", f), "utf8") };
}
const input = {
  language: "Solidity",
  sources,
  settings: {
    evmVersion: EVM_VERSION,
    optimizer: { enabled: true, runs: 200 },
    // No metadata hash appended: the bytecode then depends only on the sources and settings, not on paths.
    metadata: { bytecodeHash: "none", appendCBOR: false },
    outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
  },
};

function findImports(path) {
  const file = join(repo, "node_modules", path);
  return existsSync(file) ? { contents: readFileSync(file, "utf8") } : { error: `not found: ${path}` };
}

const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
const errors = (output.errors || []).filter((e) => e.severity === "error");
for (const e of output.errors || []) console.error(e.formattedMessage);
if (errors.length) process.exit(1);

const compiler = `solc ${solc.version()}`;
const artifacts = {};
for (const [file, contracts] of Object.entries(output.contracts)) {
  if (!sources[file]) continue;
  for (const [name, c] of Object.entries(contracts)) {
    artifacts[`${name}.json`] = JSON.stringify({
      contractName: name,
      source: `contracts/src/${file}`,
      compiler,
      evmVersion: EVM_VERSION,
      abi: c.abi,
      bytecode: `0x${c.evm.bytecode.object}`,
      deployedBytecode: `0x${c.evm.deployedBytecode.object}`,
    }, null, 2) + "\n";
  }
}

const out = join(root, "build");
if (check) {
  const stale = Object.entries(artifacts).filter(
    ([f, text]) => !existsSync(join(out, f)) || readFileSync(join(out, f), "utf8") !== text);
  if (stale.length) {
    console.error(`contracts/build is out of date (${stale.map(([f]) => f).join(", ")}): run node contracts/build.mjs and commit`);
    process.exit(1);
  }
} else {
  mkdirSync(out, { recursive: true });
  for (const [f, text] of Object.entries(artifacts)) writeFileSync(join(out, f), text);
  console.log(`wrote ${Object.keys(artifacts).map((f) => `contracts/build/${f}`).join(", ")} (${compiler}, ${EVM_VERSION})`);
}
