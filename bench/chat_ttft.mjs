// Time to first token of each turn of a three-turn chat, with the conversation cache and without
// it (`cache: false` re-reads the whole conversation), in headless Chromium on the wasm CPU path,
// page and worker: `make bench-chat` (the native figures come from `gander chat --stats`).
//
//   node bench/chat_ttft.mjs MODEL_PATH_UNDER_REPO [TURNS_FILE]

import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer } from '../tools/serve.mjs';
import { launch, openPage } from '../tests/e2e/browser.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const [model = 'target/bench/rwkv7-0.1b-random-int8.safetensors', turnsFile = 'bench/chat-turns.txt'] = process.argv.slice(2);
const turns = readFileSync(join(ROOT, turnsFile), 'utf8').split('\n').filter((l) => l.trim());

const server = await startServer({ root: ROOT, mounts: { '/shared': join(ROOT, '..', 'shared') } });
const browser = await launch({ webgpu: false });
try {
  const { page } = await openPage(browser.ctx, `${server.url}tests/e2e/chat.html`);
  for (const worker of [false, true]) {
    const r = await page.evaluate(async ({ url, turns, worker }) => {
      const { Gander } = await import('/pkg/index.js');
      const m = await Gander.load(url, { backend: 'cpu', worker });
      const out = {};
      for (const cache of [true, false]) {
        const messages = [{ role: 'system', content: 'You are a helpful travel assistant.' }];
        out[cache ? 'reuse' : 'no reuse'] = [];
        for (const t of turns) {
          messages.push({ role: 'user', content: t });
          const res = await m.chat.completions.create({ messages, max_tokens: 32, seed: 7, cache });
          messages.push(res.choices[0].message);
          const u = res.usage;
          out[cache ? 'reuse' : 'no reuse'].push({ prompt: u.prompt_tokens, cached: u.cached_tokens, ttft_ms: Math.round(u.extra.time_to_first_token_s * 1000) });
        }
      }
      await m.dispose();
      return out;
    }, { url: `/${model}`, turns, worker });
    for (const [k, v] of Object.entries(r)) {
      console.log(`${worker ? 'worker' : 'page  '} ${k.padEnd(8)} ${v.map((t, i) => `turn ${i + 1}: prompt ${t.prompt}, cached ${t.cached}, ttft ${t.ttft_ms} ms`).join(' | ')}`);
    }
  }
} finally {
  await browser.close();
  await server.close();
}
