// The browser's CPU fallback against native, in one run (issue 18, `make bench-web`): prefill and
// decode tok/s of one model in headless Chromium on the wasm CPU path (page thread and worker),
// next to `gander bench` on the same file with all cores and with one, run one after another on
// the same machine. Best of REPEAT runs each (shared machines are noisy); greedy decoding.
//
// The npm package ships one wasm build today, single-threaded with simd128, so the browser rows
// run on one thread; the ratio to native one-thread decode is the like-for-like one.
//
//   node bench/web_cpu.mjs [MODEL_UNDER_REPO] [PROMPT_TOKENS] [GEN_TOKENS] [REPEAT]

import { execFileSync } from 'node:child_process';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer } from '../tools/serve.mjs';
import { launch, openPage } from '../tests/e2e/browser.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const [model = 'target/bench/rwkv7-0.1b-random-int8.safetensors', prompt = '512', gen = '128', repeat = '3'] = process.argv.slice(2);
const GANDER = join(ROOT, 'target/release/gander');

/** `gander bench` on the model, optionally pinned to one core (its pool sizes itself to the
 *  cores it may use). */
function native(oneCore) {
  const args = ['bench', '--model', join(ROOT, model), '--prompt-tokens', prompt, '--gen-tokens', gen, '--repeat', repeat];
  const out = oneCore ? execFileSync('taskset', ['-c', '0', GANDER, ...args]) : execFileSync(GANDER, args);
  const r = JSON.parse(out.toString());
  return { prefill: r.prefill_tok_s, decode: r.decode_tok_s, threads: r.threads, isa: r.isa, quant: r.quant };
}

async function browserRuns() {
  const server = await startServer({ root: ROOT });
  const browser = await launch({ webgpu: false });
  const out = [];
  try {
    const { page } = await openPage(browser.ctx, `${server.url}tests/e2e/pkg.html`);
    for (const worker of [false, true]) {
      const r = await page.evaluate(async ({ url, worker, prompt, gen, repeat }) => {
        const { Gander } = await import('/pkg/index.js');
        const m = await Gander.load(url, { backend: 'cpu', worker });
        const s = m.session();
        const ids = Array.from({ length: prompt }, (_, i) => (i * 7919 + 13) % m.info.vocab);
        // Warm up (the kernels' first calls, the pools' steady state).
        await s.prefill(ids.slice(0, 16));
        for await (const _ of s.generate('', { temperature: 0, maxTokens: 4 }));
        let best = { prefill: 0, decode: 0 };
        for (let k = 0; k < repeat; k++) {
          await s.reset();
          let t0 = performance.now();
          await s.prefill(ids);
          const prefill = prompt / ((performance.now() - t0) / 1000);
          t0 = performance.now();
          let n = 0;
          for await (const _ of s.generate('', { temperature: 0, maxTokens: gen })) n++;
          const decode = n / ((performance.now() - t0) / 1000);
          best = { prefill: Math.max(best.prefill, prefill), decode: Math.max(best.decode, decode), tokens: n };
        }
        const info = { backend: m.info.backend, quant: m.info.quant };
        await m.dispose();
        return { ...best, ...info, browser: /(Headless)?Chrome\/[\d.]+/.exec(navigator.userAgent)?.[0] ?? navigator.userAgent };
      }, { url: `/${model}`, worker, prompt: Number(prompt), gen: Number(gen), repeat: Number(repeat) });
      out.push({ where: worker ? 'worker' : 'page thread', ...r });
    }
  } finally {
    await browser.close();
    await server.close();
  }
  return out;
}

const cpu = cpus()[0]?.model ?? 'unknown CPU';
console.log(`model ${model}; prompt ${prompt} tokens, ${gen} generated greedily; best of ${repeat}; ${cpu}, ${cpus().length} cores`);
const all = native(false);
const one = native(true);
const web = await browserRuns();
const rows = [
  [`native, ${all.threads} threads (${all.isa})`, all],
  [`native, ${one.threads} thread (${one.isa})`, one],
  ...web.map((w) => [`${w.browser}, wasm CPU path, ${w.where}, 1 thread`, w]),
];
console.log('| engine | format | prefill tok/s | decode tok/s | prefill / native 1 thread | decode / native 1 thread | decode / native all threads |');
console.log('|---|---|---|---|---|---|---|');
for (const [name, r] of rows) {
  const q = r.quant ?? all.quant;
  console.log(`| ${name} | ${q} | ${r.prefill.toFixed(1)} | ${r.decode.toFixed(1)} | ${(r.prefill / one.prefill).toFixed(2)} | ${(r.decode / one.decode).toFixed(2)} | ${(r.decode / all.decode).toFixed(2)} |`);
}
