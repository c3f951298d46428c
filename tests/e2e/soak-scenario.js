// What the soak test does inside the page (tests/e2e/soak.test.mjs drives it chunk by chunk and
// samples memory between chunks): one model, a long-lived session that keeps generating, and in
// every chunk an aborted generation, a fork, and a state saved to the IndexedDB store, read back
// and restored into another session. Every token generated anywhere counts toward the total.

import { Gander, ModelStore } from '/pkg/index.js';

const FIXTURE = '/shared/fixtures/tiny-rwkv7-834k/model.safetensors';
const DATABASE = 'gander-soak';
/** States are saved under these names in turn (overwritten, so the store itself stays small). */
const SLOTS = 3;

let run = null;

/** GPU buffers (WebGPU path): every GPUDevice.createBuffer is counted, and so is its end, by
 *  destroy() or by the garbage collector (the package leaves its buffers to the collector: wgpu's
 *  WebGPU backend does not destroy a dropped buffer). Live bytes after a collection are the GPU
 *  memory the engine holds; before one, they include garbage waiting for it. */
const gpuBuffers = { created: 0, createdBytes: 0, ended: 0, endedBytes: 0, destroyed: 0 };
if (globalThis.GPUDevice && globalThis.GPUBuffer) {
  const ended = new FinalizationRegistry((size) => { gpuBuffers.ended++; gpuBuffers.endedBytes += size; });
  const create = GPUDevice.prototype.createBuffer;
  GPUDevice.prototype.createBuffer = function createBuffer(desc) {
    const b = create.call(this, desc);
    gpuBuffers.created++;
    gpuBuffers.createdBytes += b.size;
    ended.register(b, b.size, b);
    return b;
  };
  const destroy = GPUBuffer.prototype.destroy;
  GPUBuffer.prototype.destroy = function destroyBuffer() {
    if (ended.unregister(this)) { gpuBuffers.ended++; gpuBuffers.endedBytes += this.size; gpuBuffers.destroyed++; }
    return destroy.call(this);
  };
}

function gpuLive() {
  return { buffers: gpuBuffers.created - gpuBuffers.ended, bytes: gpuBuffers.createdBytes - gpuBuffers.endedBytes, created: gpuBuffers.created, destroyed: gpuBuffers.destroyed };
}

function err(e) {
  return { name: e && e.name, code: e && e.code, message: String(e && e.message) };
}

async function bytes(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return new Uint8Array(await r.arrayBuffer());
}

/** Run the garbage collector until dropped sessions' finalizers have run (needs --expose-gc). */
export async function settle() {
  for (let i = 0; i < 5; i++) { globalThis.gc?.(); await new Promise((r) => setTimeout(r, 50)); }
}

/** Load the model and open the store. `plan`: tokens per part of a chunk (see `chunk`). */
export async function start({ backend, worker, plan }) {
  if (run) throw new Error('a soak run is already going');
  const model = await Gander.load((await bytes(FIXTURE)).buffer, { backend, worker });
  const store = await ModelStore.open({ database: DATABASE });
  const main = model.session();
  await main.prefill('Once upon a time');
  run = {
    model, store, main, plan, restored: model.session(),
    n: { chunks: 0, tokens: 0, aborts: 0, forks: 0, forksDropped: 0, saves: 0, restores: 0 },
    decodeMs: 0, wallMs: 0, text: '', failures: [],
  };
  return { info: model.info, hasGc: typeof globalThis.gc === 'function' };
}

/** Drain one generation; returns its tokens (events with a token id) and text. */
async function drain(session, prompt, options) {
  let tokens = 0;
  let text = '';
  for await (const ev of session.generate(prompt, options)) {
    if (ev.token !== undefined) tokens++;
    text += ev.text;
  }
  return { tokens, text };
}

/** One chunk (`i` counts chunks from 0):
 *  1. the main session continues for plan.main tokens (sampled, seeded by the chunk);
 *  2. it goes on and is aborted through an AbortSignal after 1..plan.abort tokens: the
 *     iterator must throw ABORTED with exactly those tokens yielded;
 *  3. it is forked: the fork's saved state must equal the session's byte for byte; the fork
 *     generates plan.fork tokens and is disposed (even chunks) or just dropped for the garbage
 *     collector to reclaim (odd chunks, followed by a collection);
 *  4. its state is saved to the store (putState, a rotating name), read back (getState), must
 *     equal saveState's blob byte for byte, and is loaded into a second long-lived session,
 *     which generates plan.restore tokens from it (after one prompt byte). */
async function chunk(i) {
  const { model, store, main, plan, n } = run;
  const fail = (what) => run.failures.push(`chunk ${i}: ${what}`);
  const opts = (seed, maxTokens) => ({ temperature: 1, topP: 0.9, seed, maxTokens });

  // 1. Continue.
  const a = await drain(main, '', opts(i, plan.main));
  if (a.tokens !== plan.main) fail(`main generated ${a.tokens} of ${plan.main} tokens (${main.lastGeneration?.finish})`);
  n.tokens += a.tokens;
  run.decodeMs += main.lastGeneration.decodeMs;
  run.text = (run.text + a.text).slice(-200);

  // 2. Abort mid-generation.
  const stopAt = 1 + (i % plan.abort);
  const ac = new AbortController();
  let yielded = 0;
  let caught = null;
  try {
    for await (const ev of main.generate('', { ...opts(1e6 + i, plan.abort + 50), signal: ac.signal })) {
      if (ev.token !== undefined) yielded++;
      if (yielded === stopAt) ac.abort();
    }
  } catch (e) {
    caught = e;
  }
  if (caught?.code !== 'ABORTED') fail(`abort: expected ABORTED, got ${JSON.stringify(caught ? err(caught) : 'no error')}`);
  if (yielded !== stopAt) fail(`abort: ${yielded} tokens yielded, aborted after ${stopAt}`);
  if (main.lastGeneration.finish !== 'aborted') fail(`abort: finish ${main.lastGeneration.finish}`);
  n.tokens += yielded;
  n.aborts++;

  // 3. Fork.
  const f = await main.fork();
  const forkBlob = await f.saveState();
  const b = await drain(f, '', opts(2e6 + i, plan.fork));
  if (b.tokens !== plan.fork) fail(`fork generated ${b.tokens} of ${plan.fork}`);
  n.tokens += b.tokens;
  n.forks++;
  if (i % 2 === 0) {
    await f.dispose();
  } else {
    // Dropped: the package's FinalizationRegistry frees it after a collection. Collect now, so
    // that wasm memory does not depend on when V8 would have (it sees a small wrapper, not the
    // state behind it: left alone, dozens of dropped forks can wait for a collection, and wasm
    // memory keeps the high-water mark of that).
    n.forksDropped++;
    globalThis.gc?.();
    await new Promise((r) => setTimeout(r, 0));
  }

  // 4. Save to the store, read back, restore into the second session.
  const blob = await main.saveState();
  const name = `soak-${i % SLOTS}`;
  const put = await store.putState(model, name, main);
  const back = await store.getState(model, name);
  if (forkBlob.byteLength !== blob.byteLength || !forkBlob.every((x, k) => x === blob[k])) fail('the fork\'s state differs from the session\'s');
  if (put.size !== blob.byteLength || !back || back.byteLength !== blob.byteLength) fail(`state sizes: blob ${blob.byteLength}, put ${put.size}, got ${back?.byteLength}`);
  else if (!back.every((x, k) => x === blob[k])) fail('the stored state differs from saveState()');
  n.saves++;
  await run.restored.loadState(back);
  n.restores++;
  // A loaded state has no logits to continue from: feed one byte first.
  const c = await drain(run.restored, '\n', opts(3e6 + i, plan.restore));
  if (c.tokens !== plan.restore) fail(`restored session generated ${c.tokens} of ${plan.restore}`);
  n.tokens += c.tokens;
  n.chunks++;
}

/** Run chunks until `untilTokens` tokens have been generated in all; the counters so far. */
export async function chunks({ untilTokens }) {
  const t0 = performance.now();
  try {
    while (run.n.tokens < untilTokens && run.failures.length === 0) await chunk(run.n.chunks);
  } catch (e) {
    run.failures.push(`chunk ${run.n.chunks}: ${e && e.name}: ${e && e.message}`);
  }
  run.wallMs += performance.now() - t0;
  return progress();
}

function progress() {
  return { ...run.n, decodeMs: run.decodeMs, wallMs: run.wallMs, failures: run.failures.slice(0, 20), failureCount: run.failures.length, tail: run.text };
}

/** Wasm memory of the engine (the worker's with worker: true), live sessions and GPU buffers
 *  (page thread only), after a collection; `gpuBefore`: GPU buffers before it. */
export async function memory() {
  const gpuBefore = gpuLive();
  await settle();
  return { wasm: await run.model._memoryBytes(), live: await run.model._liveSessions(), gpu: gpuLive(), gpuBefore };
}

/** Delete the saved states, free everything; the final counters. */
export async function finish() {
  if (!run) return null;
  const out = progress();
  try {
    out.statesLeft = (await run.store.listStates(run.model)).length;
    for (let k = 0; k < SLOTS; k++) await run.store.deleteState(`soak-${k}`);
    out.statesAfterDelete = (await run.store.listStates(run.model)).length;
  } finally {
    run.store.close();
    await run.model.dispose();
    run = null;
  }
  return out;
}
