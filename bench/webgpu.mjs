// The npm package on WebGPU in headless Chromium: prefill and decode tok/s and what the device
// does per decoded token (bind groups and buffers created, submits, bytes read back), page and
// worker, with the wasm CPU path on the same model in the same run: `make bench-webgpu`.
// On the development VM the adapter is SwiftShader (software), so the speeds are a sanity
// figure; the counters are the point. On a machine whose Chromium exposes a real GPU (try
// `GANDER_CHROMIUM_ARGS="--enable-features=Vulkan --use-angle=vulkan"`), the same command gives
// real browser figures.
//
//   node bench/webgpu.mjs [MODEL_PATH_UNDER_REPO_OR_/shared/...] [PROMPT_TOKENS] [GEN_TOKENS]

import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer } from '../tools/serve.mjs';
import { launch, openPage } from '../tests/e2e/browser.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const [model = '/shared/fixtures/tiny-rwkv7-834k/model.safetensors', prompt = '64', gen = '32'] = process.argv.slice(2);
const url = model.startsWith('/') ? model : `/${model}`;

const server = await startServer({ root: ROOT, mounts: { '/shared': join(ROOT, '..', 'shared') } });
const browser = await launch({ webgpu: true });
try {
  const { page } = await openPage(browser.ctx, `${server.url}tests/e2e/pkg.html`);
  for (const backend of ['webgpu', 'cpu']) {
    for (const worker of [false, true]) {
      const r = await page.evaluate(async ({ url, backend, worker, prompt, gen }) => {
        const { Gander } = await import('/pkg/index.js');
        const m = await Gander.load(url, { backend, worker });
        const s = m.session();
        const ids = Array.from({ length: prompt }, (_, i) => (i * 7919 + 13) % Math.min(256, m.info.vocab));
        // Warm up: pipelines, bind groups for this session's state, the pool's steady state.
        await s.prefill(ids.slice(0, 8));
        for (let w = 0; w < 2; w++) for await (const _ of s.generate('', { temperature: 0, maxTokens: 4 }));
        await s.reset();
        let t0 = performance.now();
        await s.prefill(ids);
        const prefill = prompt / ((performance.now() - t0) / 1000);
        for await (const _ of s.generate('', { temperature: 0, maxTokens: 3 }));
        await m.deviceCounters();
        t0 = performance.now();
        let n = 0;
        for await (const _ of s.generate('', { temperature: 0, maxTokens: gen })) n++;
        const decode = n / ((performance.now() - t0) / 1000);
        const c = await m.deviceCounters();
        const perToken = c && Object.fromEntries(Object.entries(c).map(([k, v]) => [k, v / n]));
        const info = m.info;
        await m.dispose();
        return { prefill, decode, perToken, backend: info.backend, adapter: info.adapter, reason: info.reason };
      }, { url, backend, worker, prompt: Number(prompt), gen: Number(gen) });
      const where = `${r.backend}${r.adapter ? ` (${r.adapter})` : ''}, ${worker ? 'worker' : 'page'}`;
      console.log(`${where}: prefill ${r.prefill.toFixed(1)} tok/s (${prompt} tokens), decode ${r.decode.toFixed(1)} tok/s (${gen} tokens)`);
      if (r.perToken) console.log(`  per decoded token: ${JSON.stringify(r.perToken)}`);
    }
  }
} finally {
  await browser.close();
  await server.close();
}
