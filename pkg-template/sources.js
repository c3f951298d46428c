// Where model bytes come from. Every source is read by byte range, so a model streams part by
// part into the engine (and on WebGPU straight into GPU buffers) without one big copy in wasm.

import { BadInputError, GanderError, toGanderError, throwIfAborted } from './errors.js';

/** `{ size, name, read(start, end) -> Promise<Uint8Array> }` over bytes in memory. */
export function memorySource(bytes, name = 'bytes') {
  return { size: bytes.byteLength, name, read: async (a, b) => bytes.subarray(a, b), bytes };
}

/** Over a Blob or File: each range is read on demand. */
export function blobSource(blob) {
  return {
    size: blob.size,
    name: blob.name || 'blob',
    read: async (a, b) => new Uint8Array(await blob.slice(a, b).arrayBuffer()),
  };
}

/** Fetch a URL whole, reporting download progress. */
export async function fetchBytes(url, { signal, onProgress } = {}) {
  let res;
  try {
    res = await fetch(url, { signal });
  } catch (e) {
    throwIfAborted(signal);
    throw new GanderError('IO', `could not fetch ${url}: ${e.message} (is the URL right, and does the server allow CORS?)`);
  }
  if (!res.ok) throw new GanderError('IO', `could not fetch ${url}: HTTP ${res.status} ${res.statusText}`);
  const total = Number(res.headers.get('content-length')) || 0;
  if (!res.body || !onProgress) return new Uint8Array(await res.arrayBuffer());
  const reader = res.body.getReader();
  const parts = [];
  let loaded = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    parts.push(value);
    loaded += value.byteLength;
    onProgress({ phase: 'download', loaded, total: total || loaded, fraction: total ? loaded / total : 0 });
  }
  const out = new Uint8Array(loaded);
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.byteLength; }
  return out;
}

/** A source as the API accepts it: ArrayBuffer, typed array, Blob/File, URL, or {store}. */
export async function openSource(source, { signal, onProgress, openStore } = {}) {
  if (source instanceof ArrayBuffer) return memorySource(new Uint8Array(source), 'ArrayBuffer');
  if (ArrayBuffer.isView(source)) {
    return memorySource(new Uint8Array(source.buffer, source.byteOffset, source.byteLength), 'bytes');
  }
  if (typeof Blob !== 'undefined' && source instanceof Blob) return blobSource(source);
  if (typeof source === 'string' || (typeof URL !== 'undefined' && source instanceof URL)) {
    const url = String(source);
    return memorySource(await fetchBytes(url, { signal, onProgress }), url.split('/').pop() || url);
  }
  if (source && typeof source === 'object' && typeof source.store === 'string') {
    if (!openStore) throw new BadInputError('a {store} source needs IndexedDB');
    const store = await openStore(source);
    try {
      const src = await store.source(source.store);
      // The load closes the connection when done (engine.js), so a later upgrade of the
      // database by another tab is not blocked by this one.
      src.close = () => store.close();
      return src;
    } catch (e) {
      store.close();
      throw e;
    }
  }
  throw new BadInputError('source must be an ArrayBuffer, a Uint8Array, a Blob or File, a URL, or {store: name}');
}

/** Read a whole source into one Uint8Array. */
export async function readAll(src) {
  try {
    return await src.read(0, src.size);
  } catch (e) {
    throw toGanderError(e);
  }
}
