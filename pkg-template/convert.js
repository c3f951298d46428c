// Conversion for ModelStore.put: a checkpoint (`.pth`, safetensors or a Gander file) from any
// source becomes the bytes the store keeps, with what they are (kind, quant, shapes). Converting
// runs on this thread, or with `worker: true` in a worker of its own: started for a conversion,
// ended when none is left (a worker's wasm memory only grows, so ending it returns the memory),
// and started again after it was ended or crashed.

import { BadModelError, GanderError, callWasm as call, throwIfAborted } from './errors.js';
import { initWasm } from './wasm.js';
import { memorySource, openSource, readAll } from './sources.js';
import { readSummary } from './inspect.js';

/**
 * Open `source` and, with `quant`, convert it. Resolves to `{src, kind, info}`: a byte-range
 * source over the bytes to store, their format ('safetensors' or 'pth') and their description.
 */
export async function prepare(name, source, { quant, onProgress, signal, worker } = {}) {
  const wasm = await initWasm();
  let src = await openSource(source, { signal, onProgress });
  throwIfAborted(signal);
  if (src.size < 16) throw new BadModelError(`the file is ${src.size} bytes long: not a model`);
  const head = await src.read(0, 16);
  let probe = call(() => wasm.probe(head, src.size), { what: 'reading the header' });
  if (quant) {
    const bytes = await readAll(src);
    throwIfAborted(signal);
    const progress = (d, t) => onProgress?.({ phase: 'convert', loaded: d, total: t, fraction: d / t });
    const hint = { what: `converting ${src.name || name} to ${quant}`, requested: bytes.byteLength };
    const out = worker
      ? await convertInWorker(bytes, quant, progress, signal)
      : call(() => wasm.convert(bytes, quant, progress), hint);
    src = memorySource(out, name);
    probe = call(() => wasm.probe(out.subarray(0, 16), out.byteLength), { what: 'reading the header' });
  }
  return { src, ...(await describe(wasm, src, probe)) };
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
  const { summary: s } = await readSummary(src);
  const c = s.config;
  const info = { layers: c.layers, embd: c.embd, heads: c.heads, headSize: c.head_size, vocab: c.vocab, quant: s.stored,
    gander: s.gander, params: s.params, stateBytes: s.stateBytes };
  return { kind: probe.kind, info };
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
