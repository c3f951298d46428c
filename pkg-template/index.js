// gander-rwkv: RWKV-7 language models in the browser, on WebGPU with a wasm CPU fallback.
// The API is design.md's "JavaScript API" contract; see README.md for a walk-through.

import { loadModel, setWasmUrl, initWasm, wasmMemoryBytes } from './engine.js';
import { WorkerModel } from './client.js';
import { ModelStore, openStoreFor } from './store.js';
import { checkOptions, is, QUANTS } from './options.js';
import { toGanderError } from './errors.js';
import { inspect } from './inspect.js';

export {
  GanderError, AbortedError, QuotaError, BadModelError, BadInputError, StateMismatchError,
  NoWebGPUError, DeviceLostError, OutOfMemoryError,
} from './errors.js';
export { ModelStore, setWasmUrl };
export { formatChat, ReplySplitter, TURN_STOPS } from './chat-format.js';
export { CHAT_DEFAULTS, CHAT_CACHE_BYTES } from './chat.js';
export { sqlTable } from './sql.js';

const LOAD_OPTIONS = {
  backend: is.oneOf('auto', 'webgpu', 'cpu'),
  worker: is.bool,
  onProgress: is.func,
  signal: is.signal,
  wasmUrl: is.url,
  quant: is.oneOf(...QUANTS),
  cache: [(v) => typeof v === 'boolean' || (v && typeof v === 'object'
    && Object.keys(v).every((k) => (k === 'database' && typeof v[k] === 'string') || (k === 'chunkSize' && Number.isInteger(v[k]) && v[k] >= 65536))),
  'true (default) | false | {database?, chunkSize? (bytes, at least 64 KiB)}'],
  chatCache: [(v) => v && typeof v === 'object'
    && Object.keys(v).every((k) => k === 'maxBytes' || k === 'persist')
    && (v.maxBytes === undefined || (Number.isSafeInteger(v.maxBytes) && v.maxBytes >= 0))
    && (v.persist === undefined || typeof v.persist === 'boolean' || (typeof v.persist === 'object' && v.persist !== null
      && Object.keys(v.persist).every((k) => (k === 'database' && typeof v.persist[k] === 'string') || (k === 'keep' && Number.isInteger(v.persist[k]) && v.persist[k] > 0)))),
  '{maxBytes?: bytes (default 64 MiB, 0 = no cache), persist?: true | {database?, keep?}}'],
};

/** Workers are the default where they exist: generation never blocks the page. */
const HAS_WORKERS = typeof Worker !== 'undefined';

export class Gander {
  /**
   * Load a model from an ArrayBuffer, Uint8Array, Blob/File, URL or `{store: name}`.
   * Options: `backend` ('auto' | 'webgpu' | 'cpu'), `worker` (default: true where Workers
   * exist), `cache` (a URL is downloaded by range requests into the IndexedDB store and read from
   * there, resumably; the next load reads only the store: default true, false to download into
   * memory; cache.js), `quant` ('f32' | 'f16' | 'int8' | 'q4': each matrix converted as it is
   * read, so a `.pth` of any size loads within memory), `onProgress`, `signal`, `wasmUrl`,
   * `chatCache` ({maxBytes, persist}).
   */
  static async load(source, options = {}) {
    checkOptions('Gander.load', options, LOAD_OPTIONS);
    const opts = { ...(options ?? {}) };
    try {
      if (opts.worker ?? HAS_WORKERS) return await WorkerModel.load(source, opts);
      return await loadModel(source, opts, openStoreFor);
    } catch (e) {
      throw toGanderError(e);
    }
  }

  /**
   * What a checkpoint is and what it would cost, from its headers alone: a URL is read with a
   * few range requests (`fetchedBytes` says how many bytes), a Blob or File by slices. Returns
   * the config, parameter count, layout, state size, and per quantisation the file and memory
   * sizes and whether this browser's storage, wasm memory and WebGPU adapter can hold them.
   */
  static async inspect(source, options = {}) {
    checkOptions('Gander.inspect', options, { signal: is.signal, wasmUrl: is.url });
    try {
      return await inspect(source, options ?? {});
    } catch (e) {
      throw toGanderError(e);
    }
  }

  /** Load the wasm module ahead of time (optional; `load` does it on first use). */
  static async init(wasmUrl) {
    await initWasm(wasmUrl);
  }

  /** Bytes of wasm memory on the page's thread (diagnostics; the engine's, without a worker). */
  static wasmMemoryBytes() {
    return wasmMemoryBytes();
  }
}

export default Gander;
