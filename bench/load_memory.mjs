// Peak memory of `Gander.load(url, { quant })` in headless Chromium for a big checkpoint served
// from localhost (issue 16; `make bench-load` runs it on a 1.5B-shaped random `.pth`):
//
//   1. a fresh profile, CPU backend: the download into the IndexedDB cache is aborted after a
//      few chunks, the next load resumes it, then converts the `.pth` to `quant` range by range;
//   2. the browser relaunched on the same profile, WebGPU (SwiftShader here): the cached copy is
//      checked with a one-byte request and read from the store only.
//
// Reported per run: the wasm heap after the load (it only grows, so it is the peak), the peak
// resident memory (VmHWM) of the renderer, GPU and browser processes (sampled from /proc: the
// honest total of JS, wasm and everything else), the page's peak JS memory (DevTools
// `Runtime.getHeapUsage`: V8's heap plus ArrayBuffer backing stores) and with the wasm heap
// the JS + wasm bound the issue asks about, the bytes the server sent, and the times.
//
//   3. with --put: ModelStore.put(name, url, { quant }) converts while it stores (range
//      requests, tensor by tensor), then the Gander file loads from the store on the CPU.
//
//   node bench/load_memory.mjs FILE [--quant int8] [--backends cpu,webgpu] [--put]

import { startServer } from '../tools/serve.mjs';
import { launch } from '../tests/e2e/browser.mjs';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const opt = (name, dflt) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : dflt; };
const file = resolve(args[0] || 'target/bench/rwkv7-1.5b-random-bf16.pth');
const quant = opt('--quant', 'int8');
const backends = opt('--backends', 'cpu,webgpu').split(',');
const size = statSync(file).size;
const path = `/${relative(ROOT, file)}`;
const mib = (n) => `${(n / 1048576).toFixed(0)} MiB`;

/** Peak VmHWM per Chromium process type of the browser using `profile`, sampled until stopped. */
function sampler(profile) {
  const peak = {};
  const tick = () => {
    for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
      try {
        const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
        if (!cmd.includes(profile) && !cmd.includes('--type=')) continue;
        if (!cmd.includes(profile) && !isChildOf(pid, profile)) continue;
        const type = /--type=([a-z-]+)/.exec(cmd)?.[1] || 'browser';
        const hwm = Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] || 0) * 1024;
        const key = type === 'utility' ? 'utility' : type;
        peak[key] = Math.max(peak[key] || 0, hwm);
      } catch { /* the process ended */ }
    }
  };
  const timer = setInterval(tick, 250);
  return { stop: () => { clearInterval(timer); tick(); return peak; } };
}

/** Whether a process descends from a Chromium started with `profile` (zygote children do not
 *  carry the profile on their command line). */
function isChildOf(pid, profile) {
  for (let p = pid, i = 0; p && p !== '1' && i < 8; i++) {
    try {
      p = /PPid:\s+(\d+)/.exec(readFileSync(`/proc/${p}/status`, 'utf8'))?.[1];
      if (p && readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(profile)) return true;
    } catch { return false; }
  }
  return false;
}

async function run(server, profile, backend, { abortAfter, put = false }) {
  const browser = await launch({ profile });
  const s = sampler(profile);
  const at = server.log.length;
  try {
    const page = await browser.ctx.newPage();
    page.on('console', (m) => { if (m.type() === 'error') console.error(`  page: ${m.text()}`); });
    heap = await jsHeapSampler(browser.ctx, page);
    await page.goto(`${server.url}tests/e2e/pkg.html`);
    await page.waitForFunction(() => document.title === 'ready', null, { timeout: 120000 });
    const r = await page.evaluate(async ({ path, backend, quant, abortAfter, put }) => {
      const { Gander, ModelStore } = window.gander;
      const t0 = performance.now();
      const phases = {};
      let resumedFrom = 0;
      const onProgress = (p) => {
        phases[p.phase] = (performance.now() - t0) / 1000;
        if (p.resumedFrom) resumedFrom = p.resumedFrom;
      };
      let aborted = null;
      if (abortAfter) {
        const ac = new AbortController();
        try {
          await Gander.load(path, { backend, quant, worker: false, signal: ac.signal,
            onProgress: (p) => { if (p.phase === 'download' && p.chunk >= abortAfter) ac.abort(); } });
        } catch (e) { aborted = e.code; }
      }
      const t1 = performance.now();
      let source = path;
      if (put) {
        // ModelStore.put converts while it stores (range requests, tensor by tensor).
        const st = await ModelStore.open();
        await st.put('big', path, { quant, onProgress });
        st.close();
        phases.put = (performance.now() - t1) / 1000;
        source = { store: 'big' };
      }
      const m = await Gander.load(source, { backend, ...(put ? {} : { quant }), worker: false, onProgress });
      const loadS = (performance.now() - t1) / 1000;
      const s = m.session();
      const t2 = performance.now();
      const logits = await s.forward([1, 2, 3]);
      const tokenS = (performance.now() - t2) / 1000;
      const finite = logits.every(Number.isFinite);
      const info = { backend: m.info.backend, quant: m.info.quant, params: m.info.params, adapter: m.info.adapter };
      const wasm = Gander.wasmMemoryBytes();
      await m.dispose();
      return { aborted, resumedFrom, loadS, tokenS, finite, info, wasm, phases };
    }, { path, backend, quant, abortAfter, put });
    const mine = server.log.slice(at).filter((e) => e.path === path);
    r.served = mine.reduce((n, e) => n + e.bytes, 0);
    // The weights the CPU path keeps in wasm (on WebGPU they are in GPU buffers), from the
    // file's headers; asked after the count above, so its few range requests are not in it.
    r.weights = backend === 'cpu'
      ? await page.evaluate(async ({ path, quant }) => (await window.gander.Gander.inspect(path)).quants.find((q) => q.quant === quant).memoryBytes, { path, quant })
      : 0;
    await page.close();
    return r;
  } finally {
    Object.assign(globalThis, { lastHeap: await heap?.stop() });
    heap = null;
    await browser.close();
    Object.assign(globalThis, { lastPeak: s.stop() });
  }
}

let heap = null;

/** Peak JS memory of the page's main thread, sampled through the DevTools protocol: V8's heap
 *  in use plus the backing stores of ArrayBuffers (fetched chunks; the wasm memory is not among
 *  them and is reported on its own), so the issue's "JS + wasm" is measured, not inferred from
 *  the renderer's RSS. */
async function jsHeapSampler(ctx, page) {
  const cdp = await ctx.newCDPSession(page);
  const peak = { used: 0, backing: 0, total: 0 };
  let busy = false;
  const tick = async () => {
    if (busy) return;
    busy = true;
    try {
      const u = await cdp.send('Runtime.getHeapUsage');
      const backing = u.backingStorageSize ?? 0;
      peak.used = Math.max(peak.used, u.usedSize);
      peak.backing = Math.max(peak.backing, backing);
      peak.total = Math.max(peak.total, u.usedSize + backing);
    } catch { /* the page is closing */ }
    busy = false;
  };
  const timer = setInterval(tick, 250);
  return { stop: async () => { clearInterval(timer); await tick(); return peak; } };
}

const server = await startServer({ root: ROOT });
const profile = mkdtempSync(join(tmpdir(), 'gander-load-'));
try {
  console.log(`file ${path}: ${mib(size)}; quant ${quant}; Chromium (headless), page thread`);
  const runs = backends.map((b, i) => [b, { abortAfter: i === 0 ? 8 : 0 }]);
  if (args.includes('--put')) runs.push(['cpu', { put: true }]);
  for (const [i, [backend, how]] of runs.entries()) {
    const r = await run(server, profile, backend, how);
    if (how.put) console.log(`ModelStore.put(name, url, { quant: '${quant}' }), then load { store } (${r.phases.put.toFixed(1)} s to convert and store):`);
    const peak = globalThis.lastPeak;
    console.log(`${backend}: ${r.info.backend}${r.info.adapter ? ` (${r.info.adapter})` : ''}, ${r.info.quant}, ${(r.info.params / 1e9).toFixed(2)}B params; `
      + `${i === 0 ? `download aborted (${r.aborted}), resumed from ${mib(r.resumedFrom)}; ` : ''}server sent ${r.served} bytes; `
      + `load ${r.loadS.toFixed(1)} s, first token ${r.tokenS.toFixed(1)} s, logits finite: ${r.finite}`);
    console.log(`  wasm heap ${mib(r.wasm)}; peak RSS: renderer ${mib(peak.renderer || 0)}, GPU process ${mib(peak['gpu-process'] || 0)}, browser ${mib(peak.browser || 0)}`);
    const h = globalThis.lastHeap;
    if (h) console.log(`  page JS (DevTools, peak of samples every 250 ms): ${mib(h.total)} (V8 heap ${mib(h.used)}, ArrayBuffers ${mib(h.backing)}); `
      + `JS + wasm at most ${mib(h.total + r.wasm)}${r.weights ? `, ${mib(h.total + r.wasm - r.weights)} beyond the ${mib(r.weights)} of weights kept in wasm` : ''}`);
    console.log(`  phases (s from start): ${JSON.stringify(Object.fromEntries(Object.entries(r.phases).map(([k, v]) => [k, +v.toFixed(1)])))}`);
  }
} finally {
  await server.close();
  rmSync(profile, { recursive: true, force: true });
}
