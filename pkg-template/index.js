// gander-rwkv: RWKV-7 language models in the browser, on WebGPU with a wasm CPU fallback.
// The API is design.md's "JavaScript API" contract; see README.md for a walk-through.

import { loadModel, setWasmUrl, initWasm, wasmMemoryBytes } from './engine.js';
import { WorkerModel } from './client.js';
import { ModelStore } from './store.js';
import { checkOptions, is } from './options.js';
import { toGanderError } from './errors.js';

export {
  GanderError, AbortedError, QuotaError, BadModelError, BadInputError, StateMismatchError,
  NoWebGPUError, DeviceLostError,
} from './errors.js';
export { ModelStore, setWasmUrl };

const LOAD_OPTIONS = {
  backend: is.oneOf('auto', 'webgpu', 'cpu'),
  worker: is.bool,
  onProgress: is.func,
  signal: is.signal,
  wasmUrl: is.url,
};

export class Gander {
  /**
   * Load a model from an ArrayBuffer, Uint8Array, Blob/File, URL or `{store: name}`.
   * Options: `backend` ('auto' | 'webgpu' | 'cpu'), `worker`, `onProgress`, `signal`, `wasmUrl`.
   */
  static async load(source, options = {}) {
    checkOptions('Gander.load', options, LOAD_OPTIONS);
    const opts = { ...(options ?? {}) };
    try {
      if (opts.worker) return await WorkerModel.load(source, opts);
      return await loadModel(source, opts, (s) => ModelStore.open(s.database ? { database: s.database } : {}));
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
