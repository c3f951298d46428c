// Gander.inspect: what a checkpoint is and what it would cost, before anything big is
// downloaded. A URL is read with range requests (a safetensors header, or a .pth's zip directory
// and its pickle), a Blob or File by slices; the wasm `Inspector` says which bytes it needs next.
// The browser's side is added: storage quota, the WebGPU adapter's limits, wasm memory.

import * as wasm from './gander.js';
import { initWasm, WASM32_MAX } from './wasm.js';
import { callWasm, GanderError, throwIfAborted, toGanderError } from './errors.js';
import { openSource, rangeSource } from './sources.js';

/** Round trips allowed; a .pth needs 2 to 4, a safetensors file 1 or 2. */
const MAX_STEPS = 32;
/** Room kept in wasm memory beyond the weights (activations, the tokenizer, the engine). */
const WASM_HEADROOM = 256 * 1024 * 1024;

async function adapterFacts() {
  if (typeof navigator === 'undefined' || !navigator.gpu) return null;
  try {
    const a = await navigator.gpu.requestAdapter({ powerPreference: 'high-performance' });
    if (!a) return null;
    const i = a.info;
    return {
      name: (i && [i.vendor, i.architecture, i.device, i.description].filter(Boolean).join(' ')) || 'WebGPU adapter',
      isFallbackAdapter: Boolean(i?.isFallbackAdapter ?? a.isFallbackAdapter),
      maxBufferSize: a.limits.maxBufferSize,
      maxStorageBufferBindingSize: a.limits.maxStorageBufferBindingSize,
    };
  } catch {
    return null;
  }
}

/**
 * `{ config, params, layout, stored, stateBytes, fileBytes, fetchedBytes, quants: [{ quant,
 * fileBytes, memoryBytes, fits: { store, cpu, webgpu } }], browser: { storageQuota,
 * storageUsage, adapter } }`. `fits.store`: the Gander file fits the storage quota left (null
 * when the browser does not say); `fits.cpu`: the weights fit wasm memory (4 GiB) with room to
 * run; `fits.webgpu`: an adapter exists and one weight row fits its storage-binding limit
 * (matrices are split by rows), null without WebGPU; WebGPU does not tell a device's memory size.
 */
export async function inspect(source, { signal, wasmUrl } = {}) {
  await initWasm(wasmUrl);
  throwIfAborted(signal);
  const isUrl = typeof source === 'string' || (typeof URL !== 'undefined' && source instanceof URL);
  const src = isUrl ? await rangeSource(String(source), { signal }) : await openSource(source, { signal });
  try {
    const { summary, fetchedBytes } = await readSummary(src, signal);
    const est = typeof navigator !== 'undefined' && navigator.storage?.estimate ? await navigator.storage.estimate().catch(() => null) : null;
    const adapter = await adapterFacts();
    const free = est && Number.isFinite(est.quota) ? est.quota - (est.usage || 0) : null;
    const row = summary.config.embd * 4;
    const quants = summary.quants.map((q) => ({
      ...q,
      fits: {
        store: free === null ? null : q.fileBytes <= free,
        cpu: q.memoryBytes + WASM_HEADROOM <= WASM32_MAX,
        webgpu: adapter ? row <= adapter.maxStorageBufferBindingSize : null,
      },
    }));
    return {
      ...summary,
      quants,
      fileBytes: src.size,
      fetchedBytes,
      browser: { storageQuota: est?.quota ?? null, storageUsage: est?.usage ?? null, adapter },
    };
  } finally {
    src.close?.();
  }
}

/** A checkpoint's summary from its headers, read from `src` ({size, name, read(a, b)}) range
 *  by range as the wasm `Inspector` asks: `{summary, fetchedBytes}`. */
export async function readSummary(src, signal) {
  const ins = callWasm(() => new wasm.Inspector(src.size), { what: 'inspecting the model' });
  try {
    for (let step = 0; step < MAX_STEPS; step++) {
      throwIfAborted(signal);
      const r = callWasm(() => ins.step(), { what: `inspecting ${src.name || 'the model'}` });
      if (r.summary) return { summary: r.summary, fetchedBytes: ins.fetched };
      const [a, b] = r.need;
      const bytes = await src.read(a, b).catch((e) => { throw toGanderError(e, { what: `reading bytes ${a}..${b} of ${src.name || 'the model'}` }); });
      ins.add(a, bytes);
    }
    throw new GanderError('BAD_MODEL', `${src.name || 'the model'}: its headers did not resolve in ${MAX_STEPS} reads; not a checkpoint Gander knows`);
  } finally {
    ins.free();
  }
}
