// Runs the WASI build of examples/wasm_bench.rs in Node (single thread, simd128).
// Usage: node bench/wasm_bench.mjs MODEL [PROMPT_TOKENS] [GEN_TOKENS]
import { readFile } from 'node:fs/promises';
import { WASI } from 'node:wasi';
import path from 'node:path';

const [model, ...rest] = process.argv.slice(2);
if (!model) {
  console.error('usage: node bench/wasm_bench.mjs MODEL [PROMPT_TOKENS] [GEN_TOKENS]');
  process.exit(2);
}
const dir = path.dirname(path.resolve(model));
const wasi = new WASI({
  version: 'preview1',
  args: ['wasm_bench', '/model/' + path.basename(model), ...rest],
  preopens: { '/model': dir },
});
const wasmPath = new URL('../target/wasm32-wasip1/release/examples/wasm_bench.wasm', import.meta.url);
const module = await WebAssembly.compile(await readFile(wasmPath));
const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
process.exitCode = wasi.start(instance);
