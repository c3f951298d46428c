// What the package tests do inside the page; tests/e2e/pkg.test.mjs calls these through
// Playwright and checks the numbers they return. Golden numbers come from the official rwkv
// package (tests/golden/make_golden.py), never from Gander.

import { Gander, ModelStore } from '/pkg/index.js';
import { hooks, SIMULATED_CRASH } from '/pkg/hooks.js';

export const CASES = ['bf16-l0v', 'fp16-oddranks', 'fp32-bytes'];

async function bytes(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return new Uint8Array(await r.arrayBuffer());
}

async function floats(url) {
  const b = await bytes(url);
  return new Float32Array(b.buffer, 0, b.byteLength / 4);
}

/** max|got - want| / std(want), the tolerance measure of the Rust golden tests. */
export function relErr(got, want) {
  let mean = 0;
  for (const x of want) mean += x;
  mean /= want.length;
  let v = 0;
  for (const x of want) v += (x - mean) ** 2;
  const std = Math.sqrt(v / want.length);
  let d = 0;
  for (let i = 0; i < want.length; i++) d = Math.max(d, Math.abs(got[i] - want[i]));
  return got.length === want.length ? d / std : Infinity;
}

function err(e) {
  return { name: e && e.name, code: e && e.code, message: String(e && e.message), isGander: e instanceof Error && 'code' in e };
}

/** Golden logits token by token, greedy continuation, and the reason/backend chosen. With
 * `tuned`, the session first loads the case's state-tuning file (time_state.pth) and the
 * reference is the official package started from that state. */
export async function golden(caseName, { backend, worker, source = 'pth', tuned = false }) {
  const dir = `/tests/golden/${caseName}`;
  const g = await (await fetch(`${dir}/golden.json`)).json();
  if (tuned) g.greedy = (await (await fetch(`${dir}/tuned.json`)).json()).greedy;
  const want = await floats(`${dir}/logits_${tuned ? 'tuned' : 'one'}.f32`);
  const file = await bytes(`${dir}/model.${source}`);
  const progress = [];
  const m = await Gander.load(file.buffer, { backend, worker, onProgress: (p) => progress.push(p.fraction) });
  const s = m.session();
  if (tuned) await s.loadState(await bytes(`${dir}/time_state.pth`));
  let worst = 0;
  for (let t = 0; t < g.tokens.length; t++) {
    const l = await s.forward([g.tokens[t]]);
    worst = Math.max(worst, relErr(l, want.subarray(t * g.vocab, (t + 1) * g.vocab)));
  }
  const greedy = [];
  for await (const ev of s.generate('', { temperature: 0, maxTokens: g.greedy.length })) greedy.push(ev.token);
  const out = { info: m.info, worst, greedy, want: g.greedy, progressMonotone: progress.every((x, i) => i === 0 || x >= progress[i - 1]), progressLast: progress.at(-1) };
  await m.dispose();
  return out;
}

/** CPU vs WebGPU on one model: logits of a sequence, state blobs, and a state moved across. */
export async function parity({ worker }) {
  const file = await bytes('/shared/fixtures/tiny-rwkv7-834k/model.safetensors');
  const gpu = await Gander.load(file.slice().buffer, { backend: 'webgpu', worker });
  const cpu = await Gander.load(file.slice().buffer, { backend: 'cpu', worker });
  const ids = Array.from(new TextEncoder().encode('The quick brown fox'));
  const sg = gpu.session();
  const sc = cpu.session();
  const lg = await sg.forward(ids);
  const lc = await sc.forward(ids);
  const logits = relErr(lg, lc);
  const bg = await sg.saveState();
  const bc = await sc.saveState();
  let stateDiff = 0;
  const fg = new Float32Array(bg.buffer.slice(60));
  const fc = new Float32Array(bc.buffer.slice(60));
  for (let i = 0; i < fg.length; i++) stateDiff = Math.max(stateDiff, Math.abs(fg[i] - fc[i]));
  const headerSame = bg.subarray(0, 60).every((x, i) => x === bc[i]);
  // A state saved on the GPU continues on the CPU, and the other way round.
  const c2 = cpu.session();
  await c2.loadState(bg);
  const g2 = gpu.session();
  await g2.loadState(bc);
  const next = Array.from(new TextEncoder().encode(' jumps'));
  const a = await c2.forward(next);
  const b = await g2.forward(next);
  const c = await sc.forward(next);
  await sg.forward(next);
  const crossed = Math.max(relErr(a, c), relErr(b, c));
  // Same seed, same tokens on both backends.
  const gen = async (s) => { const t = []; for await (const ev of s.generate('', { temperature: 0.8, topP: 0.9, seed: 7, maxTokens: 16 })) t.push(ev.token); return t; };
  const seededG = await gen(sg);
  const seededC = await gen(sc);
  const fork = await sc.fork();
  const fa = await fork.forward([65]);
  const fb = await sc.forward([65]);
  // Issue 20: once a session's first generations have built what later tokens reuse, a decoded
  // token creates nothing on the device, submits once and reads back only its id.
  const steady = gpu.session();
  await steady.prefill(ids);
  const run = async (n) => { let k = 0; for await (const ev of steady.generate('', { temperature: 0.7, seed: 3, maxTokens: n })) k += ev.token >= 0; return k; };
  await run(4);
  await run(4);
  await gpu.deviceCounters();
  const steadyTokens = await run(12);
  const counters = await gpu.deviceCounters();
  const cpuCounters = await cpu.deviceCounters();
  const out = { logits, stateDiff, headerSame, crossed, seededSame: seededG.join() === seededC.join(), seededLen: seededG.length, forkSame: relErr(fa, fb), gpuInfo: gpu.info, cpuInfo: cpu.info, steadyTokens, counters, cpuCounters };
  await gpu.dispose();
  await cpu.dispose();
  return out;
}

/** Abort a generation after a few tokens; the session must go on working. */
export async function abort({ backend, worker }) {
  const file = await bytes('/shared/fixtures/tiny-rwkv7-834k/model.safetensors');
  const m = await Gander.load(file.slice().buffer, { backend, worker });
  const s = m.session();
  const ac = new AbortController();
  const got = [];
  let caught = null;
  try {
    for await (const ev of s.generate('Hello', { temperature: 0, maxTokens: 100, signal: ac.signal })) {
      got.push(ev.token);
      if (got.length === 3) ac.abort();
    }
  } catch (e) {
    caught = err(e);
  }
  // Usable afterwards: the state holds the prompt and exactly the tokens yielded.
  const after = [];
  for await (const ev of s.generate('', { temperature: 0, maxTokens: 3 })) after.push(ev.token);
  const refAfter = [];
  const ref2 = m.session();
  await ref2.prefill([...new TextEncoder().encode('Hello'), ...got]);
  for await (const ev of ref2.generate('', { temperature: 0, maxTokens: 3 })) refAfter.push(ev.token);
  // Breaking out of the loop also leaves it usable.
  for await (const ev of s.generate(' more', { temperature: 0, maxTokens: 50 })) { if (ev) break; }
  const l2 = await s.forward([32]);
  // An already-aborted signal refuses a load.
  let loadAbort = null;
  try { await Gander.load(file.slice().buffer, { backend, worker, signal: AbortSignal.abort() }); } catch (e) { loadAbort = err(e); }
  await m.dispose();
  return { tokensBeforeAbort: got.length, caught, after, refAfter, l2: l2.length, finish: s.lastGeneration && s.lastGeneration.finish, loadAbort };
}

/** Options and inputs that must be refused with a coded error naming the problem. */
export async function badInput({ worker }) {
  const file = await bytes('/shared/fixtures/tiny-rwkv7-834k/model.safetensors');
  const out = {};
  const tryIt = async (k, f) => { try { await f(); out[k] = 'no error'; } catch (e) { out[k] = err(e); } };
  await tryIt('unknownLoadOption', () => Gander.load(file.slice().buffer, { backend: 'cpu', worker, bakend: 'x' }));
  await tryIt('badBackend', () => Gander.load(file.slice().buffer, { backend: 'gpu', worker }));
  await tryIt('notAModel', () => Gander.load(new Uint8Array(1000).fill(7), { backend: 'cpu', worker }));
  await tryIt('truncated', () => Gander.load(file.slice(0, 5000).buffer, { backend: 'cpu', worker }));
  await tryIt('badSource', () => Gander.load(42, { backend: 'cpu', worker }));
  const m = await Gander.load(file.slice().buffer, { backend: 'cpu', worker });
  const s = m.session();
  await tryIt('tokenRange', () => s.forward([256]));
  await tryIt('negativeToken', () => s.forward([-1]));
  await tryIt('unknownGenOption', async () => { for await (const _ of s.generate('a', { temprature: 0 })); });
  await tryIt('badGenValue', async () => { for await (const _ of s.generate('a', { topP: 2 })); });
  await tryIt('emptyContinue', async () => { for await (const _ of s.generate('', {})); });
  await tryIt('garbageState', () => s.loadState(new Uint8Array(100)));
  // Still fine after all that.
  const l = await s.forward([1, 2, 3]);
  out.stillWorks = l.length;
  await m.dispose();
  return out;
}

/** Store round trip: put (converting), list, load from the store, usage, delete. */
export async function store({ worker, backend }) {
  const st = await ModelStore.open({ chunkSize: 256 * 1024 });
  const file = await bytes('/shared/fixtures/tiny-rwkv7-834k/model.pth');
  const phases = new Set();
  const put = await st.put('tiny-int8', new Blob([file]), { quant: 'int8', worker, onProgress: (p) => phases.add(p.phase) });
  const put2 = await st.put('tiny-raw', file.slice().buffer, {});
  const list = (await st.list()).map((m) => ({ name: m.name, size: m.size, quant: m.quant, chunks: m.chunks, kind: m.kind }));
  const usage = await st.usage();
  const want = await floats('/shared/fixtures/tiny-rwkv7-834k/expected-logits-after-quote-i-n.f32');
  const fromStore = {};
  for (const name of ['tiny-int8', 'tiny-raw']) {
    const m = await Gander.load({ store: name }, { backend, worker });
    const s = m.session();
    const l = await s.forward([34, 105, 110]);
    fromStore[name] = { err: relErr(l, want), quant: m.info.quant, backend: m.info.backend };
    // States: saved with the model's fingerprint; refused for another model.
    await st.putState(m, `state-${name}`, s);
    const back = await st.getState(m, `state-${name}`);
    const s2 = m.session();
    await s2.loadState(back);
    fromStore[name].stateRoundTrip = relErr(await s2.forward([32]), await s.forward([32]));
    await m.dispose();
  }
  const other = await Gander.load(await bytes('/tests/golden/fp32-bytes/model.pth'), { backend: 'cpu', worker });
  let mismatch = null;
  try { await st.getState(other, 'state-tiny-int8'); } catch (e) { mismatch = err(e); }
  let mismatchLoad = null;
  const blob = await (async () => { const m = await Gander.load({ store: 'tiny-raw' }, { backend: 'cpu', worker }); const s = m.session(); await s.forward([1]); const b = await s.saveState(); await m.dispose(); return b; })();
  try { await other.session().loadState(blob); } catch (e) { mismatchLoad = err(e); }
  await other.dispose();
  const deleted = await st.delete('tiny-raw');
  const after = (await st.list()).map((m) => m.name);
  let missing = null;
  try { await Gander.load({ store: 'tiny-raw' }, { backend: 'cpu', worker }); } catch (e) { missing = err(e); }
  await st.delete('tiny-int8');
  st.close();
  return { put: { size: put.size, quant: put.quant, chunks: put.chunks, size2: put2.size }, phases: [...phases], list, usage, fromStore, mismatch, mismatchLoad, deleted, after, missing };
}

/** A chunk altered on disk is detected at load and named; the other models still load. */
export async function corrupt({ backend }) {
  const st = await ModelStore.open({ chunkSize: 256 * 1024 });
  const file = await bytes('/shared/fixtures/tiny-rwkv7-834k/model.safetensors');
  await st.put('victim', file.slice().buffer);
  await st.put('bystander', file.slice().buffer);
  const m = (await st.list()).find((x) => x.name === 'victim');
  st.close();
  // Flip a byte of chunk 1 behind the store's back.
  const db = await new Promise((ok, bad) => { const r = indexedDB.open('gander'); r.onsuccess = () => ok(r.result); r.onerror = () => bad(r.error); });
  await new Promise((ok, bad) => {
    const tx = db.transaction('chunks', 'readwrite');
    const os = tx.objectStore('chunks');
    const g = os.get([m.writeId, 1]);
    g.onsuccess = () => { const b = new Uint8Array(g.result); b[100] ^= 0xff; os.put(b.buffer, [m.writeId, 1]); };
    tx.oncomplete = ok; tx.onerror = () => bad(tx.error);
  });
  db.close();
  let caught = null;
  try { await Gander.load({ store: 'victim' }, { backend }); } catch (e) { caught = err(e); }
  const ok = await Gander.load({ store: 'bystander' }, { backend });
  const l = await ok.session().forward([1]);
  await ok.dispose();
  const st2 = await ModelStore.open();
  await st2.delete('victim');
  await st2.delete('bystander');
  st2.close();
  return { caught, bystanderWorks: l.length };
}

/** Quota: refused before writing when the estimate says it cannot fit, and a QuotaExceededError
 *  in mid-write is reported with numbers, cleans its chunks, and leaves other models alone. */
export async function quota() {
  const st = await ModelStore.open({ chunkSize: 256 * 1024 });
  const file = await bytes('/shared/fixtures/tiny-rwkv7-834k/model.safetensors');
  await st.put('keeper', file.slice().buffer);
  const realEstimate = navigator.storage.estimate.bind(navigator.storage);
  const out = {};
  try {
    navigator.storage.estimate = async () => ({ quota: 1_000_000, usage: 900_000 });
    try { await st.put('too-big', file.slice().buffer); out.before = 'no error'; } catch (e) { out.before = { ...err(e), needed: e.needed, available: e.available }; }
  } finally {
    navigator.storage.estimate = realEstimate;
  }
  hooks.beforeChunk = (store, i) => { if (store === st && i === 2) throw new DOMException('simulated: the quota ran out', 'QuotaExceededError'); };
  try { await st.put('mid-write', file.slice().buffer); out.mid = 'no error'; } catch (e) { out.mid = { ...err(e), needed: e.needed }; } finally { hooks.beforeChunk = null; }
  out.names = (await st.list()).map((m) => m.name);
  out.leftovers = await countOrphanChunks(st);
  // A tab closed mid-write (nothing cleans up then): the next open() removes the leftovers.
  hooks.beforeChunk = (store, i) => { if (store === st && i === 2) throw SIMULATED_CRASH; };
  try { await st.put('crashed', file.slice().buffer); } catch { /* expected */ } finally { hooks.beforeChunk = null; }
  out.orphansAfterCrash = await countOrphanChunks(st);
  out.namesAfterCrash = (await st.list()).map((m) => m.name);
  st.close();
  const st2 = await ModelStore.open();
  out.orphansAfterReopen = await countOrphanChunks(st2);
  const keeper = await Gander.load({ store: 'keeper' }, { backend: 'cpu' });
  out.keeperWorks = (await keeper.session().forward([1])).length;
  await keeper.dispose();
  await st2.delete('keeper');
  st2.close();
  return out;
}

async function countOrphanChunks(st) {
  const live = new Set((await st.list()).map((m) => m.writeId));
  const keys = await new Promise((ok, bad) => { const r = st._db.transaction('chunks').objectStore('chunks').getAllKeys(); r.onsuccess = () => ok(r.result); r.onerror = () => bad(r.error); });
  return keys.filter(([w]) => !live.has(w)).length;
}

/** A lost GPU ends the call with DEVICE_LOST; the state saved before loads on the CPU. */
export async function deviceLoss({ worker }) {
  const file = await bytes('/shared/fixtures/tiny-rwkv7-834k/model.safetensors');
  const gpu = await Gander.load(file.slice().buffer, { backend: 'webgpu', worker });
  const s = gpu.session();
  await s.forward(Array.from(new TextEncoder().encode('Saved before')));
  const saved = await s.saveState();
  await gpu._simulateDeviceLoss();
  let caught = null;
  try { await s.forward([32]); } catch (e) { caught = err(e); }
  await gpu.dispose();
  const cpu = await Gander.load(file.slice().buffer, { backend: 'cpu', worker });
  const c = cpu.session();
  await c.loadState(saved);
  const a = await c.forward([32]);
  const ref = cpu.session();
  const b = await ref.forward(Array.from(new TextEncoder().encode('Saved before ')));
  // A new auto load after the loss gets a working backend again.
  const again = await Gander.load(file.slice().buffer, { backend: 'auto', worker });
  const works = (await again.session().forward([1])).length;
  const out = { caught, resumed: relErr(a, b), againBackend: again.info.backend, works };
  await cpu.dispose();
  await again.dispose();
  return out;
}

/** Load a model from the store on WebGPU and report how much the wasm heap grew: streaming
 *  part by part means it holds one part at a time, never the whole file. */
export async function streaming({ url, backend = 'webgpu' }) {
  const st = await ModelStore.open();
  const file = await bytes(url);
  await st.put('streamed', file);
  await Gander.init();
  const before = Gander.wasmMemoryBytes();
  const m = await Gander.load({ store: 'streamed' }, { backend });
  const after = Gander.wasmMemoryBytes();
  const l = await m.session().forward([1, 2, 3]);
  const out = { size: file.byteLength, before, after, grew: after - before, backend: m.info.backend, quant: m.info.quant, logits: l.length, finite: l.every(Number.isFinite) };
  await m.dispose();
  await st.delete('streamed');
  st.close();
  return out;
}

/** Leaks: wasm memory after `n` generations each aborted after its first token, against the
 *  memory after a warm-up of 50 (wasm memory only grows, so a leak shows as growth). */
export async function abortLeak({ worker, n = 1000 }) {
  const file = await bytes('/shared/fixtures/tiny-rwkv7-834k/model.safetensors');
  const m = await Gander.load(file.buffer, { backend: 'cpu', worker });
  const s = m.session();
  const once = async () => {
    const ac = new AbortController();
    try {
      for await (const ev of s.generate('Hi', { temperature: 0.8, maxTokens: 50, signal: ac.signal })) { if (ev) ac.abort(); }
    } catch (e) {
      if (e.code !== 'ABORTED') throw e;
    }
  };
  for (let i = 0; i < 50; i++) await once();
  const before = await m._memoryBytes();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await once();
  const after = await m._memoryBytes();
  const works = (await s.forward([1])).length;
  await m.dispose();
  return { before, after, n, ms: performance.now() - t0, works };
}

/** Two writers of one name (two tabs): the second is refused with BUSY while the first runs,
 *  and the first completes intact. */
export async function twoWriters() {
  const file = await bytes('/shared/fixtures/tiny-rwkv7-834k/model.safetensors');
  const a = await ModelStore.open({ chunkSize: 256 * 1024 });
  const b = await ModelStore.open({ chunkSize: 256 * 1024 });
  let release;
  const gate = new Promise((r) => { release = r; });
  hooks.beforeChunk = async (store, i) => { if (store === a && i === 1) await gate; };
  const first = a.put('contested', file.slice().buffer);
  await new Promise((r) => setTimeout(r, 50));
  let second = null;
  try { await b.put('contested', file.slice().buffer); } catch (e) { second = err(e); }
  release();
  const manifest = await first.finally(() => { hooks.beforeChunk = null; });
  const m = await Gander.load({ store: 'contested' }, { backend: 'cpu' });
  const works = (await m.session().forward([1])).length;
  await m.dispose();
  await a.delete('contested');
  a.close();
  b.close();
  return { second, chunks: manifest.chunks, works };
}

/** A state of another format version, or cut short, is refused with a coded error. */
export async function stateVersions() {
  const file = await bytes('/shared/fixtures/tiny-rwkv7-834k/model.safetensors');
  const m = await Gander.load(file.buffer, { backend: 'cpu' });
  const s = m.session();
  await s.forward([1, 2, 3]);
  const blob = await s.saveState();
  const out = {};
  const v2 = blob.slice();
  new DataView(v2.buffer).setUint32(8, 2, true);
  try { await s.loadState(v2); out.version = 'no error'; } catch (e) { out.version = err(e); }
  try { await s.loadState(blob.slice(0, blob.length - 4)); out.short = 'no error'; } catch (e) { out.short = err(e); }
  await s.loadState(blob);
  out.works = (await s.forward([4])).length;
  await m.dispose();
  return out;
}

/** The GPU lost in the middle of a generation ends it with DEVICE_LOST. */
export async function lossMidGeneration({ worker }) {
  const file = await bytes('/shared/fixtures/tiny-rwkv7-834k/model.safetensors');
  const m = await Gander.load(file.buffer, { backend: 'webgpu', worker });
  const s = m.session();
  let n = 0;
  let caught = null;
  try {
    for await (const ev of s.generate('A', { temperature: 0, maxTokens: 20 })) {
      if (ev && ++n === 2) await m._simulateDeviceLoss();
    }
  } catch (e) { caught = err(e); }
  await m.dispose();
  return { n, caught };
}

/** Issue 16: Gander.inspect reads only headers (range requests for a URL, slices of a Blob),
 * and a checkpoint in another layout (flash-linear-attention, written by
 * tools/layouts/make_layouts.py) loads and gives the official package's logits. */
export async function inspectAndLayouts({ layoutsUrl, ggufUrl }) {
  const pthUrl = '/shared/fixtures/tiny-rwkv7-834k/model.pth';
  const byUrl = await Gander.inspect(pthUrl);
  const byBlob = await Gander.inspect(new Blob([await bytes(pthUrl)]));
  const st = await Gander.inspect('/shared/fixtures/tiny-rwkv7-834k/model.safetensors');
  const fla = await Gander.inspect(`${layoutsUrl}/fla-xx/model.safetensors`);
  let missing;
  try { await Gander.inspect('/no/such/model.pth'); } catch (e) { missing = err(e); }
  // The fla file loads (whole: other layouts are renamed on load) and gives the official logits.
  const g = await (await fetch('/tests/golden/fp32-bytes/golden.json')).json();
  const want = await floats('/tests/golden/fp32-bytes/logits_one.f32');
  const m = await Gander.load(`${layoutsUrl}/fla/model.safetensors`, { backend: 'cpu', worker: false });
  const s = m.session();
  const got = await s.forward(g.tokens);
  const flaErr = relErr(got, want.subarray(want.length - g.vocab));
  await m.dispose();
  // Hugging Face shards (the transformers `rwkv7.` layout in two files): by the index's URL, by
  // the shard URLs without the index, and as Files, on the page and in a worker; each must give
  // the fla file's logits bit for bit (the same official values, renamed).
  const hf = `${layoutsUrl}/hf-rwkv7`;
  const shard = (i) => `${hf}/model-0000${i}-of-00002.safetensors`;
  const files = [];
  for (const i of [1, 2]) files.push(new File([await bytes(shard(i))], `model-0000${i}-of-00002.safetensors`));
  const shards = {};
  for (const [how, src, worker] of [['index', `${hf}/model.safetensors.index.json`, false], ['urls', [shard(2), shard(1)], true],
    ['files', files, false], ['quant', `${hf}/model.safetensors.index.json`, false]]) {
    const m2 = await Gander.load(src, { backend: 'cpu', worker, ...(how === 'quant' ? { quant: 'f32' } : {}) });
    const got2 = await m2.session().forward(g.tokens);
    shards[how] = got2.length === got.length && got2.every((x, i) => Object.is(x, got[i]));
    await m2.dispose();
  }
  // llama.cpp GGUF (tools/layouts/make_gguf.py): F32 is the official values, bit for bit; a
  // K-quant file converted to int8 on the way runs.
  const gguf = {};
  for (const [name, quant] of [['f32', undefined], ['kquants', 'int8']]) {
    const m3 = await Gander.load(`${ggufUrl}/${name}.gguf`, { backend: 'cpu', worker: false, quant });
    const got3 = await m3.session().forward(g.tokens);
    gguf[name] = { quant: m3.info.quant, same: got3.every((x, i) => Object.is(x, got[i])), finite: got3.every(Number.isFinite) };
    await m3.dispose();
  }
  let twice;
  try { await Gander.load([shard(1), shard(1)], { backend: 'cpu', worker: false }); } catch (e) { twice = err(e); }
  // With an index, bytes cannot be matched to the index's file names.
  let unnamed;
  try { await Gander.load([`${hf}/model.safetensors.index.json`, await bytes(shard(1))], { backend: 'cpu', worker: false }); } catch (e) { unnamed = err(e); }
  return { byUrl, byBlob, st, fla, missing, flaErr, shards, twice, unnamed, gguf };
}

/** Issue 16: a URL loads through the store's cache. `step` 'fresh' clears the cached copy and
 * aborts the download after its second chunk; 'resume' loads again (it resumes); 'cached' loads
 * once more (the store alone). Each returns the progress events, the stored names and the first
 * logits; the test counts the bytes the server sent for each step. */
export async function urlCache({ url, worker, step, chunkSize = 256 * 1024 }) {
  const st = await ModelStore.open();
  const name = `url:${new URL(url, location.href).href}`;
  const events = [];
  const onProgress = (p) => events.push({ phase: p.phase, chunk: p.chunk, chunks: p.chunks, resumedFrom: p.resumedFrom, loaded: p.loaded, total: p.total });
  try {
    if (step === 'fresh') {
      await st.delete(name);
      const ac = new AbortController();
      let aborted = null;
      try {
        // On this thread (worker: false) the abort lands between two chunks, deterministically;
        // resuming is the same code in a worker.
        const m = await Gander.load(url, { backend: 'cpu', worker: false, cache: { chunkSize }, signal: ac.signal,
          onProgress: (p) => { onProgress(p); if (p.phase === 'download' && p.chunk >= 2) ac.abort(); } });
        await m.dispose();
      } catch (e) { aborted = err(e); }
      return { aborted, events, stored: (await st.list()).map((m) => m.name) };
    }
    const m = await Gander.load(url, { backend: 'cpu', worker, cache: { chunkSize }, onProgress });
    const logits = Array.from((await m.session().forward([1, 2, 3])).slice(0, 16));
    await m.dispose();
    const plain = await Gander.load(url, { backend: 'cpu', worker, cache: false });
    const want = Array.from((await plain.session().forward([1, 2, 3])).slice(0, 16));
    await plain.dispose();
    const manifest = await st.manifest(name);
    return { events, logits, want, stored: (await st.list()).map((x) => x.name), manifest: manifest && { size: manifest.size, validator: manifest.validator, kind: manifest.kind } };
  } finally {
    st.close();
  }
}

/** Load a URL converted on the way (`quant`, the pull loader) and, for comparison, the file
 *  `ModelStore.put(.., { quant })` converts whole (the Rust converter of `gander convert`):
 *  the two must be the same model, bit for bit. */
export async function pullQuant({ url, worker, backend, quant = 'int8' }) {
  const st = await ModelStore.open();
  const ref = `pull-ref-${worker}-${backend}`;
  try {
    const events = [];
    const before = Gander.wasmMemoryBytes();
    const m = await Gander.load(url, { backend, worker, quant, onProgress: (p) => events.push({ phase: p.phase, part: p.part, parts: p.parts, quant: p.quant }) });
    const info = { quant: m.info.quant, backend: m.info.backend, fingerprint: m.info.fingerprint };
    const a = Array.from(await m.session().forward([1, 2, 3, 4, 5]));
    await m.dispose();
    const grew = Gander.wasmMemoryBytes() - before;
    await st.put(ref, url, { quant });
    const r = await Gander.load({ store: ref }, { backend, worker });
    const b = Array.from(await r.session().forward([1, 2, 3, 4, 5]));
    const want = { quant: r.info.quant, fingerprint: r.info.fingerprint };
    await r.dispose();
    return { same: a.length === b.length && a.every((x, i) => Object.is(x, b[i])), n: a.length, info, want, events, grew };
  } finally {
    await st.delete(ref).catch(() => {});
    st.close();
  }
}

/** Two loads of one URL through the cache: the second waits for the first's download (the
 * store's put lock); aborting it ends the wait at once with ABORTED, and the first, held at a
 * chunk meanwhile, completes and loads. */
export async function abortWhileWaiting() {
  const url = '/shared/fixtures/tiny-rwkv7-834k/model.safetensors';
  const cache = { database: 'gander-abort-wait', chunkSize: 256 * 1024 };
  let release;
  const gate = new Promise((r) => { release = r; });
  let held = false;
  hooks.beforeChunk = async (_store, i, _n, name) => { if (name.includes('model.safetensors') && i === 1) { held = true; await gate; } };
  const first = Gander.load(url, { backend: 'cpu', worker: false, cache });
  while (!held) await new Promise((r) => setTimeout(r, 10));
  const ac = new AbortController();
  const second = Gander.load(url, { backend: 'cpu', worker: false, cache, signal: ac.signal }).then(() => 'loaded', (e) => err(e));
  await new Promise((r) => setTimeout(r, 100));
  ac.abort();
  // Without the abort reaching the lock wait, the second would wait for the first, held at its
  // gate: let the first go after 5 s so such a build fails (the second then loads) instead of
  // hanging. With it, the second has settled long before, while the first is still held.
  let letGone = false;
  const letGo = setTimeout(() => { letGone = true; release(); }, 5000);
  const secondResult = await second;
  const firstStillHeld = !letGone;
  clearTimeout(letGo);
  release();
  let works = 0;
  try {
    const m = await first;
    works = (await m.session().forward([1])).length;
    await m.dispose();
  } finally {
    hooks.beforeChunk = null;
  }
  const st = await ModelStore.open({ database: cache.database });
  const list = (await st.list()).map((m) => m.name);
  for (const n of list) await st.delete(n);
  st.close();
  return { second: secondResult, firstStillHeld, works, stored: list.length };
}
