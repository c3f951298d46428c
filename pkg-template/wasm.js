// Loading the wasm module once per thread (a leaf module: engine.js, sql.js, convert.js and the
// worker import it, so none of them import each other for it), and telling an allocation
// failure of the engine from a bug when it traps.

import init, * as wasm from './gander.js';
import { BadInputError, GanderError, setEngineMemory } from './errors.js';

let wasmUrl;
let ready;
let exports;

/** wasm32's ceiling on linear memory (browsers allow the whole 4 GiB to a module that, like this
 *  one, declares no maximum). */
export const WASM32_MAX = 4 * 1024 * 1024 * 1024;

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

/** Can the engine's allocator hand out `bytes` now? (Allocated and freed at once; a failure
 *  traps inside the allocator, which leaves it consistent.) */
function allocatorCanGive(bytes) {
  if (!exports || !exports.__wbindgen_malloc || !exports.__wbindgen_free) return true;
  let ptr;
  try {
    ptr = exports.__wbindgen_malloc(bytes, 8) >>> 0;
  } catch {
    return false;
  }
  try { exports.__wbindgen_free(ptr, bytes, 8); } catch { /* freed or not: nothing to do */ }
  return true;
}

const MiB = 1048576;

/** Did trap `e` happen while JavaScript was copying a call's arguments into wasm memory (the
 *  allocator entry is the only wasm frame), before any Rust code of the call ran? Then the call
 *  changed nothing. */
export function trapBeforeCall(e) {
  if (!exports) return false;
  const frames = [...String(e && e.stack).matchAll(/wasm-function\[(\d+)\]/g)].map((m) => m[1]);
  return frames.length === 1 && (frames[0] === exports.__wbindgen_malloc?.name || frames[0] === exports.__wbindgen_realloc?.name);
}

/**
 * Was trap `e` an allocation failure? The engine never panics by design (src/web/mod.rs), so an
 * `unreachable` trap is Rust's response to a failed allocation, unless it is a bug. It counts as
 * out of memory when it trapped in the allocator entry that JavaScript calls to copy arguments
 * in (`__wbindgen_malloc`: the stack names its function index), when the build reports the
 * failed request (an `allocFailure` export, if the Rust side adds one), when what the call asked
 * for cannot fit under 4 GiB, or when the allocator cannot give a modest probe now (memory is
 * full). Anything else stays INTERNAL.
 */
function classifyTrap(e, { requested } = {}) {
  if (!/unreachable/i.test(String(e && e.message))) return 'internal';
  if (!exports) return 'internal';
  try {
    // The raw export (a glue function would not exist in older builds, and bundlers warn).
    const failed = typeof exports.allocFailure === 'function' ? Number(exports.allocFailure()) : 0;
    if (failed > 0) return 'oom';
  } catch { /* an older build: fall through */ }
  const top = /wasm-function\[(\d+)\]/.exec(String(e.stack))?.[1];
  if (top !== undefined && (top === exports.__wbindgen_malloc?.name || top === exports.__wbindgen_realloc?.name)) return 'oom';
  const used = wasmMemoryBytes();
  if (requested && used + requested > WASM32_MAX) return 'oom';
  const probe = requested ? Math.min(requested, 512 * MiB) : Math.min(512 * MiB, Math.max(16 * MiB, used / 8));
  return allocatorCanGive(probe) ? 'internal' : 'oom';
}

setEngineMemory({ bytes: () => (exports ? wasmMemoryBytes() : null), trap: classifyTrap });
