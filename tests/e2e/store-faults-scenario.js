// What tests/e2e/store-faults.test.mjs does inside its pages: faults of the browser store and of
// the engine around it (issue 17 part 6). Only the public API is imported (plus the package's
// internal hooks where a test needs them), and faults are made the way the browser would make
// them: a slow IndexedDB, a failing request, a connection that drops, a file changed on disk, a
// worker that dies, wasm memory that runs out.

import { Gander, ModelStore } from '/pkg/index.js';

const TINY = '/shared/fixtures/tiny-rwkv7-834k/model.safetensors';
const TINY_PTH = '/shared/fixtures/tiny-rwkv7-834k/model.pth';
const OTHER = '/tests/golden/fp32-bytes/model.pth';

export async function bytes(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return new Uint8Array(await r.arrayBuffer());
}

export function err(e) {
  return { name: e && e.name, code: e && e.code, message: String(e && e.message), isGander: e instanceof Error && 'code' in e, wasmBytes: e && e.wasmBytes, requested: e && e.requested };
}

/** `p`, or a TIMEOUT error after `ms` (a hang is a failure, not a stuck test). */
function timed(p, ms = 20000) {
  let t;
  return Promise.race([p, new Promise((_, no) => { t = setTimeout(() => no(Object.assign(new Error(`no answer in ${ms} ms`), { code: 'TIMEOUT' })), ms); })]).finally(() => clearTimeout(t));
}

async function attempt(f) {
  try { return { value: await f() }; } catch (e) { return { error: err(e) }; }
}

function relErr(got, want) {
  let mean = 0;
  for (const x of want) mean += x;
  mean /= want.length;
  let v = 0;
  for (const x of want) v += (x - mean) ** 2;
  let d = 0;
  for (let i = 0; i < want.length; i++) d = Math.max(d, Math.abs(got[i] - want[i]));
  return got.length === want.length ? d / Math.sqrt(v / want.length) : Infinity;
}

// ---- a. loads hold a reader lock ------------------------------------------------------------

/** Store the tiny model under `name` in small chunks (so a load reads many of them). */
export async function storeTiny(name) {
  const st = await ModelStore.open({ chunkSize: 256 * 1024 });
  const m = await st.put(name, await bytes(TINY));
  st.close();
  return m.chunks;
}

/** Make this page's IndexedDB slow: the result of the read of chunk 1 of any stored model is
 *  held back until `releaseSlowRead()` (window.__paused says when a read is held). A slow disk,
 *  made without the package's help, so the test runs the same against any version. */
export function slowChunkReads() {
  const real = IDBObjectStore.prototype.get;
  let gate;
  window.__gate = new Promise((r) => { gate = r; });
  window.__releaseGate = gate;
  window.__paused = false;
  let armed = true;
  IDBObjectStore.prototype.get = function get(key) {
    const r = real.call(this, key);
    if (!armed || this.name !== 'chunks' || !Array.isArray(key) || key[1] !== 1) return r;
    armed = false;
    return {
      get result() { return r.result; },
      get error() { return r.error; },
      get transaction() { return r.transaction; },
      set onsuccess(f) { r.onsuccess = (ev) => { window.__paused = true; window.__gate.then(() => f(ev)); }; },
      set onerror(f) { r.onerror = f; },
    };
  };
}

export function releaseSlowRead() {
  window.__releaseGate();
}

/** Start loading `name` from the store (on this thread, so the slow reads apply); the result
 *  lands in window.__load: the logits of `"in` and the model's fingerprint, or the error. */
export function startLoad(name) {
  window.__load = (async () => {
    try {
      const m = await Gander.load({ store: name }, { backend: 'cpu', worker: false });
      const l = await m.session().forward([34, 105, 110]);
      const want = new Float32Array((await bytes('/shared/fixtures/tiny-rwkv7-834k/expected-logits-after-quote-i-n.f32')).buffer);
      const out = { fingerprint: m.info.fingerprint, err: relErr(l, want) };
      await m.dispose();
      return out;
    } catch (e) {
      return { error: err(e) };
    }
  })();
}

export function loadResult() {
  return timed(window.__load, 60000);
}

/** From another tab: delete `name`, or put another model under it (`op`: 'delete' | 'put').
 *  window.__opDone turns true when it has finished. */
export async function startOp(op, name) {
  const st = await ModelStore.open({ chunkSize: 256 * 1024 });
  const other = op === 'put' ? await bytes(OTHER) : null;
  window.__opDone = false;
  window.__op = (async () => {
    try {
      const r = op === 'delete' ? await st.delete(name) : (await st.put(name, other)).name;
      return { value: r };
    } catch (e) {
      return { error: err(e) };
    } finally {
      window.__opDone = true;
    }
  })();
  window.__opStore = st;
}

export function opDone() {
  return window.__opDone;
}

export async function opResult() {
  const r = await timed(window.__op, 60000);
  const st = window.__opStore;
  r.names = (await st.list()).map((m) => m.name);
  st.close();
  return r;
}

/** After the contest: what a load of `name` gets now (its fingerprint), and clean up. */
export async function loadNowAndDelete(name) {
  const out = {};
  try {
    const m = await Gander.load({ store: name }, { backend: 'cpu', worker: false });
    out.fingerprint = m.info.fingerprint;
    await m.dispose();
  } catch (e) {
    out.error = err(e);
  }
  const st = await ModelStore.open();
  await st.delete(name);
  st.close();
  return out;
}

/** Without the Web Locks API (older browsers): a load and a delete in one page still exclude
 *  each other (the fallback locks of this page). */
export async function noWebLocks(name) {
  Object.defineProperty(Navigator.prototype, 'locks', { get: () => undefined, configurable: true });
  slowChunkReads();
  startLoad(name);
  await timed((async () => { while (!window.__paused) await new Promise((r) => setTimeout(r, 10)); })(), 30000);
  await startOp('delete', name);
  await new Promise((r) => setTimeout(r, 500));
  const deletedDuringLoad = window.__opDone;
  releaseSlowRead();
  const load = await loadResult();
  const op = await opResult();
  return { deletedDuringLoad, load, op };
}

// ---- b. IndexedDB request errors and aborts -------------------------------------------------

/** A request that fails (ConstraintError: `add` of a key that exists, made by turning `put` into
 *  `add`) and a transaction the browser aborts with no reason: both must say what failed. */
export async function idbErrors() {
  const st = await ModelStore.open({ chunkSize: 256 * 1024 });
  const m = await Gander.load(await bytes(TINY), { backend: 'cpu', worker: false });
  const s = m.session();
  await s.forward([1, 2, 3]);
  const out = {};
  const realPut = IDBObjectStore.prototype.put;
  const tiny = await bytes(TINY);
  await st.putState(m, 'twice', s);
  try {
    IDBObjectStore.prototype.put = function put(v, k) { return this.add(v, k); };
    out.requestError = await attempt(() => st.putState(m, 'twice', s));
    // The browser aborts the transaction (as it may when the disk fails), right after the
    // requests were made.
    IDBObjectStore.prototype.put = function put(v, k) { const r = realPut.call(this, v, k); queueMicrotask(() => this.transaction.abort()); return r; };
    out.stateAbort = await attempt(() => st.putState(m, 'aborted', s));
    out.modelAbort = await attempt(() => st.put('aborted-model', tiny));
  } finally {
    IDBObjectStore.prototype.put = realPut;
  }
  // The store works on.
  out.after = await attempt(async () => (await st.putState(m, 'after', s)).name);
  out.names = (await st.list()).map((x) => x.name);
  out.leftovers = await st.cleanup();
  await st.deleteState(m, 'twice').catch(() => {});
  await st.deleteState(m, 'after').catch(() => {});
  await st.deleteState('twice').catch(() => {});
  await st.deleteState('after').catch(() => {});
  st.close();
  await m.dispose();
  return out;
}

// ---- c. out of wasm memory ------------------------------------------------------------------

/** Wasm memory capped (the test serves gander_bg.wasm with a small maximum), on this thread:
 *  loads until one fails, sessions until one fails, forks (their allocation is inside a
 *  Promise) until one fails; nothing may hang, no session may stay BUSY, and after freeing
 *  memory the engine works on. */
export async function oomPage({ wasmUrl }) {
  await Gander.init(wasmUrl);
  const file = await bytes(TINY);
  const out = {};
  const models = [];
  for (let i = 0; i < 100 && !out.load; i++) {
    try { models.push(await timed(Gander.load(file.slice().buffer, { backend: 'cpu', worker: false }))); } catch (e) { out.load = err(e); }
  }
  out.modelsLoaded = models.length;
  for (const m of models.slice(1)) await m.dispose();
  const m = models[0];
  out.firstWorks = await attempt(async () => (await timed(m.session().forward([1]))).length);
  Object.assign(out, await fillSessions(m));
  for (const x of out.sessions) await x.dispose().catch(() => {});
  delete out.sessions;
  out.worksAgain = await attempt(async () => (await timed(m.session().forward([1]))).length);
  out.loadAgain = await attempt(async () => {
    const m2 = await timed(Gander.load(file.slice().buffer, { backend: 'cpu', worker: false }));
    const n = (await timed(m2.session().forward([1]))).length;
    await m2.dispose();
    return n;
  });
  out.memory = Gander.wasmMemoryBytes();
  await m.dispose();
  return out;
}

/** The same in a worker (`worker: true`), whose wasm memory is capped the same way; a model too
 *  big for `tinyWasmUrl`'s cap fails to load with OUT_OF_MEMORY. */
export async function oomWorker({ wasmUrl, tinyWasmUrl }) {
  const file = await bytes(TINY);
  const out = {};
  out.load = (await attempt(() => timed(Gander.load(file.slice().buffer, { backend: 'cpu', worker: true, wasmUrl: tinyWasmUrl })))).error;
  const m = await timed(Gander.load(file.slice().buffer, { backend: 'cpu', worker: true, wasmUrl }));
  Object.assign(out, await fillSessions(m));
  for (const x of out.sessions) await x.dispose().catch(() => {});
  delete out.sessions;
  out.worksAgain = await attempt(async () => (await timed(m.session().forward([1]))).length);
  await m.dispose();
  return out;
}

async function fillSessions(m) {
  const out = { sessions: [] };
  // Too many ids to copy into wasm memory: the call fails before it starts, the session is fine.
  const s0 = m.session();
  out.hugeForward = (await attempt(() => timed(s0.forward(new Uint32Array(20_000_000).fill(1))))).error;
  out.afterHuge = await attempt(async () => (await timed(s0.forward([1]))).length);
  out.sessions.push(s0);
  for (let i = 0; i < 3000 && !out.session; i++) {
    try {
      const s = m.session();
      await timed(s.forward([1]));
      out.sessions.push(s);
    } catch (e) { out.session = err(e); }
  }
  out.sessionCount = out.sessions.length;
  // Forks allocate inside the engine's Promise: the out-of-memory trap happens in a microtask.
  let trapped = null;
  for (let i = 0; i < 3000 && !out.fork; i++) {
    const s = out.sessions[i % out.sessions.length];
    try {
      const f = await timed(s.fork());
      out.sessions.push(f);
      await timed(f.forward([1])); // a worker's fork reports its failure here
    } catch (e) { out.fork = err(e); trapped = s; }
  }
  // The session whose fork failed: a clear error (never BUSY, never a hang).
  out.afterFork = trapped ? await attempt(() => timed(trapped.forward([1]))) : null;
  out.afterFork2 = trapped ? await attempt(() => timed(trapped.saveState())) : null;
  return out;
}

// ---- d. network and file errors -------------------------------------------------------------

/** A download whose connection drops midway (the test server cuts it), with and without a
 *  progress callback, on the page and in the worker, and in ModelStore.put. */
export async function networkDrop({ url }) {
  const out = {};
  out.page = await attempt(() => timed(Gander.load(url, { backend: 'cpu', worker: false })));
  out.pageProgress = await attempt(() => timed(Gander.load(url, { backend: 'cpu', worker: false, onProgress: () => {} })));
  out.worker = await attempt(() => timed(Gander.load(url, { backend: 'cpu', worker: true })));
  const st = await ModelStore.open();
  out.put = await attempt(() => timed(st.put('dropped', url)));
  out.names = (await st.list()).map((x) => x.name);
  st.close();
  return out;
}

/** A File chosen in `#file` whose file on disk changed since (the test truncates it). */
export async function changedFile() {
  const f = document.getElementById('file').files[0];
  const out = { size: f.size };
  out.page = await attempt(() => timed(Gander.load(f, { backend: 'cpu', worker: false })));
  out.worker = await attempt(() => timed(Gander.load(f, { backend: 'cpu', worker: true })));
  const st = await ModelStore.open();
  out.put = await attempt(() => timed(st.put('changed', f)));
  st.close();
  return out;
}

// ---- e. the conversion worker comes back ----------------------------------------------------

/** Workers this page starts (to kill the conversion worker from outside, as a crash would). */
function watchWorkers() {
  if (window.__workers) return;
  window.__workers = [];
  const Real = window.Worker;
  window.Worker = class extends Real {
    constructor(...a) { super(...a); window.__workers.push(this); }
  };
}

/** Kill `w` as a crash would: the worker ends and its error event fires. */
function crash(w) {
  w.terminate();
  w.onerror?.(new ErrorEvent('error', { message: 'simulated crash' }));
}

export async function convertWorkerRespawn() {
  watchWorkers();
  const pth = await bytes(TINY_PTH);
  const st = await ModelStore.open({ chunkSize: 256 * 1024 });
  const out = {};
  const put = (name, opts = {}) => attempt(() => timed(st.put(name, new Blob([pth]), { quant: 'int8', worker: true, ...opts }), 60000).then((m) => m.quant));
  out.first = await put('conv-1');
  // The worker crashes between two conversions.
  for (const w of window.__workers) crash(w);
  out.afterCrash = await put('conv-2');
  // The worker is killed in the middle of a conversion: that put fails with a clear error...
  let killed = false;
  out.killedMid = await put('conv-3', {
    onProgress: (p) => { if (p.phase === 'convert' && !killed) { killed = true; for (const w of window.__workers) crash(w); } },
  });
  // ... and the next one works.
  out.afterKill = await put('conv-4');
  out.names = (await st.list()).map((x) => x.name).sort();
  for (const n of out.names) await st.delete(n);
  st.close();
  return out;
}

// ---- f. state names are per model -----------------------------------------------------------

export async function statesPerModel() {
  const a = await Gander.load(await bytes(TINY), { backend: 'cpu', worker: false });
  const b = await Gander.load(await bytes(OTHER), { backend: 'cpu', worker: false });
  const sa = a.session();
  await sa.forward([1, 2, 3]);
  const sb = b.session();
  await sb.forward([4, 5]);
  const st = await ModelStore.open();
  const same = (x, y) => !!x && !!y && x.length === y.length && x.every((v, i) => v === y[i]);
  const out = {};
  const blobA = await sa.saveState();
  const blobB = await sb.saveState();
  await attempt(() => st.putState(a, 'intro', sa));
  await attempt(() => st.putState(b, 'intro', sb));
  const ga = await attempt(() => st.getState(a, 'intro'));
  const gb = await attempt(() => st.getState(b, 'intro'));
  out.aKept = same(ga.value, blobA);
  out.bKept = same(gb.value, blobB);
  out.getErrors = [ga.error, gb.error].filter(Boolean);
  out.listA = (await st.listStates(a)).map((x) => x.name);
  out.listB = (await st.listStates(b)).map((x) => x.name);
  // A state saved by an older version (keyed by its bare name) still loads for its model.
  const db = await new Promise((ok, bad) => { const r = indexedDB.open('gander'); r.onsuccess = () => ok(r.result); r.onerror = () => bad(r.error); });
  await new Promise((ok, bad) => {
    const tx = db.transaction('states', 'readwrite');
    tx.objectStore('states').put({ name: 'old', fingerprint: a.info.fingerprint, bytes: blobA.slice().buffer, size: blobA.length, model: { layers: a.info.layers, embd: a.info.embd, vocab: a.info.vocab }, createdAt: Date.now() });
    tx.oncomplete = ok; tx.onerror = () => bad(tx.error);
  });
  db.close();
  const old = await attempt(() => st.getState(a, 'old'));
  out.oldKept = same(old.value, blobA);
  out.oldOther = (await attempt(() => st.getState(b, 'old'))).error?.code;
  out.listAWithOld = (await st.listStates(a)).map((x) => x.name).sort();
  // Deleting one model's state leaves the other's.
  out.deleted = await attempt(() => st.deleteState(a, 'intro'));
  out.aAfterDelete = (await attempt(() => st.getState(a, 'intro'))).value ?? null;
  out.bAfterDelete = same((await attempt(() => st.getState(b, 'intro'))).value, blobB);
  for (const [m, n] of [[a, 'old'], [b, 'intro']]) await st.deleteState(m, n).catch(() => {});
  await st.deleteState('intro').catch(() => {});
  await st.deleteState('old').catch(() => {});
  out.left = (await st.listStates()).map((x) => x.name);
  st.close();
  await a.dispose();
  await b.dispose();
  return out;
}
