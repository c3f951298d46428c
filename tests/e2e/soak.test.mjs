// Soak: one page generates 20,000 tokens in chunks (soak-scenario.js: every chunk continues a
// long-lived session, aborts a generation through an AbortSignal, forks the session and drops
// or disposes the fork, saves the state to the IndexedDB store, reads it back and restores it
// into a second session), on the wasm CPU path (on the page and in the worker) and on WebGPU
// (SwiftShader), and checks that nothing fails and that memory stays flat: wasm memory of the
// engine and the page's JS heap are sampled after a warm-up (the first 10% of the tokens) and
// after every further 10%. Needs `make pkg` first.
//
// Tokens: GANDER_SOAK_TOKENS sets the count of every run. Default: 20,000 on the CPU path; on
// WebGPU SOAK_WEBGPU_TOKENS (below), what fits about 4 minutes on SwiftShader. The full soak on
// both paths: `GANDER_SOAK_TOKENS=20000 node --test tests/e2e/soak.test.mjs` (hours on
// SwiftShader; see SOAK_WEBGPU_TOKENS).
//
// No wall-clock limit is asserted; each 10% of a run has a generous safety-net timeout so a hang
// fails instead of eating the CI budget. Speeds are printed for the record.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer } from '../../tools/serve.mjs';
import { launch, openPage } from './browser.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

// SwiftShader runs the fixture (C = 64, L = 12) at about 1 s per token on a 2-core machine
// (measured: 10 tokens in 8-15 s, 13-15 s of CPU time, while other jobs shared the machine);
// with the chunk's forks, state read-backs and IndexedDB writes, ~200 tokens and the model load
// take about 4 minutes. 20,000 tokens there take 5-7 hours.
const SOAK_WEBGPU_TOKENS = 200;
const env = process.env.GANDER_SOAK_TOKENS;
const TOKENS = env ? Number.parseInt(env, 10) : null;
if (env && !(TOKENS > 0)) throw new Error(`GANDER_SOAK_TOKENS must be a positive integer, not "${env}"`);

// Tokens per part of a chunk (soak-scenario.js `chunk`): main continues, the aborted generation
// stops after 1..abort tokens, the fork and the restored session generate fork / restore tokens.
// On the CPU path a chunk is ~45 tokens (~440 chunks in 20,000 tokens); on SwiftShader it is
// ~8 tokens so that ~200 tokens still hold ~24 chunks of forks, saves and aborts.
const RUNS = [
  { name: 'page/cpu', backend: 'cpu', worker: false, tokens: TOKENS ?? 20000, plan: { main: 24, abort: 8, fork: 8, restore: 4 }, msPerToken: 50 },
  { name: 'worker/cpu', backend: 'cpu', worker: true, tokens: TOKENS ?? 20000, plan: { main: 24, abort: 8, fork: 8, restore: 4 }, msPerToken: 50 },
  { name: 'page/webgpu', backend: 'webgpu', worker: false, tokens: TOKENS ?? SOAK_WEBGPU_TOKENS, plan: { main: 3, abort: 2, fork: 2, restore: 2 }, msPerToken: 20000 },
];

// Growth bounds, after the warm-up, to the largest later sample.
//
// What a leak would cost: a state of the fixture is stateBytes = 202,812 bytes (~198 KiB), its
// logits 256 floats = 1 KiB. A 20,000-token CPU run has ~400 chunks after the warm-up, so one
// state leaked per chunk adds ~77 MiB and one logits buffer per chunk ~400 KiB; the default
// WebGPU run has ~20 chunks after its warm-up: ~4 MiB of states, ~20 KiB of logits (too little
// to see there; a logits buffer per token, ~180 KiB, is borderline).
//
// WASM_BOUND: wasm memory only grows, in 64 KiB pages, and stops growing once the allocator has
// seen the run's largest working set (measured: flat to the byte after the first 20 chunks).
// Four pages leave room for fragmentation and are far below a state per chunk (~300x smaller on
// the CPU path, ~16x on WebGPU) and below a logits buffer per chunk on the CPU path (~400 KiB).
const WASM_BOUND = 256 * 1024;
// HEAP_BOUND: the page's JS heap after a forced collection (V8 objects + Blink's objects +
// ArrayBuffer backing stores; wasm memory excluded). Its noise is V8's own bookkeeping (compiled
// code, feedback, IndexedDB request objects not yet collected): tens of KiB. 512 KiB is ~150x
// below the state blobs saveState/getState return if one per chunk were kept (CPU), ~8x on
// WebGPU, and catches ~25 bytes kept per token (an event object per token is ~100 bytes).
const HEAP_BOUND = 512 * 1024;
/** Live sessions at rest: the long-lived session and the one states are restored into. */
const LIVE = 2;

let server;
after(async () => { await server?.close(); });

const KiB = (n) => `${(n / 1024).toFixed(0)} KiB`;
const MiB = (n) => `${(n / 1048576).toFixed(2)} MiB`;

/** Resident memory of the browser's GPU process (Linux /proc; null elsewhere): SwiftShader keeps
 *  GPU buffers there. Reported only: allocator caches make it too noisy for a few MiB. */
function gpuProcessRss(profileDir) {
  try {
    let total = null;
    for (const p of readdirSync('/proc')) {
      if (!/^\d+$/.test(p)) continue;
      let cmd;
      try { cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8'); } catch { continue; }
      if (!cmd.includes('--type=gpu-process') || !cmd.includes(profileDir)) continue;
      const kb = readFileSync(`/proc/${p}/status`, 'utf8').match(/VmRSS:\s+(\d+)/);
      if (kb) total = (total ?? 0) + Number(kb[1]) * 1024;
    }
    return total;
  } catch {
    return null;
  }
}

/** Reject if `p` takes longer than `ms` (a safety net against hangs, not a speed check). */
function within(p, ms, what) {
  let timer;
  const t = new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: no answer after ${ms / 1000} s (hung?)`)), ms); });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

for (const cfg of RUNS) {
  const gpu = cfg.backend === 'webgpu';
  // node:test's own timeout is the last resort behind the per-segment ones.
  test(`${cfg.name}: ${cfg.tokens} tokens with aborts, forks and saved states; no error, memory flat`, { timeout: Math.min(2 ** 31 - 1, 30 * 60000 + cfg.tokens * cfg.msPerToken * 2) }, async () => {
    server ??= await startServer({ root: ROOT, mounts: { '/shared': join(ROOT, '..', 'shared') } });
    const browser = await launch({ gc: true, webgpu: gpu });
    try {
      const { page, errors } = await openPage(browser.ctx, `${server.url}tests/e2e/soak.html`);
      const cdp = await browser.ctx.newCDPSession(page);
      const run = (fn, ...args) => page.evaluate(([f, a]) => window.scenario[f](...a), [fn, args]);

      const sample = async (label, p) => {
        const m = await run('memory'); // collects garbage and lets finalizers run first
        await cdp.send('HeapProfiler.collectGarbage');
        const h = await cdp.send('Runtime.getHeapUsage');
        const heap = h.usedSize + (h.embedderHeapUsedSize ?? 0) + (h.backingStorageSize ?? 0);
        return { label, tokens: p?.tokens ?? 0, chunks: p?.chunks ?? 0, wasm: m.wasm, live: m.live, heap, v8: h.usedSize, gpuRss: gpuProcessRss(browser.dir) };
      };

      const t0 = Date.now();
      const started = await within(run('start', { backend: cfg.backend, worker: cfg.worker, plan: cfg.plan }), 300000, 'load');
      assert.ok(started.hasGc, 'the test browser exposes gc()');
      assert.equal(started.info.backend, cfg.backend, started.info.reason);
      const { stateBytes, vocab } = started.info;
      const samples = [await sample('start')];
      let p;
      for (let k = 1; k <= 10; k++) {
        const until = Math.ceil((cfg.tokens * k) / 10);
        const budget = 120000 + (until - (p?.tokens ?? 0)) * cfg.msPerToken;
        p = await within(run('chunks', { untilTokens: until }), budget, `${cfg.name} up to ${until} tokens`);
        assert.equal(p.failureCount, 0, `failures:\n${p.failures.join('\n')}`);
        samples.push(await sample(k === 1 ? 'warm' : k === 10 ? 'end' : `${k * 10}%`, p));
      }
      const wallS = (Date.now() - t0) / 1000;
      const fin = await run('finish');

      const warm = samples[1];
      const later = samples.slice(2);
      const wasmGrowth = Math.max(...later.map((s) => s.wasm)) - warm.wasm;
      const heapGrowth = Math.max(...later.map((s) => s.heap)) - warm.heap;
      const postChunks = p.chunks - warm.chunks;
      const gpuRss = samples.map((s) => s.gpuRss);

      for (const s of samples) {
        console.log(`  ${cfg.name} ${s.label.padEnd(5)} tokens ${String(s.tokens).padStart(6)} chunks ${String(s.chunks).padStart(4)}  wasm ${s.wasm} B  heap ${s.heap} B (V8 ${s.v8})  live ${s.live}${s.gpuRss != null && gpu ? `  gpu-process rss ${MiB(s.gpuRss)}` : ''}`);
      }
      console.log(`  ${cfg.name}: ${p.tokens} tokens in ${p.chunks} chunks: ${p.aborts} aborts, ${p.forks} forks (${p.forksDropped} dropped for the GC), ${p.saves} states saved to IndexedDB and restored;`
        + ` ${(p.tokens / (p.wallMs / 1000)).toFixed(1)} tok/s over the chunks (${(p.wallMs / 1000).toFixed(1)} s), main-session decode ${((p.decodeMs / 1000)).toFixed(1)} s, test ${wallS.toFixed(1)} s with load and sampling`);
      console.log(`  ${cfg.name}: wasm memory start ${MiB(samples[0].wasm)}, warm ${MiB(warm.wasm)}, end ${MiB(samples[10].wasm)} (growth after warm-up ${KiB(wasmGrowth)}, bound ${KiB(WASM_BOUND)});`
        + ` JS heap start ${MiB(samples[0].heap)}, warm ${MiB(warm.heap)}, end ${MiB(samples[10].heap)} (growth ${KiB(heapGrowth)}, bound ${KiB(HEAP_BOUND)});`
        + ` a state leaked per chunk would add ${MiB(postChunks * stateBytes)}, a logits buffer per chunk ${KiB(postChunks * vocab * 4)}`
        + (gpu && gpuRss[0] != null ? `; gpu-process rss ${MiB(gpuRss[0])} -> ${MiB(gpuRss[1])} -> ${MiB(gpuRss[10])}` : ''));

      assert.ok(p.tokens >= cfg.tokens);
      assert.equal(p.aborts, p.chunks);
      assert.equal(p.forks, p.chunks);
      assert.equal(p.saves, p.chunks);
      assert.equal(p.restores, p.chunks);
      // The run is long enough for the bounds to mean something: a state per chunk after the
      // warm-up would exceed both at least fourfold.
      assert.ok(postChunks * stateBytes >= 4 * Math.max(WASM_BOUND, HEAP_BOUND), `only ${postChunks} chunks after the warm-up: too short a run to judge a leak`);
      for (const s of samples.slice(1)) assert.equal(s.live, LIVE, `${s.label}: ${s.live} live sessions (forks not reclaimed?)`);
      assert.ok(wasmGrowth <= WASM_BOUND, `wasm memory grew by ${wasmGrowth} bytes after the warm-up`);
      assert.ok(heapGrowth <= HEAP_BOUND, `the JS heap grew by ${heapGrowth} bytes after the warm-up`);
      assert.equal(fin.statesLeft, Math.min(3, p.chunks));
      assert.equal(fin.statesAfterDelete, 0);
      assert.deepEqual(errors, []);
    } finally {
      await browser.close();
    }
  });
}
