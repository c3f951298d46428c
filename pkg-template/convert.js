// Conversion for ModelStore.put: a checkpoint (`.pth`, safetensors, GGUF or a Gander file) from
// any source becomes the bytes the store keeps, with what they are (kind, quant, shapes).
// Converting streams on this thread, tensor by tensor, or with `worker: true` runs whole in a
// worker of its own: started for a conversion,
// ended when none is left (a worker's wasm memory only grows, so ending it returns the memory),
// and started again after it was ended or crashed.

import { BadModelError, GanderError, callWasm as call, throwIfAborted } from './errors.js';
import { initWasm } from './wasm.js';
import { handOver, memorySource, openSource, rangeSource, readAll } from './sources.js';
import { readSummary } from './inspect.js';

/**
 * Open `source` and, with `quant`, convert it. Resolves to `{src, kind, info}`: a byte-range
 * source over the bytes to store (read in order, once), their format ('safetensors', 'pth' or
 * 'gguf') and their description. A URL is read by range requests where the server allows them.
 * The conversion streams: the Gander file is written tensor by tensor from the source's byte
 * ranges (the wasm `PullConverter`), one tensor in memory at a time; with `worker: true` the
 * file is converted whole in memory in a worker instead (keeps the page responsive; files that
 * fit in wasm memory).
 */
export async function prepare(name, source, { quant, onProgress, signal, worker } = {}) {
  const wasm = await initWasm();
  const opened = await openPutSource(source, { signal, onProgress });
  let src = opened;
  try {
    throwIfAborted(signal);
    if (src.size < 16) throw new BadModelError(`the file is ${src.size} bytes long: not a model`);
    if (quant && !worker) return await convertStreaming(wasm, name, src, quant, { onProgress, signal });
    const head = await src.read(0, 16);
    let probe = call(() => wasm.probe(head, src.size), { what: 'reading the header' });
    if (quant) {
      const bytes = await readAll(src);
      opened.close?.();
      throwIfAborted(signal);
      const progress = (d, t) => onProgress?.({ phase: 'convert', loaded: d, total: t, fraction: d / t });
      const out = await convertInWorker(bytes, quant, progress, signal);
      src = memorySource(out, name);
      probe = call(() => wasm.probe(out.subarray(0, 16), out.byteLength), { what: 'reading the header' });
    }
    return { src, ...(await describe(wasm, src, probe)) };
  } catch (e) {
    opened.close?.();
    throw e;
  }
}

/** A source for ModelStore.put: a URL by range requests (nothing held whole), or as
 *  `openSource` gives it when the server ignores ranges. */
async function openPutSource(source, { signal, onProgress }) {
  if (typeof source === 'string' || (typeof URL !== 'undefined' && source instanceof URL)) {
    try {
      return await rangeSource(String(source), { signal });
    } catch (e) {
      throwIfAborted(signal);
      if (!e || e.code !== 'UNSUPPORTED') throw e;
    }
  }
  return openSource(source, { signal, onProgress });
}

/** `src` converted to a Gander file of `quant` as a source read in order (ModelStore's writer
 *  reads it chunk by chunk): the converter runs as far as each read needs. */
async function convertStreaming(wasm, name, src, quant, { onProgress, signal }) {
  const what = `converting ${src.name || name} to ${quant}`;
  const conv = call(() => new wasm.PullConverter([''], new Float64Array([src.size]), null, quant), { what });
  let size = 0;
  let made = 0;
  const next = async () => {
    for (;;) {
      throwIfAborted(signal);
      const s = call(() => conv.step(), { what });
      if (s.need) {
        await handOver([src], s.need, (f, at, bytes) => call(() => conv.add(f, at, bytes), { what, requested: bytes.byteLength }), { signal });
        continue;
      }
      if (s.header) { size = s.total; made = s.header.byteLength; return s.header; }
      if (s.bytes) {
        // In bytes of the Gander file, as the store's 'store' events that follow each chunk.
        made += s.bytes.byteLength;
        onProgress?.({ phase: 'convert', loaded: made, total: size, fraction: made / size, tensor: s.done, tensors: s.total });
        // Let the page breathe between tensors (progress bars, abort clicks).
        await new Promise((r) => setTimeout(r, 0));
        return s.bytes;
      }
      return null;
    }
  };
  let queue;
  let info;
  try {
    queue = [await next()];
    info = { ...infoOf(call(() => conv.summary(), { what })), quant, gander: true };
  } catch (e) {
    conv.free();
    throw e;
  }
  let at = 0;
  let queued = queue[0].byteLength;
  const read = async (a, b) => {
    if (a !== at) throw new GanderError('INTERNAL', `the converted file is read in order (asked for ${a}, at ${at})`);
    while (queued < b - a) {
      const p = await next();
      if (!p) throw new BadModelError(`${what}: the file ended ${b - a - queued} bytes early`);
      queue.push(p);
      queued += p.byteLength;
    }
    const out = new Uint8Array(b - a);
    for (let o = 0; o < out.length;) {
      const p = queue[0];
      const n = Math.min(p.byteLength, out.length - o);
      out.set(p.subarray(0, n), o);
      o += n;
      if (n === p.byteLength) queue.shift(); else queue[0] = p.subarray(n);
    }
    at = b;
    queued -= b - a;
    return out;
  };
  let open = true;
  const close = () => {
    if (!open) return;
    open = false;
    try { conv.free(); } finally { src.close?.(); }
  };
  return { src: { size, name, read, close }, kind: 'safetensors', info };
}

/** What a byte-range source holds, for a store manifest: `{kind, info}`, from its headers
 *  alone (a few range reads; a `.pth`'s zip directory and pickle, a GGUF header). With
 *  `shard`, a safetensors file that is not a whole model is `{shard: true}`. */
export async function describeSource(src, { shard = false } = {}) {
  const wasm = await initWasm();
  if (src.size < 16) throw new BadModelError(`the file is ${src.size} bytes long: not a model`);
  const head = await src.read(0, 16);
  const probe = call(() => wasm.probe(head, src.size), { what: 'reading the header' });
  try {
    return await describe(wasm, src, probe);
  } catch (e) {
    // A shard of a model is a valid safetensors file that is not a whole model.
    if (!shard || probe.kind !== 'safetensors' || e.code !== 'BAD_MODEL') throw e;
    const header = await src.read(0, probe.headerLen);
    call(() => wasm.headerLayout(header, src.size), { what: 'reading the header' });
    return { kind: 'safetensors', info: { shard: true, quant: null } };
  }
}

async function describe(wasm, src, probe) {
  const { summary } = await readSummary(src);
  return { kind: probe.kind, info: infoOf(summary) };
}

/** A store manifest's `info` from a checkpoint's summary (model::inspect). */
function infoOf(s) {
  const c = s.config;
  return { layers: c.layers, embd: c.embd, heads: c.heads, headSize: c.head_size, vocab: c.vocab, quant: s.stored,
    gander: s.gander, params: s.params, stateBytes: s.stateBytes };
}

let convertWorker = null;
let converting = 0;

/** The conversion worker now running, or null (tests end it to check that it comes back). */
export function currentConvertWorker() {
  return convertWorker;
}

/** Convert in the package's worker (keeps a page responsive during a long conversion). */
async function convertInWorker(bytes, quant, progress, signal) {
  const { WorkerClient } = await import('./client.js');
  if (!convertWorker || convertWorker._dead) convertWorker = new WorkerClient();
  const w = convertWorker;
  converting++;
  try {
    const own = bytes.slice(); // transferred: never detach the caller's buffer
    return await w.request('convert', { bytes: own, quant }, [own.buffer], { onProgress: (p) => progress(p.loaded, p.total), signal });
  } catch (e) {
    if (w._dead && e.code !== 'ABORTED') {
      throw new GanderError('WORKER', `the conversion worker stopped before the conversion ended (${e.message}); try again: a new worker starts`);
    }
    throw e;
  } finally {
    converting--;
    if (converting === 0 && convertWorker === w) {
      convertWorker = null;
      w.terminate(new GanderError('WORKER', 'the conversion worker was ended (no conversion left)'));
    }
  }
}
