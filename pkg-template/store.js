// ModelStore: models and states in IndexedDB (design.md "IndexedDB layout").
//
// One database (`gander` unless named). Object stores:
// - `models`: one manifest per complete model, keyed by name: size, chunk size, a SHA-256 per
//   chunk, the write id of its chunks, what the file is (kind, quant, shapes).
// - `chunks`: the bytes, keyed [writeId, index]. A write goes to a fresh writeId and its manifest
//   is written last, in the same transaction that drops the chunks it replaces: a model is
//   either complete or absent, and a replaced model stays loadable until the new one is whole.
// - `states`: saved session states with the fingerprint of their model.
// Chunks whose writeId no manifest names are leftovers of a write that died (a closed tab, a
// crash); they are deleted on open() unless a live writer still holds that writeId's lock.

import { AbortedError, BadInputError, BadModelError, GanderError, QuotaError, StateMismatchError, toGanderError, throwIfAborted } from './errors.js';
import { initWasm } from './engine.js';
import { checkOptions, is } from './options.js';
import { openSource, readAll, memorySource } from './sources.js';

const DB_VERSION = 1;
export const DEFAULT_CHUNK = 16 * 1024 * 1024;

function req(r) {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

function done(tx) {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error || new DOMException('transaction aborted', 'AbortError'));
  });
}

async function sha256(bytes) {
  const d = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  return Array.from(d, (b) => b.toString(16).padStart(2, '0')).join('');
}

function withLock(name, opts, f) {
  if (typeof navigator !== 'undefined' && navigator.locks) return navigator.locks.request(name, opts, f);
  return f({ name }); // No Web Locks (very old browsers): no cross-tab protection.
}

async function heldLocks() {
  if (typeof navigator === 'undefined' || !navigator.locks) return null;
  const q = await navigator.locks.query();
  return new Set([...(q.held || []), ...(q.pending || [])].map((l) => l.name));
}

function checkName(where, name) {
  if (typeof name !== 'string' || name.length === 0 || name.length > 200) {
    throw new BadInputError(`${where}: name must be a non-empty string of at most 200 characters`);
  }
}

let persistAsked = false;

export class ModelStore {
  /** Open (and create) the database; cleans up half-written models. */
  static async open(options = {}) {
    checkOptions('ModelStore.open', options, { database: is.string, chunkSize: is.posInt });
    if (typeof indexedDB === 'undefined') throw new GanderError('NO_STORAGE', 'IndexedDB is not available here (private mode or an old browser?)');
    const name = options.database || 'gander';
    const open = indexedDB.open(name, DB_VERSION);
    open.onupgradeneeded = () => {
      const db = open.result;
      if (!db.objectStoreNames.contains('models')) db.createObjectStore('models', { keyPath: 'name' });
      if (!db.objectStoreNames.contains('chunks')) db.createObjectStore('chunks');
      if (!db.objectStoreNames.contains('states')) db.createObjectStore('states', { keyPath: 'name' });
    };
    let db;
    try {
      db = await req(open);
    } catch (e) {
      throw new GanderError('NO_STORAGE', `could not open IndexedDB "${name}": ${e && e.message}`);
    }
    const store = new ModelStore(db, name, options.chunkSize || DEFAULT_CHUNK);
    await store.cleanup();
    return store;
  }

  constructor(db, name, chunkSize) {
    this._db = db;
    // Another tab upgrading the database must not wait on this connection forever: close it
    // (calls made afterwards fail with a clear IndexedDB error; open the store again).
    db.onversionchange = () => db.close();
    this.database = name;
    this.chunkSize = chunkSize;
    /** Fault-injection hook for tests: called before each chunk is written, `(index, count)`. */
    this._beforeChunk = null;
  }

  close() { this._db.close(); }

  /** Delete chunks that no manifest names and no live writer holds. Returns how many. */
  async cleanup() {
    const tx = this._db.transaction(['models', 'chunks'], 'readonly');
    const manifests = await req(tx.objectStore('models').getAll());
    const keys = await req(tx.objectStore('chunks').getAllKeys());
    const live = new Set(manifests.map((m) => m.writeId));
    const held = await heldLocks();
    const dead = new Set();
    for (const [w] of keys) {
      if (!live.has(w) && !(held && held.has(`gander-write:${this.database}:${w}`))) dead.add(w);
    }
    for (const w of dead) await this._dropChunks(w);
    return dead.size;
  }

  async _dropChunks(writeId) {
    const tx = this._db.transaction('chunks', 'readwrite');
    tx.objectStore('chunks').delete(IDBKeyRange.bound([writeId, 0], [writeId, Infinity]));
    await done(tx);
  }

  /** Manifests of the complete models: `{name, size, quant, kind, info, createdAt, ...}`. */
  async list() {
    const tx = this._db.transaction('models', 'readonly');
    const all = await req(tx.objectStore('models').getAll());
    return all.map(({ sha256: _s, ...m }) => m);
  }

  async _manifest(name) {
    const tx = this._db.transaction('models', 'readonly');
    return req(tx.objectStore('models').get(name));
  }

  /** Delete a model (its states stay; they are keyed by model fingerprint). */
  async delete(name) {
    checkName('ModelStore.delete', name);
    return withLock(`gander-model:${this.database}:${name}`, {}, async () => {
      const m = await this._manifest(name);
      if (!m) return false;
      const tx = this._db.transaction(['models', 'chunks'], 'readwrite');
      tx.objectStore('models').delete(name);
      tx.objectStore('chunks').delete(IDBKeyRange.bound([m.writeId, 0], [m.writeId, Infinity]));
      await done(tx);
      return true;
    });
  }

  /** `{usage, quota, models}`: bytes used and allowed for this origin, bytes of stored models. */
  async usage() {
    const est = (typeof navigator !== 'undefined' && navigator.storage && navigator.storage.estimate)
      ? await navigator.storage.estimate() : {};
    const models = (await this.list()).reduce((n, m) => n + m.size, 0);
    return { usage: est.usage ?? null, quota: est.quota ?? null, models, persisted: await persisted() };
  }

  /**
   * Store a model. `source`: ArrayBuffer, Uint8Array, Blob/File or URL. With `quant` the file is
   * converted to a Gander file first (`.pth`, `.safetensors` or Gander in; f32/f16/int8/q4 out),
   * on this thread, or in the package's worker with `worker: true`. Without `quant` the bytes are
   * stored as they are (a `.pth` then loads whole, not streamed). Resolves to the manifest.
   */
  async put(name, source, options = {}) {
    checkName('ModelStore.put', name);
    checkOptions('ModelStore.put', options, {
      quant: is.oneOf('f32', 'f16', 'int8', 'q4'), onProgress: is.func, signal: is.signal, worker: is.bool,
    });
    const { quant, onProgress, signal } = options;
    return withLock(`gander-model:${this.database}:${name}`, { ifAvailable: true }, async (lock) => {
      if (!lock) throw new GanderError('BUSY', `model "${name}" is being written by another tab or call; try again when it has finished`);
      const wasm = await initWasm();
      let src = await openSource(source, { signal, onProgress });
      throwIfAborted(signal);
      if (src.size < 16) throw new BadModelError(`the file is ${src.size} bytes long: not a model`);
      let head = await src.read(0, 16);
      let probe = call(() => wasm.probe(head, src.size));
      let info;
      if (quant) {
        const bytes = await readAll(src);
        throwIfAborted(signal);
        const progress = (d, t) => onProgress?.({ phase: 'convert', loaded: d, total: t, fraction: d / t });
        const out = options.worker
          ? await convertInWorker(bytes, quant, progress, signal)
          : call(() => wasm.convert(bytes, quant, progress));
        src = memorySource(out, name);
        probe = call(() => wasm.probe(out.subarray(0, 16), out.byteLength));
      }
      if (probe.kind === 'safetensors') {
        const header = await src.read(0, probe.headerLen);
        info = call(() => wasm.describeHeader(header, src.size));
      } else {
        const all = await readAll(src);
        info = call(() => wasm.describeBytes(all));
      }
      return this._write(name, src, probe.kind, info, { onProgress, signal });
    });
  }

  async _write(name, src, kind, info, { onProgress, signal }) {
    const size = src.size;
    await checkQuota(size);
    if (!persistAsked && typeof navigator !== 'undefined' && navigator.storage && navigator.storage.persist) {
      persistAsked = true;
      // Ask once to be exempt from eviction; the browser may say no, which is fine.
      navigator.storage.persist().catch(() => {});
    }
    const writeId = crypto.randomUUID();
    const count = Math.max(1, Math.ceil(size / this.chunkSize));
    const sums = [];
    return withLock(`gander-write:${this.database}:${writeId}`, {}, async () => {
      try {
        for (let i = 0; i < count; i++) {
          throwIfAborted(signal);
          if (this._beforeChunk) await this._beforeChunk(i, count);
          const a = i * this.chunkSize;
          const b = Math.min(size, a + this.chunkSize);
          // An own copy: the source may be a view into a larger buffer.
          const data = (await src.read(a, b)).slice().buffer;
          sums.push(await sha256(data));
          const tx = this._db.transaction('chunks', 'readwrite');
          tx.objectStore('chunks').put(data, [writeId, i]);
          await done(tx);
          onProgress?.({ phase: 'store', loaded: b, total: size, fraction: b / size, chunk: i + 1, chunks: count });
        }
        const old = await this._manifest(name);
        const manifest = {
          name, writeId, size, kind, quant: info.quant, info, chunkSize: this.chunkSize,
          chunks: count, sha256: sums, createdAt: Date.now(),
        };
        // The manifest makes the model visible; the replaced model's chunks go in the same
        // transaction, so a reader sees the old model or the new one, never a mix.
        const tx = this._db.transaction(['models', 'chunks'], 'readwrite');
        tx.objectStore('models').put(manifest);
        if (old) tx.objectStore('chunks').delete(IDBKeyRange.bound([old.writeId, 0], [old.writeId, Infinity]));
        await done(tx);
        const { sha256: _s, ...visible } = manifest;
        return visible;
      } catch (e) {
        if (e === ModelStore.SIMULATED_CRASH) throw e; // tests: a tab closed mid-write cleans nothing
        await this._dropChunks(writeId).catch(() => {});
        if (e && e.name === 'QuotaExceededError') {
          const est = await estimate();
          throw new QuotaError(
            `not enough storage to keep "${name}" (${mb(size)} needed, ${mb(est.available)} free of ${mb(est.quota)}); delete a model or free disk space`,
            { needed: size, available: est.available, quota: est.quota });
        }
        throw toGanderError(e);
      }
    });
  }

  /** A byte-range reader over a stored model that checks every chunk's SHA-256. */
  async source(name) {
    checkName('load', name);
    const m = await this._manifest(name);
    if (!m) {
      const names = (await this.list()).map((x) => JSON.stringify(x.name));
      throw new GanderError('NOT_FOUND', `no model "${name}" in the store${names.length ? ` (stored: ${names.join(', ')})` : ' (it is empty)'}`);
    }
    const cache = new Map();
    const chunk = async (i) => {
      if (cache.has(i)) return cache.get(i);
      const tx = this._db.transaction('chunks', 'readonly');
      const data = await req(tx.objectStore('chunks').get([m.writeId, i]));
      if (!data) throw new BadModelError(`stored model "${name}" is missing chunk ${i}; delete it and add it again`);
      if ((await sha256(data)) !== m.sha256[i]) {
        throw new BadModelError(`stored model "${name}" is corrupt (chunk ${i} fails its SHA-256 check); delete it and add it again`);
      }
      const bytes = new Uint8Array(data);
      if (cache.size >= 2) cache.delete(cache.keys().next().value);
      cache.set(i, bytes);
      return bytes;
    };
    return {
      size: m.size,
      name,
      manifest: m,
      read: async (a, b) => {
        if (a < 0 || b > m.size || a > b) throw new BadModelError(`read ${a}..${b} outside stored model "${name}" (${m.size} bytes)`);
        const out = new Uint8Array(b - a);
        let at = a;
        while (at < b) {
          const i = Math.floor(at / m.chunkSize);
          const c = await chunk(i);
          const off = at - i * m.chunkSize;
          const n = Math.min(b - at, c.byteLength - off);
          if (n <= 0) throw new BadModelError(`stored model "${name}" is shorter than its manifest says; delete it and add it again`);
          out.set(c.subarray(off, off + n), at - a);
          at += n;
        }
        return out;
      },
    };
  }

  /** Save `session`'s state under `name`, tied to `model`'s fingerprint. */
  async putState(model, name, session) {
    checkName('ModelStore.putState', name);
    const bytes = await session.saveState();
    const rec = {
      name, fingerprint: model.info.fingerprint, bytes: bytes.slice().buffer, size: bytes.byteLength,
      model: { layers: model.info.layers, embd: model.info.embd, vocab: model.info.vocab }, createdAt: Date.now(),
    };
    await checkQuota(bytes.byteLength);
    try {
      const tx = this._db.transaction('states', 'readwrite');
      tx.objectStore('states').put(rec);
      await done(tx);
    } catch (e) {
      if (e && e.name === 'QuotaExceededError') {
        const est = await estimate();
        throw new QuotaError(`not enough storage for state "${name}" (${mb(bytes.byteLength)} needed)`, { needed: bytes.byteLength, available: est.available, quota: est.quota });
      }
      throw toGanderError(e);
    }
    return { name, size: rec.size, createdAt: rec.createdAt };
  }

  /** The state saved under `name` for `model` (a Uint8Array for session.loadState), or null. */
  async getState(model, name) {
    checkName('ModelStore.getState', name);
    const tx = this._db.transaction('states', 'readonly');
    const rec = await req(tx.objectStore('states').get(name));
    if (!rec) return null;
    if (rec.fingerprint !== model.info.fingerprint) {
      throw new StateMismatchError(`state "${name}" was saved with another model (layers ${rec.model.layers}, width ${rec.model.embd}); load that model to use it`);
    }
    return new Uint8Array(rec.bytes);
  }

  /** Saved states (`{name, size, createdAt, fingerprint}`); with a model, only its own. */
  async listStates(model) {
    const tx = this._db.transaction('states', 'readonly');
    const all = await req(tx.objectStore('states').getAll());
    return all
      .filter((r) => !model || r.fingerprint === model.info.fingerprint)
      .map(({ name, size, createdAt, fingerprint }) => ({ name, size, createdAt, fingerprint }));
  }

  /** Conversation states (chat.js `ChatPersistence`): `{bytes, ids}` saved under `name` for
   *  the model with `fingerprint`, or null. */
  async _getChat(name, fingerprint) {
    const tx = this._db.transaction('states', 'readonly');
    const rec = await req(tx.objectStore('states').get(name));
    if (!rec || rec.fingerprint !== fingerprint || !rec.chatIds) return null;
    return { bytes: new Uint8Array(rec.bytes), ids: new Uint32Array(rec.chatIds) };
  }

  /** Save a conversation state and keep only the newest `keep` of this model's. */
  async _putChat(name, fingerprint, bytes, ids, keep) {
    await checkQuota(bytes.byteLength);
    const tx = this._db.transaction('states', 'readwrite');
    const os = tx.objectStore('states');
    os.put({ name, fingerprint, bytes: bytes.slice().buffer, size: bytes.byteLength, chatIds: ids.slice().buffer, model: {}, createdAt: Date.now() });
    const all = await req(os.getAll());
    const mine = all.filter((r) => r.chatIds && r.fingerprint === fingerprint).sort((a, b) => b.createdAt - a.createdAt || (a.name === name ? -1 : 1));
    for (const r of mine.slice(keep)) os.delete(r.name);
    await done(tx);
  }

  async deleteState(name) {
    checkName('ModelStore.deleteState', name);
    const tx = this._db.transaction('states', 'readwrite');
    tx.objectStore('states').delete(name);
    await done(tx);
  }
}

/** Thrown by a test's `_beforeChunk` hook to stop a write as a closed tab would (no cleanup). */
ModelStore.SIMULATED_CRASH = Symbol('simulated crash');

function mb(n) {
  return n == null ? 'unknown' : `${(n / 1048576).toFixed(1)} MiB`;
}

async function estimate() {
  try {
    const e = await navigator.storage.estimate();
    return { quota: e.quota, usage: e.usage, available: Math.max(0, e.quota - e.usage) };
  } catch {
    return { quota: null, usage: null, available: null };
  }
}

/** Refuse a write that cannot fit before writing anything. */
async function checkQuota(bytes) {
  if (typeof navigator === 'undefined' || !navigator.storage || !navigator.storage.estimate) return;
  const est = await estimate();
  if (est.available != null && bytes > est.available) {
    throw new QuotaError(
      `not enough storage: ${mb(bytes)} needed, ${mb(est.available)} free of ${mb(est.quota)}; delete a model or state, or free disk space`,
      { needed: bytes, available: est.available, quota: est.quota });
  }
}

let convertWorker;
/** Convert in the package's worker (keeps a page responsive during a long conversion). */
async function convertInWorker(bytes, quant, progress, signal) {
  const { WorkerClient } = await import('./client.js');
  convertWorker ??= new WorkerClient();
  const own = bytes.slice(); // transferred: never detach the caller's buffer
  const out = await convertWorker.request('convert', { bytes: own, quant }, [own.buffer], { onProgress: (p) => progress(p.loaded, p.total), signal });
  return out;
}

function call(f) {
  try { return f(); } catch (e) { throw toGanderError(e); }
}

async function persisted() {
  try { return typeof navigator !== 'undefined' && navigator.storage && navigator.storage.persisted ? await navigator.storage.persisted() : false; } catch { return false; }
}
