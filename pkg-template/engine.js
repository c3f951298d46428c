// The engine on the current thread: loads the wasm module, picks the backend, streams a model in,
// and wraps the wasm sessions into the API of design.md. worker.js runs this same code in a
// dedicated Web Worker for `worker: true`.

import * as wasm from './gander.js';
import { initWasm, setWasmUrl, trapBeforeCall, wasmMemoryBytes } from './wasm.js';
import {
  AbortedError, BadInputError, BadModelError, GanderError, NoWebGPUError, isTrap, mib, toGanderError, throwIfAborted,
} from './errors.js';
import { toIds } from './options.js';
import { fetchBytes, handOver, openSource } from './sources.js';
import { cachedUrlSource } from './cache.js';
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

// ---- Traps --------------------------------------------------------------------------------
// The engine never panics, but a failed allocation (out of memory) stops it with a wasm trap in
// the middle of a call. What that leaves behind:
// - a call that returned a Promise trapped in wasm-bindgen's future queue (a microtask): its
//   Promise never settles and the trap surfaces as an uncaught 'error' event, so the calls in
//   flight are ended from that event (`inFlight`);
// - a session whose call trapped lost its state (the Rust side had taken it out for the call):
//   it is disposed, and later calls say to create a new session;
// - on WebGPU the device's locks may be held for good: every model on the device is disposed
//   and the next load opens a new device;
// - memory the trapped call held is not returned (on the page's thread until a reload; with
//   `worker: true` a model's worker ends with the model).

/** Promise-returning engine calls in flight on this thread. */
const inFlight = new Set();
let listening = false;

function listenForTraps() {
  if (listening || typeof globalThis.addEventListener !== 'function') return;
  listening = true;
  globalThis.addEventListener('error', (ev) => {
    if (!isTrap(ev.error) || inFlight.size === 0) return;
    // Ours: handled here, not an uncaught error of the page (nor a crash of the worker).
    ev.preventDefault();
    const calls = [...inFlight];
    inFlight.clear();
    for (const c of calls) c.fail(ev.error);
  });
}

/** Models loaded on this thread (WebGPU traps dispose those sharing the device). */
const liveModels = new Set();

/** After a trap on WebGPU: every model on the device is disposed; the next load opens a new one. */
function poisonGpu(err) {
  dropGpu();
  let n = 0;
  for (const m of [...liveModels]) if (m.info.backend === 'webgpu') { m._poison(err); n++; }
  return n ? 'the models on this WebGPU device were disposed: load them again' : null;
}

const GPU_LOAD = { _trapped: poisonGpu };

/** `err` for a failed engine call; a trap also disposes what it broke (`owner._trapped`), unless
 *  it came while the call's arguments were being copied in (nothing was touched yet). */
function failed(e, hint) {
  const err = toGanderError(e, hint);
  if (isTrap(e) && hint.owner && !trapBeforeCall(e)) {
    const what = hint.owner._trapped(err);
    if (what) err.message += `; ${what}`;
  }
  return err;
}

/** A synchronous engine call. `hint`: {owner, what, requested} (see `failed`). */
function call(f, hint = {}) {
  try { return f(); } catch (e) { throw failed(e, hint); }
}

/** A Promise-returning engine call: `start()` makes the call (an argument copied into wasm may
 *  trap right there, before the call's future runs: a session's state is untouched then); a
 *  trap in its future ends it through the 'error' event. */
function acall(start, hint = {}) {
  let p;
  try {
    p = start();
  } catch (e) {
    return Promise.reject(failed(e, { ...hint, owner: hint.owner?._syncOwner ?? hint.owner }));
  }
  listenForTraps();
  return new Promise((resolve, reject) => {
    const entry = { fail: (e) => reject(failed(e, hint)) };
    inFlight.add(entry);
    Promise.resolve(p).then(
      (v) => { inFlight.delete(entry); resolve(v); },
      (e) => { inFlight.delete(entry); reject(failed(e, hint)); },
    );
  });
}

/** Free a wasm object that a trap may have left borrowed (wasm-bindgen then refuses). */
function freeQuietly(w) {
  if (!w || w.__freed) return;
  w.__freed = true;
  try { w.free(); } catch { /* left borrowed by a trapped call: its memory stays in use */ }
}

/**
 * Load `source` with `opts` ({backend, cache, onProgress, signal, wasmUrl}) on this thread. A URL
 * goes through the store's cache unless `cache: false` (cache.js).
 * Returns a LocalModel.
 */
export async function loadModel(source, opts = {}, openStore) {
  const { signal } = opts;
  await initWasm(opts.wasmUrl);
  throwIfAborted(signal);
  if (Array.isArray(source) || isIndexUrl(source)) {
    const sh = await openShards(Array.isArray(source) ? source : [source], opts, openStore);
    try {
      return await choose((device) => pull(sh.srcs, device, opts, sh), opts, openStore);
    } finally {
      for (const s of sh.srcs) s.close?.();
    }
  }
  const src = await openOne(source, opts, openStore);
  try {
    return await loadFrom(src, opts, openStore);
  } finally {
    src.close?.();
  }
}

const isUrl = (s) => typeof s === 'string' || (typeof URL !== 'undefined' && s instanceof URL);

/** A URL whose path names a JSON file: a shard index (`model.safetensors.index.json`). */
function isIndexUrl(s) {
  if (!isUrl(s)) return false;
  const base = typeof location !== 'undefined' ? location.href : undefined;
  try { return new URL(String(s), base).pathname.endsWith('.json'); } catch { return false; }
}

/** One source; a URL through the store's cache unless `cache: false` (cache.js). */
async function openOne(source, { cache, signal, onProgress }, openStore, shard = false) {
  return (isUrl(source) && cache !== false && openStore
    ? await cachedUrlSource(String(source), { cache, signal, onProgress, openStore, shard })
    : null) ?? await openSource(source, { signal, onProgress, openStore });
}

/** The largest shard index read (a 70B model's is about 100 KB). */
const MAX_INDEX_BYTES = 16 << 20;

/**
 * The files of a sharded checkpoint: `list` holds shard sources (URLs, Blobs, bytes) and at
 * most one `model.safetensors.index.json`; an index given alone brings its shards, by URL
 * relative to it. Resolves to `{srcs, names, index}` (names: the shards' file names, which the
 * index maps tensors to).
 */
async function openShards(list, opts, openStore) {
  if (list.length === 0) throw new BadInputError('Gander.load: an empty list of shards');
  const srcs = [];
  const names = [];
  let index = null;
  let indexUrl = null;
  try {
    for (const item of list) {
      if (isIndexUrl(item)) {
        if (index) throw new BadInputError('Gander.load: more than one shard index in the list');
        indexUrl = new URL(String(item), typeof location !== 'undefined' ? location.href : undefined);
        index = await fetchBytes(indexUrl.href, { signal: opts.signal });
        if (index.byteLength > MAX_INDEX_BYTES) throw new BadModelError(`${indexUrl.href} is ${index.byteLength} bytes: not a shard index`);
        continue;
      }
      srcs.push(await openOne(item, opts, openStore, true));
      names.push(shardName(item));
    }
    if (index && names.some((n) => n === null)) {
      throw new BadInputError('Gander.load: with a shard index, give the shards as URLs or named Files (the index maps tensors to file names)');
    }
    // Without an index the shards are joined by their headers; names only label them.
    const seen = new Map();
    for (const [i, n] of names.entries()) {
      const base = n ?? `shard ${i + 1}`;
      const k = (seen.get(base) ?? 0) + 1;
      seen.set(base, k);
      names[i] = k === 1 ? base : `${base} (${k})`;
    }
    if (index && seen.size !== names.length) throw new BadInputError('Gander.load: two shards have the same file name');
    if (index && srcs.length === 0) {
      let map;
      try {
        map = JSON.parse(new TextDecoder().decode(index)).weight_map;
      } catch (e) {
        throw new BadModelError(`${indexUrl.href} is not a shard index (${e.message})`);
      }
      if (!map || typeof map !== 'object') throw new BadModelError(`${indexUrl.href} has no weight_map: not a shard index`);
      for (const file of [...new Set(Object.values(map))].sort()) {
        if (typeof file !== 'string' || file.includes('/') || file.startsWith('.')) throw new BadModelError(`${indexUrl.href}: shard \`${file}\` is not a file name beside the index`);
        srcs.push(await openOne(new URL(file, indexUrl).href, opts, openStore, true));
        names.push(file);
      }
    }
    if (srcs.length === 0) throw new BadInputError('Gander.load: no shards (give the shard files, or the URL of model.safetensors.index.json)');
    return { srcs, names, index };
  } catch (e) {
    for (const s of srcs) s.close?.();
    throw e;
  }
}

/** The file name of a shard, as an index names it (null for bytes or an unnamed Blob). */
function shardName(item) {
  if (isUrl(item)) {
    try {
      return decodeURIComponent(new URL(String(item), typeof location !== 'undefined' ? location.href : undefined).pathname.split('/').pop());
    } catch { /* fall through */ }
  }
  return (typeof Blob !== 'undefined' && item instanceof Blob && item.name) || null;
}

async function loadFrom(src, opts, openStore) {
  throwIfAborted(opts.signal);
  if (src.size < 16) throw new GanderError('BAD_MODEL', `the file is ${src.size} bytes long: not a model`);
  const head = await src.read(0, 16);
  const probe = call(() => wasm.probe(head, src.size), { what: 'reading the header' });
  // Official safetensors stream tensor by tensor as stored; a `.pth`, a GGUF file, another
  // layout, or any file with `quant` is pulled range by range and converted on the way.
  const load = (device) => (probe.kind === 'safetensors' && !opts.quant ? stream(src, probe, device, opts) : pull([src], device, opts));
  return choose(load, opts, openStore);
}

/** Run `load(device)` on the backend `opts.backend` asks for (`auto`: WebGPU when it works and
 *  is not slower than the CPU path, else the CPU) and wrap the model. */
async function choose(load, opts, openStore) {
  const { backend = 'auto', signal } = opts;
  throwIfAborted(signal);
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
          freeQuietly(model);
          model = undefined;
          reason = `${said}, so the CPU path runs it (pass backend: 'webgpu' to use the adapter anyway)`;
        } else {
          reason = `${said}, so WebGPU runs it`;
        }
      }
    } catch (e) {
      freeQuietly(model);
      model = undefined;
      const err = toGanderError(e);
      // Out of wasm memory on WebGPU: the CPU path would need more of it, not less.
      if (backend === 'webgpu' || ['ABORTED', 'BAD_MODEL', 'IO', 'OUT_OF_MEMORY'].includes(err.code)) throw err;
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
    freeQuietly(w);
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
  const hint = { owner: GPU_LOAD, what: 'timing a token on WebGPU' };
  const s = call(() => m.session(), hint);
  try {
    const t0 = performance.now();
    await acall(() => s.forward(new Uint32Array([0])), hint);
    return performance.now() - t0;
  } finally { freeQuietly(s); }
}

async function warmUp(m) {
  const hint = { owner: GPU_LOAD, what: 'a first token on WebGPU' };
  const s = call(() => m.session(), hint);
  try { await acall(() => s.forward(new Uint32Array([0])), hint); } finally { freeQuietly(s); }
}

/**
 * Load a `.pth`, a safetensors file of any layout, or safetensors shards range by range (see the Rust `PullLoader`),
 * converting each matrix to `quant` as it arrives: the wasm heap holds one part's tensors and
 * the weights; JS one piece at a time.
 */
async function pull(srcs, gpu, { signal, onProgress, quant }, shards) {
  const owner = gpu ? GPU_LOAD : null;
  const name = shards ? `${srcs.length} shards` : (srcs[0].name || 'the model');
  const what = quant ? `loading ${name} as ${quant}` : `loading ${name}`;
  const q = quant ?? null;
  const loader = call(() => {
    if (!shards) return gpu ? wasm.PullLoader.forGpu(srcs[0].size, q, gpu) : wasm.PullLoader.forCpu(srcs[0].size, q);
    const lens = new Float64Array(srcs.map((s) => s.size));
    return gpu ? wasm.PullLoader.shardedGpu(shards.names, lens, shards.index, q, gpu) : wasm.PullLoader.shardedCpu(shards.names, lens, shards.index, q);
  }, { owner, what });
  const total = srcs.reduce((n, s) => n + s.size, 0);
  try {
    let read = 0;
    for (;;) {
      throwIfAborted(signal);
      const s = call(() => loader.step(), { owner, what });
      if (s.done) break;
      if (s.need) {
        read += await handOver(srcs, s.need, (f, at, bytes) => call(() => loader.add(f, at, bytes), { owner, what, requested: bytes.byteLength }), { signal });
        continue;
      }
      const [part, parts] = s.part;
      onProgress?.({ phase: 'load', loaded: Math.min(read, total), total, fraction: part / parts, part, parts, ...(quant ? { quant } : {}) });
      // Let the page breathe between parts (progress bars, abort clicks).
      await new Promise((r) => setTimeout(r, 0));
    }
    return call(() => loader.finish(), { owner, what });
  } finally {
    freeQuietly(loader);
  }
}

/** Stream a safetensors file part by part (see the Rust `Loader`). */
async function stream(src, probe, gpu, opts) {
  const { signal, onProgress } = opts;
  const header = await src.read(0, probe.headerLen);
  // Another layout (transformers `rwkv7.`, flash-linear-attention, web-rwkv `.st`) is renamed
  // on load, through the pull loader; the official layout and Gander files stream as stored.
  if (call(() => wasm.headerLayout(header, src.size), { what: 'reading the header' }) !== 'official') return pull([src], gpu, opts);
  const owner = gpu ? GPU_LOAD : null;
  const loader = call(() => (gpu ? wasm.Loader.forGpu(header, src.size, gpu) : wasm.Loader.forCpu(header, src.size)), { owner, what: 'loading the model' });
  try {
    let loaded = probe.headerLen;
    for (;;) {
      throwIfAborted(signal);
      const want = loader.wanted();
      if (want === null) break;
      for (const [name, a, b] of want) {
        const bytes = await src.read(a, b).catch((e) => { throw toGanderError(e, { what: 'reading the model', requested: b - a }); });
        call(() => loader.insert(name, bytes), { owner, what: `loading the model (tensor ${name})`, requested: b - a });
        loaded += b - a;
      }
      throwIfAborted(signal);
      const [done, total] = call(() => loader.step(), { owner, what: 'loading the model' });
      onProgress?.({ phase: 'load', loaded, total: src.size, fraction: done / total, part: done, parts: total });
      // Let the page breathe between parts (progress bars, abort clicks).
      await new Promise((r) => setTimeout(r, 0));
    }
    return call(() => loader.finish(), { owner, what: 'loading the model' });
  } finally {
    // After a trap the loader stays borrowed and cannot be freed (its memory stays in use).
    freeQuietly(loader);
  }
}

/** A loaded model on this thread. */
export class LocalModel {
  constructor(w, reason, adapter) {
    this._w = w;
    liveModels.add(this);
    const info = { ...w.info(), reason };
    if (adapter) info.adapter = adapter;
    this.info = Object.freeze(info);
    const tok = this.info.tokenizer ? w : null;
    this.tokenizer = Object.freeze({
      encode: (text) => {
        if (typeof text !== 'string') throw new BadInputError('tokenizer.encode: expected a string');
        if (!tok) throw new GanderError('UNSUPPORTED', `no tokenizer for a vocabulary of ${this.info.vocab} rows; pass token ids`);
        this._live();
        return call(() => tok.encode(text), { owner: this, what: 'tokenizer.encode', requested: text.length * 4 });
      },
      decode: (ids) => {
        if (!tok) throw new GanderError('UNSUPPORTED', `no tokenizer for a vocabulary of ${this.info.vocab} rows`);
        this._live();
        return call(() => tok.decode(toIds('tokenizer.decode', ids)), { owner: this, what: 'tokenizer.decode' });
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
    if (this._broken) throw brokenError('model', this._broken);
    if (!this._w) throw new GanderError('DISPOSED', 'this model was disposed');
    return this._w;
  }

  /** A trap in one of this model's own calls (not a session's). On WebGPU the device may be
   *  stuck: every model on it goes. On the CPU the weights are untouched: the model works on. */
  _trapped(err) {
    return this.info.backend === 'webgpu' ? poisonGpu(err) : null;
  }

  /** Disposed by a trap: later calls throw DISPOSED saying why and to load the model again. */
  _poison(err) {
    if (this._broken) return;
    this._broken = err;
    this._freeAll();
  }

  /** Free every session, then the weights. */
  _freeAll() {
    for (const ref of [...this._tracked.sessions]) {
      const s = ref.deref();
      if (s) { this._untrack(s); s._free(); }
    }
    this._tracked.sessions.clear();
    freeQuietly(this._w);
    this._w = null;
    liveModels.delete(this);
  }

  /** A new session with a zero state. */
  session() {
    const w = call(() => this._live().session(), { owner: this, what: 'creating a session', requested: this.info.stateBytes });
    return this._track(new LocalSession(this, w));
  }

  /** Free the weights (GPU buffers included) and every session. */
  async dispose() {
    if (this._chat) await this._chat.cache.clear().catch(() => {});
    this._freeAll();
  }

  /** What the WebGPU device did since the last call: `{dispatches, bindGroupsCreated,
   *  buffersCreated, submits, readbackBytes}`, or `null` on the CPU path (for benchmarks). */
  async deviceCounters() {
    return this._live().deviceCounters() ?? null;
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

/** The DISPOSED error of a model or session that a trap disposed. */
function brokenError(what, err) {
  const why = err.code === 'OUT_OF_MEMORY'
    ? `the wasm engine ran out of memory${err.wasmBytes ? ` (${mib(err.wasmBytes)} in use)` : ''}`
    : `the wasm engine failed (${err.cause && err.cause.message ? err.cause.message : err.message})`;
  const todo = what === 'model' ? 'load the model again' : 'create a new session (a state saved earlier loads into it)';
  return new GanderError('DISPOSED', `this ${what} was disposed when ${why}; ${todo}`, { reason: err.code });
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
    if (this.model._broken) throw brokenError('model', this.model._broken);
    if (this._broken) throw brokenError('session', this._broken);
    if (!this._w) throw new GanderError('DISPOSED', 'this session was freed (its model was disposed)');
    return this._w;
  }

  _free() {
    freeQuietly(this._w);
    this._w = null;
  }

  /** A trap in one of this session's calls: its state is gone (the Rust side had taken it out
   *  for the call), so the session is disposed; on WebGPU the whole device goes. */
  _trapped(err) {
    if (this.model.info.backend === 'webgpu') return poisonGpu(err);
    if (!this._broken) {
      this._broken = err;
      this.model._untrack(this);
      this._free();
    }
    return 'this session was disposed (its state is lost): create a new session; the model still works';
  }

  /** How a call's failure is reported and what a trap in it disposes: a call returning a
   *  Promise has taken the state out (`_trapped`); a synchronous one has not (only WebGPU's
   *  device may be stuck). */
  _hint(what, requested, sync = false) {
    return { owner: sync ? this._syncOwner : this, what: `session.${what}`, requested };
  }

  get _syncOwner() {
    return { _trapped: (err) => (this.model.info.backend === 'webgpu' ? poisonGpu(err) : null) };
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
    return this._exclusive('forward', () => acall(() => this._live().forward(t), this._hint('forward', t.length * 4)));
  }

  /** Feed text or ids without sampling. */
  async prefill(textOrIds) {
    const t = promptIds(this.model, 'prefill', textOrIds);
    if (t.length === 0) throw new BadInputError('prefill: give some text or token ids');
    await this._exclusive('prefill', () => acall(() => this._live().prefill(t), this._hint('prefill', t.length * 4)));
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
    const gen = call(() => this._live().generation(rest), this._hint('generate', undefined, true));
    if (this._busy) {
      freeQuietly(gen);
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
        await acall(() => this._live().prefill(ids), this._hint('generate', ids.length * 4));
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
        const ev = await acall(() => this._live().step(gen), this._hint('generate'));
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
      this._busy = null;
      freeQuietly(gen);
    }
  }

  /** The state as a versioned blob (loads on either backend, same model). */
  async saveState() {
    return this._exclusive('saveState', () => acall(() => this._live().saveState(), this._hint('saveState', this.model.info.stateBytes)));
  }

  /** Replace the state with a blob from saveState, or start from an RWKV state-tuning file
   * (.pth/.safetensors with blocks.N.att.time_state) tuned for this model. */
  async loadState(bytes) {
    if (!(bytes instanceof Uint8Array)) {
      if (bytes instanceof ArrayBuffer) bytes = new Uint8Array(bytes);
      else throw new BadInputError('loadState: expected bytes (a Uint8Array or ArrayBuffer) from saveState or of a state-tuning file');
    }
    await this._exclusive('loadState', async () => call(() => this._live().loadState(bytes), this._hint('loadState', bytes.byteLength, true)));
  }

  /** A new session with a copy of this state (and its last logits). */
  async fork() {
    const w = await this._exclusive('fork', () => acall(() => this._live().fork(), this._hint('fork', this.model.info.stateBytes)));
    const s = new LocalSession(this.model, w);
    s.lastGeneration = null;
    return this.model._track(s);
  }

  /** Back to a zero state. */
  async reset() {
    await this._exclusive('reset', async () => call(() => this._live().reset(), this._hint('reset', this.model.info.stateBytes, true)));
  }

  /** Free this session's state now (otherwise when the page drops it, or with its model). */
  async dispose() {
    this.model._untrack(this);
    this._free();
  }
}

export { AbortedError };
