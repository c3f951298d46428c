// Cargo runner for wasm32-wasip1 test binaries: runs them in Node's WASI with the crate and the
// temp directory visible at their real paths. Used by `make test` through
// CARGO_TARGET_WASM32_WASIP1_RUNNER.
import { readFile } from 'node:fs/promises';
import { WASI } from 'node:wasi';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const [wasmFile, ...args] = process.argv.slice(2);
const crate = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const wasi = new WASI({
  version: 'preview1',
  args: [path.basename(wasmFile), ...args],
  env: { RUST_BACKTRACE: '1' },
  preopens: { [crate]: crate, '/tmp': '/tmp' },
});
const module = await WebAssembly.compile(await readFile(wasmFile));
const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
process.exitCode = wasi.start(instance);
