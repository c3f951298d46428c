// The engine on the current thread: loads the wasm module, picks the backend, streams a model in,
// and wraps the wasm sessions into the API of design.md. worker.js runs this same code in a
// dedicated Web Worker for `worker: true`.

import * as wasm from './gander.js';
import { initWasm, setWasmUrl, wasmMemoryBytes } from './wasm.js';
import {
  AbortedError, BadInputError, GanderError, NoWebGPUError, toGanderError, throwIfAborted,
} from './errors.js';
import { toIds } from './options.js';
import { openSource, readAll } from './sources.js';
import { askSql } from './sql.js';
import { CHAT_CACHE_BYTES, ChatCache, ChatPersistence, chatChunks, chatPromptLogits, checkCreate, collect, restoreConversation, saveConversation } from './chat.js';

export { initWasm, setWasmUrl, wasmMemoryBytes };

/** A readable adapter name from the browser (wgpu's web backend leaves it empty), or a
 *  NoWebGPUError when the browser offers no adapter at all. */
async function adapterName() {
  let a = null;
  try {
    a = await navigator.gpu.requestAdapter({ powerPreference: 'high-performance' });
  } catch (e) {
    throw new NoWebGPUError(`the browser refused a WebGPU adapter (${e.message})`);
  }
  if (!a) throw new NoWebGPUError('the browser offers no WebGPU adapter (WebGPU turned off, or no supported GPU)');
  const i = a.info;
  const name = i ? [i.vendor, i.architecture, i.device, i.description].filter(Boolean).join(' ') : '';
  return name || 'WebGPU adapter';
}

let gpuOpen;
/** The shared WebGPU device, or a NoWebGPUError saying why there is none. */
async function openGpu() {
  if (typeof navigator === 'undefined' || !navigator.gpu) {
    throw new NoWebGPUError('this browser has no WebGPU (navigator.gpu is missing; in Chromium it needs a secure context, and may be disabled by policy)');
  }
  if (!gpuOpen) {
    gpuOpen = adapterName()
      .then(async (name) => { const g = await wasm.WasmGpu.open(); g.label = name; return g; })
      .catch((e) => { gpuOpen = undefined; throw toGanderError(e); });
  }
  return gpuOpen;
}

/** Forget the device (after it was lost), so the next load asks for a new one. */
function dropGpu() { gpuOpen = undefined; }

function call(f) {
  try { return f(); } catch (e) { throw toGanderError(e); }
}
async function acall(p) {
  try { return await p; } catch (e) { throw toGanderError(e); }
}

/**
 * Load `source` with `opts` ({backend, onProgress, signal, wasmUrl}) on this thread.
 * Returns a LocalModel.
 */
export async function loadModel(source, opts = {}, openStore) {
  const { onProgress, signal } = opts;
  await initWasm(opts.wasmUrl);
  throwIfAborted(signal);
  const src = await openSource(source, { signal, onProgress, openStore });
  try {
    return await loadFrom(src, opts, openStore);
  } finally {
    src.close?.();
  }
}

async function loadFrom(src, opts, openStore) {
  const { backend = 'auto', signal } = opts;
  throwIfAborted(signal);
  if (src.size < 16) throw new GanderError('BAD_MODEL', `the file is ${src.size} bytes long: not a model`);
  const head = await src.read(0, 16);
  const probe = call(() => wasm.probe(head, src.size));
  let gpu = null;
  let reason;
  if (backend === 'cpu') {
    reason = 'the CPU backend was requested';
  } else {
    try {
      gpu = await openGpu();
    } catch (e) {
      if (backend === 'webgpu') throw e;
      reason = `WebGPU is not available: ${e.message}; the wasm CPU path runs instead`;
    }
  }
  const load = (device) => (probe.kind === 'pth' ? loadWhole(src, device, opts) : stream(src, probe, device, opts));
  let model;
  if (gpu) {
    try {
      model = await load(gpu);
      // A first token checks the device end to end (limits, out-of-memory are reported late).
      await warmUp(model);
      if (backend === 'webgpu') {
        reason = 'WebGPU was requested';
      } else {
        // `auto` takes the faster path, not just any adapter: a software adapter (SwiftShader)
        // runs a token in seconds where the CPU path needs milliseconds.
        const gpuMs = await tokenMs(model);
        const cpuMs = model.info().weightBytes / CPU_BYTES_PER_S * 1000;
        const said = `the WebGPU adapter (${gpu.label}) ran a token in ${gpuMs.toFixed(gpuMs < 10 ? 1 : 0)} ms; the wasm CPU path reads this model's ${(model.info().weightBytes / 1048576).toFixed(1)} MiB per token in about ${cpuMs.toFixed(cpuMs < 10 ? 1 : 0)} ms`;
        if (gpuMs > CPU_PREFERRED_FACTOR * cpuMs) {
          model.free();
          model = undefined;
          reason = `${said}, so the CPU path runs it (pass backend: 'webgpu' to use the adapter anyway)`;
        } else {
          reason = `${said}, so WebGPU runs it`;
        }
      }
    } catch (e) {
      if (model) model.free();
      model = undefined;
      const err = toGanderError(e);
      if (backend === 'webgpu' || err.code === 'ABORTED' || err.code === 'BAD_MODEL' || err.code === 'IO') throw err;
      reason = `WebGPU failed to run the model (${err.message}), so the wasm CPU path runs instead`;
      dropGpu();
    }
  }
  if (!model) model = await load(null);
  const m = new LocalModel(model, reason, gpu && model.info().backend === 'webgpu' ? gpu.label : undefined);
  m._setupChat(opts.chatCache, openStore);
  return m;
}

/** Frees the wasm session of a LocalSession the page dropped without dispose(). */
const reclaim = typeof FinalizationRegistry !== 'undefined'
  ? new FinalizationRegistry(({ w, tracked, ref }) => {
    if (tracked.sessions.delete(ref)) tracked.count--;
    if (!w.__freed) { w.__freed = true; w.free(); }
  })
  : null;

/** A conservative estimate of the wasm CPU path's decode bandwidth (weights read per second,
 *  one thread): measured 3.6 to 4.5 GB/s in Chromium on the development VM (Intel Xeon, int8,
 *  README "Speed"); taken lower so that only a clearly slower adapter loses to the CPU. */
const CPU_BYTES_PER_S = 2e9;
/** `auto` keeps WebGPU unless its token takes this many times the CPU estimate. */
const CPU_PREFERRED_FACTOR = 2;

/** Milliseconds of one decoded token on a loaded model (after the warm-up compiled the
 *  pipelines). */
async function tokenMs(m) {
  const s = m.session();
  try {
    const t0 = performance.now();
    await s.forward(new Uint32Array([0]));
    return performance.now() - t0;
  } finally { s.free(); }
}

async function warmUp(m) {
  const s = m.session();
  try { await s.forward(new Uint32Array([0])); } finally { s.free(); }
}

async function loadWhole(src, gpu, { signal, onProgress }) {
  const bytes = await readAll(src);
  throwIfAborted(signal);
  const m = call(() => (gpu ? wasm.WasmModel.fromBytesGpu(bytes, gpu) : wasm.WasmModel.fromBytes(bytes)));
  onProgress?.({ phase: 'load', loaded: src.size, total: src.size, fraction: 1 });
  return m;
}

/** Stream a safetensors file part by part (see the Rust `Loader`). */
async function stream(src, probe, gpu, { signal, onProgress }) {
  const header = await src.read(0, probe.headerLen);
  const loader = call(() => (gpu ? wasm.Loader.forGpu(header, src.size, gpu) : wasm.Loader.forCpu(header, src.size)));
  try {
    let loaded = probe.headerLen;
    for (;;) {
      throwIfAborted(signal);
      const want = loader.wanted();
      if (want === null) break;
      for (const [name, a, b] of want) {
        const bytes = await acall(src.read(a, b));
        call(() => loader.insert(name, bytes));
        loaded += b - a;
      }
      throwIfAborted(signal);
      const [done, total] = call(() => loader.step());
      onProgress?.({ phase: 'load', loaded, total: src.size, fraction: done / total, part: done, parts: total });
      // Let the page breathe between parts (progress bars, abort clicks).
      await new Promise((r) => setTimeout(r, 0));
    }
    return call(() => loader.finish());
  } finally {
    loader.free();
  }
}

/** A loaded model on this thread. */
export class LocalModel {
  constructor(w, reason, adapter) {
    this._w = w;
    const info = { ...w.info(), reason };
    if (adapter) info.adapter = adapter;
    this.info = Object.freeze(info);
    const tok = this.info.tokenizer ? w : null;
    this.tokenizer = Object.freeze({
      encode: (text) => {
        if (typeof text !== 'string') throw new BadInputError('tokenizer.encode: expected a string');
        if (!tok) throw new GanderError('UNSUPPORTED', `no tokenizer for a vocabulary of ${this.info.vocab} rows; pass token ids`);
        return call(() => tok.encode(text));
      },
      decode: (ids) => {
        if (!tok) throw new GanderError('UNSUPPORTED', `no tokenizer for a vocabulary of ${this.info.vocab} rows`);
        return call(() => tok.decode(toIds('tokenizer.decode', ids)));
      },
    });
    // Weak: a session the page drops is reclaimed (see `reclaim`); dispose() frees the rest. The
    // registry holds `_tracked`, not the model, so a model the page drops is reclaimed too
    // (wasm-bindgen frees its weights).
    this._tracked = { sessions: new Set(), count: 0 };
    const create = async (params) => {
      const p = checkCreate(params);
      const chunks = chatChunks(this, p);
      return p.stream ? chunks : collect(chunks);
    };
    this.chat = Object.freeze({
      completions: Object.freeze({ create }),
      saveConversation: (messages, opts) => saveConversation(this, messages, opts),
      restoreConversation: (saved) => restoreConversation(this, saved),
    });
  }

  _setupChat(opts = {}, openStore) {
    const { maxBytes = CHAT_CACHE_BYTES, persist } = opts ?? {};
    const entryBytes = this.info.stateBytes + 4 * this.info.vocab;
    this._chat = { cache: new ChatCache(maxBytes, entryBytes), persist: null, inFlight: new Set() };
    if (persist && openStore) {
      const db = typeof persist === 'object' ? persist : {};
      this._chat.persist = new ChatPersistence(this, () => openStore(db.database ? { database: db.database } : {}), db.keep);
    }
  }

  /** Diagnostics: the conversation cache (entries, bytes). */
  _chatCacheInfo() {
    const c = this._chat.cache;
    return { entries: c.entries.map((e) => ({ text: e.keys[0], keys: e.keys, ids: Array.from(e.ids) })), bytes: c.bytes, maxBytes: c.maxBytes };
  }

  /** One question about a table to one SQL statement (the text-to-SQL demo model); see sql.js. */
  async sql(table, question, options) {
    return askSql(this, table, question, options);
  }

  /** Tests: the logits after a chat request's prompt, reached through the cache. */
  async _chatLogits(params) {
    return chatPromptLogits(this, params);
  }

  /** Live sessions (created and neither disposed nor reclaimed). */
  _liveSessions() {
    return this._tracked.count;
  }

  _track(s) {
    const ref = typeof WeakRef !== 'undefined' ? new WeakRef(s) : { deref: () => s };
    s._ref = ref;
    this._tracked.sessions.add(ref);
    this._tracked.count++;
    reclaim?.register(s, { w: s._w, tracked: this._tracked, ref }, ref);
    return s;
  }

  _untrack(s) {
    if (this._tracked.sessions.delete(s._ref)) {
      this._tracked.count--;
      reclaim?.unregister(s._ref);
    }
  }

  _live() {
    if (!this._w) throw new GanderError('DISPOSED', 'this model was disposed');
    return this._w;
  }

  /** A new session with a zero state. */
  session() {
    return this._track(new LocalSession(this, call(() => this._live().session())));
  }

  /** Free the weights (GPU buffers included) and every session. */
  async dispose() {
    if (this._chat) await this._chat.cache.clear();
    for (const ref of [...this._tracked.sessions]) {
      const s = ref.deref();
      if (s) { this._untrack(s); s._free(); }
    }
    this._tracked.sessions.clear();
    if (this._w) { this._w.free(); this._w = null; }
  }

  /** Diagnostics: bytes of wasm memory of the engine (it only grows; leak tests watch it). */
  async _memoryBytes() {
    return wasmMemoryBytes();
  }

  /** Fault tests: destroy the GPU device as a lost GPU would. */
  _simulateDeviceLoss() {
    this._live().simulateDeviceLoss();
    dropGpu();
  }
}

function promptIds(model, where, prompt) {
  if (prompt === undefined || prompt === null || prompt === '') return new Uint32Array(0);
  if (typeof prompt === 'string') return model.tokenizer.encode(prompt);
  return toIds(where, prompt);
}

/** One conversation: a recurrent state plus the logits after its last token. */
export class LocalSession {
  constructor(model, w) {
    this.model = model;
    this._w = w;
    this.lastGeneration = null;
  }

  _live() {
    if (!this._w) throw new GanderError('DISPOSED', 'this session was freed (its model was disposed)');
    return this._w;
  }

  _free() {
    if (this._w) {
      if (!this._w.__freed) { this._w.__freed = true; this._w.free(); }
      this._w = null;
    }
  }

  /** Run `f` as this session's one call: an overlapping call (another generate still
   *  iterating, a forward not yet resolved) is refused with BUSY on every backend. */
  async _exclusive(where, f) {
    this._live();
    if (this._busy) throw new GanderError('BUSY', `${where}: this session is busy with ${this._busy}; await it (or fork the session) first`);
    this._busy = where;
    try { return await f(); } finally { this._busy = null; }
  }

  /** Feed ids; the logits after the last one. */
  async forward(ids) {
    const t = toIds('forward', ids);
    if (t.length === 0) throw new BadInputError('forward: give at least one token id');
    return this._exclusive('forward', () => acall(this._live().forward(t)));
  }

  /** Feed text or ids without sampling. */
  async prefill(textOrIds) {
    const t = promptIds(this.model, 'prefill', textOrIds);
    if (t.length === 0) throw new BadInputError('prefill: give some text or token ids');
    await this._exclusive('prefill', () => acall(this._live().prefill(t)));
  }

  /**
   * Stream tokens: `{token, text}` events. An empty prompt continues from the current state.
   * Aborting through `signal` throws an AbortedError between tokens; the state then holds every
   * token yielded so far, so the session stays usable.
   */
  async *generate(prompt = '', options = {}) {
    const { signal, ...rest } = options ?? {};
    if (signal !== undefined && !(signal instanceof AbortSignal)) {
      throw new BadInputError('generate: option `signal` must be an AbortSignal');
    }
    const gen = call(() => this._live().generation(rest));
    if (this._busy) {
      gen.free();
      throw new GanderError('BUSY', `generate: this session is busy with ${this._busy}; finish or break out of that loop (or fork the session) first`);
    }
    this._busy = 'generate';
    const stats = { finish: null, tokens: 0, prefillTokens: 0, prefillMs: 0, decodeMs: 0 };
    this.lastGeneration = stats;
    try {
      throwIfAborted(signal);
      const ids = promptIds(this.model, 'generate', prompt);
      if (ids.length) {
        const t0 = performance.now();
        await acall(this._live().prefill(ids));
        stats.prefillMs = performance.now() - t0;
        stats.prefillTokens = ids.length;
      } else if (!this._live().hasLogits) {
        throw new BadInputError('generate: this session has nothing to continue from (new, reset, or just loaded a state); give a prompt');
      }
      for (;;) {
        if (signal && signal.aborted) {
          gen.cancel();
          stats.finish = 'aborted';
          throwIfAborted(signal);
        }
        const t0 = performance.now();
        const ev = await acall(this._live().step(gen));
        if (ev.token !== undefined) {
          stats.decodeMs += performance.now() - t0;
          stats.tokens++;
        }
        if (ev.done) stats.finish = ev.finish;
        if (ev.token !== undefined || ev.text) yield { token: ev.token, text: ev.text };
        if (ev.done) return stats;
      }
    } finally {
      if (!stats.finish) stats.finish = 'aborted';
      gen.free();
      this._busy = null;
    }
  }

  /** The state as a versioned blob (loads on either backend, same model). */
  async saveState() {
    return this._exclusive('saveState', () => acall(this._live().saveState()));
  }

  /** Replace the state with a blob from saveState, or start from an RWKV state-tuning file
   * (.pth/.safetensors with blocks.N.att.time_state) tuned for this model. */
  async loadState(bytes) {
    if (!(bytes instanceof Uint8Array)) {
      if (bytes instanceof ArrayBuffer) bytes = new Uint8Array(bytes);
      else throw new BadInputError('loadState: expected bytes (a Uint8Array or ArrayBuffer) from saveState or of a state-tuning file');
    }
    await this._exclusive('loadState', async () => call(() => this._live().loadState(bytes)));
  }

  /** A new session with a copy of this state (and its last logits). */
  async fork() {
    const w = await this._exclusive('fork', () => acall(this._live().fork()));
    const s = new LocalSession(this.model, w);
    s.lastGeneration = null;
    return this.model._track(s);
  }

  /** Back to a zero state. */
  async reset() {
    await this._exclusive('reset', async () => call(() => this._live().reset()));
  }

  /** Free this session's state now (otherwise when the page drops it, or with its model). */
  async dispose() {
    this.model._untrack(this);
    this._free();
  }
}

export { AbortedError };
