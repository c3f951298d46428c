// Loading the wasm module once per thread (a leaf module: engine.js, sql.js, store.js and the
// worker import it, so none of them import each other for it).

import init, * as wasm from './gander.js';
import { BadInputError, GanderError } from './errors.js';

let wasmUrl;
let ready;
let exports;

/** Use another URL for gander_bg.wasm (call before the first load). */
export function setWasmUrl(url) {
  if (ready) throw new BadInputError('setWasmUrl: the wasm module is already loaded; call it before the first load');
  wasmUrl = url;
}

/** Load the wasm module once. */
export function initWasm(url) {
  if (url !== undefined && !ready) wasmUrl = url;
  if (!ready) {
    const arg = wasmUrl !== undefined ? { module_or_path: wasmUrl } : undefined;
    ready = init(arg).then((x) => { exports = x; return wasm; }, (e) => {
      ready = undefined;
      throw new GanderError('WASM_LOAD', `could not load gander_bg.wasm (${e.message}); serve it as application/wasm next to gander.js, or call setWasmUrl()`);
    });
  }
  return ready;
}

/** Bytes of wasm linear memory on this thread (it only grows): tests check streaming with it. */
export function wasmMemoryBytes() {
  return exports ? exports.memory.buffer.byteLength : 0;
}
