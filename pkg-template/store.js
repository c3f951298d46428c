// ModelStore: models and states in IndexedDB (design.md "IndexedDB layout"). Converting a
// checkpoint is convert.js's; locks are locks.js's; the tests' fault injection is hooks.js's.
//
// One database (`gander` unless named). Object stores:
// - `models`: one manifest per complete model, keyed by name: size, chunk size, a SHA-256 per
//   chunk, the write id of its chunks, what the file is (kind, quant, shapes).
// - `chunks`: the bytes, keyed [writeId, index]. A write goes to a fresh writeId and its manifest
//   is written last, in the same transaction that drops the chunks it replaces: a model is
//   either complete or absent, and a replaced model stays loadable until the new one is whole.
// - `states`: saved session states, scoped by the fingerprint of their model (key
//   `state:<fingerprint>:<name>`, the name in `label`). Records of older versions are keyed by the
//   bare name and carry the fingerprint: they are read as the state of that model, and moved to
//   the scoped key when that model saves a state of the same name.
// Chunks whose writeId no manifest names are leftovers of a write that died (a closed tab, a
// crash); they are deleted on open() unless a live writer still holds that writeId's lock.
//
// Locks (Web Locks, shared by every tab and worker of the origin):
// - `gander-model:<db>:<name>`: a load holds it shared from reading the manifest until its last
//   chunk is read; delete() and the commit of put() (the transaction that drops the replaced
//   chunks) take it exclusive, so they wait for running loads instead of deleting under them.
// - `gander-put:<db>:<name>`: one put() of a name at a time (a second one gets BUSY).
// - `gander-write:<db>:<writeId>`: held while a write's chunks are being stored (open() leaves
//   those alone).

import { BadInputError, BadModelError, GanderError, QuotaError, StateMismatchError, mib, toGanderError, throwIfAborted } from './errors.js';
import { QUANTS, checkOptions, is } from './options.js';
import { prepare } from './convert.js';
import { acquire, heldLocks, withLock } from './locks.js';
import { hooks, SIMULATED_CRASH } from './hooks.js';

const DB_VERSION = 1;
export const DEFAULT_CHUNK = 16 * 1024 * 1024;
/** The key prefix of a download's progress record in `models` (list() and source() skip it). */
const PARTIAL = '\u0000partial:';

/** An IndexedDB failure as a GanderError saying what failed and what to do. `e` is the failed
 *  request's error, or null for a transaction the browser aborted without one. */
function idbError(e, what) {
  if (e instanceof GanderError) return e;
  if (e && e.name === 'QuotaExceededError') {
    return new QuotaError(`not enough storage for ${what} (${e.message}); delete a model or state, or free disk space`, { cause: e });
  }
  if (!e) {
    return new GanderError('IO', `IndexedDB aborted ${what} without giving a reason (the browser may be short of disk space, or closing the database); retry, and free disk space if it keeps happening`);
  }
  return new GanderError('IO', `IndexedDB failed in ${what} (${e.name}: ${e.message}); retry, and if it keeps failing reload the page or clear this site's storage`, { cause: e });
}

function req(r, what) {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(idbError(r.error, what));
  });
}

/** Resolves when `tx` commits. A failed request aborts its transaction: the error event comes
 *  first (while `tx.error` is still null), then the abort; the rejection carries the request's
 *  error, or an IO error when the browser aborted with no reason. */
function done(tx, what) {
  return new Promise((resolve, reject) => {
    let first = null;
    tx.oncomplete = () => resolve();
    tx.onerror = (ev) => {
      const err = ev.target && ev.target.error;
      // The AbortErrors of the other requests only echo the abort.
      if (err && err.name !== 'AbortError' && !first) first = err;
    };
    tx.onabort = () => reject(idbError(tx.error || first, what));
  });
}

async function sha256(bytes) {
  const d = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  return Array.from(d, (b) => b.toString(16).padStart(2, '0')).join('');
}

function checkName(where, name) {
  if (typeof name !== 'string' || name.length === 0 || name.length > 200) {
    throw new BadInputError(`${where}: name must be a non-empty string of at most 200 characters`);
  }
}

function fingerprintOf(where, model) {
  const f = model && model.info && model.info.fingerprint;
  if (typeof f !== 'string') throw new BadInputError(`${where}: the first argument must be the model (from Gander.load) the state belongs to`);
  return f;
}

const stateKey = (fingerprint, name) => `state:${fingerprint}:${name}`;
/** A state record as listStates shows it. */
const stateView = (r) => ({ name: r.label ?? r.name, size: r.size, createdAt: r.createdAt, fingerprint: r.fingerprint });

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
      db = await req(open, 'opening the database');
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
  }

  close() { this._db.close(); }

  /** A transaction, or an IO error saying why there is none (a closed connection). */
  _tx(stores, mode, what) {
    try {
      return this._db.transaction(stores, mode);
    } catch (e) {
      if (e && e.name === 'InvalidStateError') {
        throw new GanderError('IO', `IndexedDB refused ${what}: the connection is closed (store.close() was called, or another tab upgraded the database); open the store again`, { cause: e });
      }
      throw idbError(e, what);
    }
  }

  _modelLock(name) { return `gander-model:${this.database}:${name}`; }

  /** Delete chunks that no manifest names and no live writer holds. Returns how many. */
  async cleanup() {
    const what = 'looking for leftovers of interrupted writes';
    const tx = this._tx(['models', 'chunks'], 'readonly', what);
    const manifests = await req(tx.objectStore('models').getAll(), what);
    const keys = await req(tx.objectStore('chunks').getAllKeys(), what);
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
    const what = 'deleting the chunks of an interrupted write';
    const tx = this._tx('chunks', 'readwrite', what);
    tx.objectStore('chunks').delete(IDBKeyRange.bound([writeId, 0], [writeId, Infinity]));
    await done(tx, what);
  }

  /** Manifests of the complete models: `{name, size, quant, kind, info, createdAt, ...}`. */
  async list() {
    const tx = this._tx('models', 'readonly', 'listing the models');
    const all = await req(tx.objectStore('models').getAll(), 'listing the models');
    return all.filter((m) => !m.partial).map(({ sha256: _s, ...m }) => m);
  }

  async _manifest(name) {
    const what = `reading the manifest of "${name}"`;
    const tx = this._tx('models', 'readonly', what);
    return req(tx.objectStore('models').get(name), what);
  }

  /** The complete manifest of `name`, without its checksums, or null. */
  async manifest(name) {
    checkName('ModelStore.manifest', name);
    const m = await this._manifest(name);
    if (!m || m.partial) return null;
    const { sha256: _s, ...visible } = m;
    return visible;
  }

  /**
   * Store a file read by byte range (a URL), resumably: each chunk is written together with a
   * progress record (`partial:` + name, hidden from list()), so a download that is aborted, loses
   * its connection or its tab resumes at the first missing chunk when called again with the same
   * `validator` (ETag/Last-Modified/size; another validator starts over). `read(a, b)` fetches a
   * range; `describe(src)` says what the stored bytes are ({kind, info}). One chunk is in memory at
   * a time. Another call for the same name (any tab) waits for this one, then finds it stored.
   */
  async putRanges(name, { size, validator, read, describe }, { onProgress, signal } = {}) {
    checkName('ModelStore.putRanges', name);
    const pkey = `${PARTIAL}${name}`;
    // Waiting here for another tab's download of the same file ends at an abort.
    return withLock(`gander-put:${this.database}:${name}`, { signal }, async () => {
      const done0 = await this._manifest(name);
      // Another call (another tab) may have stored this very version while this one waited.
      if (validator && done0 && !done0.partial && done0.validator === validator && done0.size === size) {
        const { sha256: _s, ...visible } = done0;
        return visible;
      }
      let p = await this._manifest(pkey);
      if (p && (!validator || p.validator !== validator || p.size !== size || p.chunkSize !== this.chunkSize)) {
        await this._dropPartial(p);
        p = null;
      }
      if (!p) {
        await checkQuota(size);
        p = { name: pkey, partial: true, target: name, writeId: crypto.randomUUID(), size, validator,
          chunkSize: this.chunkSize, chunks: Math.max(1, Math.ceil(size / this.chunkSize)), done: 0, sha256: [] };
      }
      const resumedFrom = p.done * this.chunkSize;
      return withLock(`gander-write:${this.database}:${p.writeId}`, {}, async () => {
        try {
          for (let i = p.done; i < p.chunks; i++) {
            throwIfAborted(signal);
            if (hooks.beforeChunk) await hooks.beforeChunk(this, i, p.chunks, name);
            const a = i * this.chunkSize;
            const b = Math.min(size, a + this.chunkSize);
            const data = (await read(a, b)).slice().buffer;
            throwIfAborted(signal);
            p.sha256[i] = await sha256(data);
            p.done = i + 1;
            // the chunk and the record that counts it, in one transaction
            const what = `storing chunk ${i + 1} of ${p.chunks} of "${name}"`;
            const tx = this._tx(['chunks', 'models'], 'readwrite', what);
            tx.objectStore('chunks').put(data, [p.writeId, i]);
            tx.objectStore('models').put(p);
            await done(tx, what);
            onProgress?.({ phase: 'download', loaded: b, total: size, fraction: b / size, chunk: i + 1, chunks: p.chunks, resumedFrom });
          }
          const { kind, info } = await describe(this._chunkReader(p, name));
          return await withLock(this._modelLock(name), { mode: 'exclusive' }, async () => {
            const old = await this._manifest(name);
            const manifest = {
              name, writeId: p.writeId, size, kind, quant: info.quant, info, chunkSize: this.chunkSize,
              chunks: p.chunks, sha256: p.sha256, createdAt: Date.now(), validator,
            };
            const what = `saving the manifest of "${name}"`;
            const tx = this._tx(['models', 'chunks'], 'readwrite', what);
            tx.objectStore('models').put(manifest);
            tx.objectStore('models').delete(pkey);
            if (old) tx.objectStore('chunks').delete(IDBKeyRange.bound([old.writeId, 0], [old.writeId, Infinity]));
            await done(tx, what);
            const { sha256: _s, ...visible } = manifest;
            return visible;
          });
        } catch (e) {
          if (e === SIMULATED_CRASH) throw e;
          if (e && (e.name === 'QuotaExceededError' || e.code === 'QUOTA')) {
            await this._dropPartial(p).catch(() => {});
            throw await quotaError(name, size);
          }
          // Bytes that are not a model: keeping them would make every retry fail the same way.
          if (e && (e.code === 'BAD_MODEL' || e.code === 'UNSUPPORTED') && p.done === p.chunks) await this._dropPartial(p).catch(() => {});
          // Anything else (an abort, a dropped connection) keeps the chunks written so far: the
          // next call resumes after them.
          throw e instanceof DOMException && e.name !== 'AbortError' ? idbError(e, `storing "${name}"`) : toGanderError(e, { what: `downloading "${name}"` });
        }
      });
    });
  }

  async _dropPartial(p) {
    const what = 'deleting an interrupted download';
    const tx = this._tx(['models', 'chunks'], 'readwrite', what);
    tx.objectStore('models').delete(p.name);
    tx.objectStore('chunks').delete(IDBKeyRange.bound([p.writeId, 0], [p.writeId, Infinity]));
    await done(tx, what);
  }

  /** Delete a model (its states stay; they are keyed by model fingerprint). Waits for loads of
   *  the model that are reading it (in any tab) to finish. */
  async delete(name) {
    checkName('ModelStore.delete', name);
    return withLock(this._modelLock(name), { mode: 'exclusive' }, async () => {
      const m = await this._manifest(name);
      // An interrupted download of the name goes too, unless one is running (it holds the put
      // lock from reading its progress record to committing): that one is left to finish.
      const p = await this._manifest(`${PARTIAL}${name}`);
      if (p) await withLock(`gander-put:${this.database}:${name}`, { ifAvailable: true }, async (lock) => { if (lock) await this._dropPartial(p); });
      if (!m || m.partial) return Boolean(p);
      const what = `deleting model "${name}"`;
      const tx = this._tx(['models', 'chunks'], 'readwrite', what);
      tx.objectStore('models').delete(name);
      tx.objectStore('chunks').delete(IDBKeyRange.bound([m.writeId, 0], [m.writeId, Infinity]));
      await done(tx, what);
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
   * Store a model. `source`: ArrayBuffer, Uint8Array, Blob/File or URL (read by range requests
   * where the server allows them). With `quant` the file is converted to a Gander file as it is
   * stored (`.pth`, safetensors, GGUF or Gander in; f32/f16/int8/q4 out), tensor by tensor on this
   * thread, or whole in a worker with `worker: true` (convert.js). Without `quant` the bytes are
   * stored as they are. Resolves to the manifest.
   */
  async put(name, source, options = {}) {
    checkName('ModelStore.put', name);
    checkOptions('ModelStore.put', options, {
      quant: is.oneOf(...QUANTS), onProgress: is.func, signal: is.signal, worker: is.bool,
    });
    const { quant, onProgress, signal, worker } = options;
    return withLock(`gander-put:${this.database}:${name}`, { ifAvailable: true }, async (lock) => {
      if (!lock) throw new GanderError('BUSY', `model "${name}" is being written by another tab or call; try again when it has finished`);
      const { src, kind, info } = await prepare(name, source, { quant, onProgress, signal, worker });
      try {
        return await this._write(name, src, kind, info, { onProgress, signal });
      } finally {
        src.close?.();
      }
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
          if (hooks.beforeChunk) await hooks.beforeChunk(this, i, count, name);
          const a = i * this.chunkSize;
          const b = Math.min(size, a + this.chunkSize);
          // An own copy: the source may be a view into a larger buffer.
          const data = (await src.read(a, b)).slice().buffer;
          sums.push(await sha256(data));
          const what = `storing chunk ${i + 1} of ${count} of "${name}"`;
          const tx = this._tx('chunks', 'readwrite', what);
          tx.objectStore('chunks').put(data, [writeId, i]);
          await done(tx, what);
          onProgress?.({ phase: 'store', loaded: b, total: size, fraction: b / size, chunk: i + 1, chunks: count });
        }
        // The manifest makes the model visible; the replaced model's chunks go in the same
        // transaction, so a reader sees the old model or the new one, never a mix. Loads reading
        // the replaced chunks hold the model's lock: this waits for them.
        return await withLock(this._modelLock(name), { mode: 'exclusive' }, async () => {
          const old = await this._manifest(name);
          const manifest = {
            name, writeId, size, kind, quant: info.quant, info, chunkSize: this.chunkSize,
            chunks: count, sha256: sums, createdAt: Date.now(),
          };
          const what = `saving the manifest of "${name}"`;
          const tx = this._tx(['models', 'chunks'], 'readwrite', what);
          tx.objectStore('models').put(manifest);
          if (old) tx.objectStore('chunks').delete(IDBKeyRange.bound([old.writeId, 0], [old.writeId, Infinity]));
          await done(tx, what);
          const { sha256: _s, ...visible } = manifest;
          return visible;
        });
      } catch (e) {
        if (e === SIMULATED_CRASH) throw e; // tests: a tab closed mid-write cleans nothing
        await this._dropChunks(writeId).catch(() => {});
        if (e && (e.name === 'QuotaExceededError' || e.code === 'QUOTA')) {
          throw await quotaError(name, size);
        }
        throw e instanceof DOMException ? idbError(e, `storing "${name}"`) : toGanderError(e, { what: `storing "${name}"` });
      }
    });
  }

  /**
   * A byte-range reader over a stored model that checks every chunk's SHA-256. It holds the
   * model's reader lock until `close()`: a put or delete of the name (in any tab) waits.
   */
  async source(name) {
    checkName('load', name);
    const release = await acquire(this._modelLock(name), { mode: 'shared' });
    let m;
    try {
      m = await this._manifest(name);
      if (m?.partial) m = undefined;
      if (!m) {
        const names = (await this.list()).map((x) => JSON.stringify(x.name));
        throw new GanderError('NOT_FOUND', `no model "${name}" in the store${names.length ? ` (stored: ${names.join(', ')})` : ' (it is empty)'}`);
      }
    } catch (e) {
      release();
      throw e;
    }
    const reader = this._chunkReader(m, name);
    let open = true;
    return {
      size: m.size,
      name,
      manifest: m,
      close: () => { if (open) { open = false; release(); } },
      read: async (a, b) => {
        if (!open) throw new GanderError('DISPOSED', `the reader of stored model "${name}" was closed`);
        return reader.read(a, b);
      },
    };
  }

  /** `{size, name, read(a, b)}` over the chunks of manifest `m` (complete or, while its write
   *  holds them, partial), checking every chunk's SHA-256; two chunks are kept in memory. */
  _chunkReader(m, name) {
    const cache = new Map();
    const chunk = async (i) => {
      if (cache.has(i)) return cache.get(i);
      if (hooks.beforeRead) await hooks.beforeRead(this, name, i);
      const what = `reading chunk ${i} of stored model "${name}"`;
      const tx = this._tx('chunks', 'readonly', what);
      const data = await req(tx.objectStore('chunks').get([m.writeId, i]), what);
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

  /** Save `session`'s state under `name` for `model` (names are per model: another model's
   *  state of the same name is a different state). */
  async putState(model, name, session) {
    checkName('ModelStore.putState', name);
    const fingerprint = fingerprintOf('ModelStore.putState', model);
    const bytes = await session.saveState();
    const rec = {
      name: stateKey(fingerprint, name), label: name, fingerprint, bytes: bytes.slice().buffer, size: bytes.byteLength,
      model: { layers: model.info.layers, embd: model.info.embd, vocab: model.info.vocab }, createdAt: Date.now(),
    };
    await checkQuota(bytes.byteLength);
    const what = `saving state "${name}"`;
    try {
      const tx = this._tx('states', 'readwrite', what);
      const os = tx.objectStore('states');
      os.put(rec);
      // A record of an older version under the bare name, of this model: this one replaces it.
      const legacy = os.get(name);
      legacy.onsuccess = () => {
        const r = legacy.result;
        if (r && r.label === undefined && !r.chatIds && r.fingerprint === fingerprint) os.delete(name);
      };
      await done(tx, what);
    } catch (e) {
      if (e && (e.code === 'QUOTA' || e.name === 'QuotaExceededError')) {
        const est = await estimate();
        throw new QuotaError(`not enough storage for state "${name}" (${mib(bytes.byteLength)} needed); delete a model or state, or free disk space`, { needed: bytes.byteLength, available: est.available, quota: est.quota });
      }
      throw e instanceof DOMException ? idbError(e, what) : toGanderError(e, { what });
    }
    return { name, size: rec.size, createdAt: rec.createdAt };
  }

  /** The state saved under `name` for `model` (a Uint8Array for session.loadState), or null.
   *  StateMismatchError when only other models have a state of that name. */
  async getState(model, name) {
    checkName('ModelStore.getState', name);
    const fingerprint = fingerprintOf('ModelStore.getState', model);
    const what = `reading state "${name}"`;
    const tx = this._tx('states', 'readonly', what);
    const os = tx.objectStore('states');
    const mine = await req(os.get(stateKey(fingerprint, name)), what);
    if (mine) return new Uint8Array(mine.bytes);
    const legacy = await req(os.get(name), what);
    if (legacy && legacy.label === undefined && !legacy.chatIds && legacy.fingerprint === fingerprint) return new Uint8Array(legacy.bytes);
    const others = (await req(os.getAll(), what)).filter((r) => (r.label ?? (r.chatIds ? undefined : r.name)) === name);
    if (others.length) {
      const r = others[0];
      throw new StateMismatchError(`this model has no state "${name}": the state of that name was saved with another model (layers ${r.model.layers}, width ${r.model.embd}); load that model to use it`);
    }
    return null;
  }

  /** Saved states (`{name, size, createdAt, fingerprint}`); with a model, only its own. */
  async listStates(model) {
    const fingerprint = model === undefined ? null : fingerprintOf('ModelStore.listStates', model);
    const tx = this._tx('states', 'readonly', 'listing the states');
    const all = await req(tx.objectStore('states').getAll(), 'listing the states');
    const scoped = new Set(all.filter((r) => r.label !== undefined).map((r) => `${r.fingerprint}:${r.label}`));
    return all
      .filter((r) => !fingerprint || r.fingerprint === fingerprint)
      // An older version's record hidden by a scoped one of the same model and name.
      .filter((r) => r.label !== undefined || !scoped.has(`${r.fingerprint}:${r.name}`))
      .map(stateView);
  }

  /** Conversation states (chat.js `ChatPersistence`): `{bytes, ids}` saved under `name` for
   *  the model with `fingerprint`, or null. (Their names already hold the fingerprint.) */
  async _getChat(name, fingerprint) {
    const what = 'reading a saved conversation';
    const tx = this._tx('states', 'readonly', what);
    const rec = await req(tx.objectStore('states').get(name), what);
    if (!rec || rec.fingerprint !== fingerprint || !rec.chatIds) return null;
    return { bytes: new Uint8Array(rec.bytes), ids: new Uint32Array(rec.chatIds) };
  }

  /** Save a conversation state and keep only the newest `keep` of this model's. */
  async _putChat(name, fingerprint, bytes, ids, keep) {
    await checkQuota(bytes.byteLength);
    const what = 'saving a conversation state';
    const tx = this._tx('states', 'readwrite', what);
    const os = tx.objectStore('states');
    os.put({ name, fingerprint, bytes: bytes.slice().buffer, size: bytes.byteLength, chatIds: ids.slice().buffer, model: {}, createdAt: Date.now() });
    const all = await req(os.getAll(), what);
    const mine = all.filter((r) => r.chatIds && r.fingerprint === fingerprint).sort((a, b) => b.createdAt - a.createdAt || (a.name === name ? -1 : 1));
    for (const r of mine.slice(keep)) os.delete(r.name);
    await done(tx, what);
  }

  /** Delete `model`'s state `name`. The older form `deleteState(name)` deletes the states of
   *  that name of every model. */
  async deleteState(model, name) {
    let fingerprint = null;
    if (typeof model === 'string' && name === undefined) {
      name = model;
    } else {
      fingerprint = fingerprintOf('ModelStore.deleteState', model);
    }
    checkName('ModelStore.deleteState', name);
    const what = `deleting state "${name}"`;
    const tx = this._tx('states', 'readwrite', what);
    const os = tx.objectStore('states');
    if (fingerprint) {
      os.delete(stateKey(fingerprint, name));
      const legacy = os.get(name);
      legacy.onsuccess = () => {
        const r = legacy.result;
        if (r && r.label === undefined && !r.chatIds && r.fingerprint === fingerprint) os.delete(name);
      };
    } else {
      const all = os.getAll();
      all.onsuccess = () => {
        for (const r of all.result) if (r.label === name || (r.label === undefined && !r.chatIds && r.name === name)) os.delete(r.name);
      };
    }
    await done(tx, what);
  }
}

/** Opens the store a `{store, database?}` source or a `cache: {database?, chunkSize?}` option
 *  names. */
export function openStoreFor({ database, chunkSize } = {}) {
  return ModelStore.open({ ...(database ? { database } : {}), ...(chunkSize ? { chunkSize } : {}) });
}

/** The QuotaError of a write of `size` bytes under `name` that ran out of room, with the numbers. */
async function quotaError(name, size) {
  const est = await estimate();
  return new QuotaError(
    `not enough storage to keep "${name}" (${mib(size)} needed, ${mib(est.available)} free of ${mib(est.quota)}); delete a model or free disk space`,
    { needed: size, available: est.available, quota: est.quota });
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
      `not enough storage: ${mib(bytes)} needed, ${mib(est.available)} free of ${mib(est.quota)}; delete a model or state, or free disk space`,
      { needed: bytes, available: est.available, quota: est.quota });
  }
}

async function persisted() {
  try { return typeof navigator !== 'undefined' && navigator.storage && navigator.storage.persisted ? await navigator.storage.persisted() : false; } catch { return false; }
}
