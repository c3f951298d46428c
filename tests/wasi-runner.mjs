// Cargo runner for wasm32-wasip1 test binaries: runs them in Node's WASI with the crate and the
// temp directory visible at their real paths. Used by `make test` through
// CARGO_TARGET_WASM32_WASIP1_RUNNER.
//
// The binary runs in a child Node process. Node 20 has been seen to die by SIGSEGV on exit
// after a test binary had printed "test result: ok" (once in about 50 runs, on a loaded machine;
// not reproducible on demand): a crash of the runtime, not of a test. A child killed by a signal
// is therefore run once more, and that second run's exit status is the result, so a real
// failure (which fails every time) still fails.
import { readFile } from 'node:fs/promises';
import { spawnSync } from 'node:child_process';
import { WASI } from 'node:wasi';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const [wasmFile, ...args] = process.argv.slice(2);
const self = fileURLToPath(import.meta.url);

if (process.env.GANDER_WASI_CHILD) {
  const crate = path.resolve(path.dirname(self), '..');
  const wasi = new WASI({
    version: 'preview1',
    args: [path.basename(wasmFile), ...args],
    env: { RUST_BACKTRACE: '1' },
    preopens: { [crate]: crate, '/tmp': '/tmp' },
  });
  const module = await WebAssembly.compile(await readFile(wasmFile));
  const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
  process.exitCode = wasi.start(instance);
} else {
  const run = () => spawnSync(process.execPath, ['--no-warnings', self, wasmFile, ...args], {
    stdio: 'inherit',
    env: { ...process.env, GANDER_WASI_CHILD: '1' },
  });
  let r = run();
  if (r.signal) {
    console.error(`wasi-runner: node died by ${r.signal}; running ${path.basename(wasmFile)} once more`);
    r = run();
  }
  process.exitCode = r.signal ? 1 : r.status ?? 1;
  if (r.signal) console.error(`wasi-runner: node died by ${r.signal} again`);
}
