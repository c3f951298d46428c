// What the page shows about the engine: the stats line under the conversation (backend, prefill
// and decode speed, tokens reused, state size) after each turn, and the "About this engine"
// panel after a model loads. Read-only over the page state.

import { useWorker } from './settings.js';
import { $, mib } from './ui.js';

export function showStats(page) {
  const g = page.session?.lastGeneration;
  const i = page.model?.info;
  if (!i) return;
  $('st-backend').textContent = i.backend === 'webgpu' ? 'WebGPU' : 'CPU';
  $('st-backend').title = i.reason;
  const rate = (n, ms) => (n && ms > 0 ? `${(n / (ms / 1000)).toFixed(n / (ms / 1000) >= 100 ? 0 : 1)} tok/s` : '–');
  const perS = (r) => (r > 0 ? `${r.toFixed(r >= 100 ? 0 : 1)} tok/s` : '–');
  const u = page.lastChat;
  if (u) {
    $('st-prefill').textContent = u.extra.prefill_tokens ? perS(u.extra.prefill_tokens_per_s) : '–';
    $('st-decode').textContent = perS(u.extra.decode_tokens_per_s);
    $('st-cached').textContent = `${u.cached_tokens} of ${u.prompt_tokens} tokens`;
    $('st-cached').title = 'prompt tokens the model did not read again: the conversation state was kept';
  } else {
    $('st-prefill').textContent = g ? rate(g.prefillTokens, g.prefillMs) : '–';
    $('st-decode').textContent = g ? rate(g.tokens, g.decodeMs) : '–';
    $('st-cached').textContent = '–';
  }
  $('st-state').textContent = mib(i.stateBytes);
}

export function showInfo(page) {
  const i = page.model.info;
  const rows = [
    ['backend', i.backend === 'webgpu' ? 'WebGPU' : 'CPU (wasm SIMD)'], ['why', i.reason], ['adapter', i.adapter || '–'],
    ['engine', useWorker ? 'in a Web Worker' : 'on the page thread'], ['layers', i.layers], ['width', i.embd],
    ['heads', `${i.heads} × ${i.headSize}`], ['vocabulary', `${i.vocab}${i.tokenizer ? ` (${i.tokenizer})` : ''}`],
    ['weights', `${i.quant} · ${mib(i.weightBytes)}`], ['parameters', i.params.toLocaleString()], ['state', mib(i.stateBytes)],
    ['fingerprint', i.fingerprint.slice(0, 16)],
  ];
  const dl = $('about');
  dl.replaceChildren();
  for (const [k, v] of rows) {
    const dt = document.createElement('dt');
    dt.textContent = k;
    const dd = document.createElement('dd');
    dd.textContent = String(v);
    dl.append(dt, dd);
  }
  showStats(page);
}
