// Where model bytes come from. Every source is read by byte range, so a model streams part by
// part into the engine (and on WebGPU straight into GPU buffers) without one big copy in wasm.
// A failure to read (a network drop, a file changed on disk, a storage error) is an IO error
// naming what failed; running out of memory is OUT_OF_MEMORY.

import { BadInputError, GanderError, mib, toGanderError, throwIfAborted } from './errors.js';

/** `{ size, name, read(start, end) -> Promise<Uint8Array> }` over bytes in memory. */
export function memorySource(bytes, name = 'bytes') {
  return { size: bytes.byteLength, name, read: async (a, b) => bytes.subarray(a, b), bytes };
}

/** A read failure as IO (or OUT_OF_MEMORY when it was memory that ran out). */
function readError(e, what, todo) {
  const g = toGanderError(e, { what });
  if (g.code !== 'INTERNAL') return g;
  return new GanderError('IO', `${what} failed (${e && e.name ? `${e.name}: ` : ''}${e && e.message ? e.message : e}); ${todo}`, { cause: e });
}

/** Over a Blob or File: each range is read on demand. */
export function blobSource(blob) {
  const name = blob.name || 'blob';
  return {
    size: blob.size,
    name,
    read: async (a, b) => {
      try {
        return new Uint8Array(await blob.slice(a, b).arrayBuffer());
      } catch (e) {
        throw readError(e, `reading bytes ${a}..${b} of ${JSON.stringify(name)} (${blob.size} bytes)`,
          'if the file was changed, moved or deleted since it was chosen, choose it again; then retry');
      }
    },
  };
}

/** Fetch a URL whole, reporting download progress. */
export async function fetchBytes(url, { signal, onProgress } = {}) {
  let res;
  try {
    res = await fetch(url, { signal });
  } catch (e) {
    throwIfAborted(signal);
    throw new GanderError('IO', `could not fetch ${url}: ${e.message} (is the URL right, is the network up, and does the server allow CORS?); retry`, { url });
  }
  if (!res.ok) {
    throw new GanderError('IO', `could not fetch ${url}: HTTP ${res.status} ${res.statusText}${res.status >= 500 ? '; retry later' : ''}`, { url, status: res.status });
  }
  const total = Number(res.headers.get('content-length')) || 0;
  // Content-Length counts compressed bytes when the body is compressed: no exact size then.
  const exact = total && !res.headers.get('content-encoding') ? total : 0;
  let whole = null; // the body when its size is known: written in place, no second copy
  const parts = [];
  let loaded = 0;
  const broke = (why) => new GanderError('IO',
    `the download of ${url} broke off after ${mib(loaded)}${total ? ` of ${mib(total)}` : ''} (${why}); check the connection and retry`,
    { url, loaded, total: total || null });
  try {
    if (exact) whole = new Uint8Array(exact);
    if (!res.body) {
      const all = new Uint8Array(await res.arrayBuffer());
      whole = null;
      parts.push(all);
      loaded = all.byteLength;
    } else {
      const reader = res.body.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        if (whole && loaded + value.byteLength <= exact) {
          whole.set(value, loaded);
        } else {
          if (whole) { parts.push(whole.subarray(0, loaded)); whole = null; }
          parts.push(value);
        }
        loaded += value.byteLength;
        onProgress?.({ phase: 'download', loaded, total: total || loaded, fraction: total ? Math.min(1, loaded / total) : 0 });
      }
    }
  } catch (e) {
    throwIfAborted(signal);
    const g = toGanderError(e, { what: `downloading ${url}`, requested: total || undefined });
    if (g.code === 'OUT_OF_MEMORY' || g.code === 'ABORTED') throw g;
    throw broke(`${e && e.name ? `${e.name}: ` : ''}${e && e.message ? e.message : e}`);
  }
  // A body shorter than its Content-Length was cut short without the browser noticing.
  if (exact && loaded < exact) throw broke('the connection closed early');
  if (whole) return whole;
  if (parts.length === 1) return parts[0];
  let out;
  try {
    out = new Uint8Array(loaded);
  } catch (e) {
    throw toGanderError(e, { what: `downloading ${url}`, requested: loaded });
  }
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
      // The source holds the model's reader lock (another tab's put or delete of this name waits
      // for the load); the load closes it when done (engine.js), which also closes the
      // connection, so a later upgrade of the database by another tab is not blocked by this one.
      const src = await store.source(source.store);
      const release = src.close;
      src.close = () => {
        try { release?.(); } finally { store.close(); }
      };
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
    throw toGanderError(e, { what: `reading ${src.name || 'the model'}`, requested: src.size });
  }
}

/** A URL read by HTTP range requests (`{ size, name, read(start, end), fetched }`): nothing is
 *  downloaded but the ranges asked for. A server that ignores ranges is an UNSUPPORTED error
 *  (the caller decides whether a whole download is acceptable). */
export async function rangeSource(url, { signal } = {}) {
  const name = url.split('/').pop() || url;
  const get = async (a, b) => {
    let res;
    try {
      res = await fetch(url, { signal, headers: { range: `bytes=${a}-${b - 1}` } });
    } catch (e) {
      throwIfAborted(signal);
      throw new GanderError('IO', `could not fetch ${url}: ${e.message} (is the URL right, is the network up, and does the server allow CORS?); retry`, { url });
    }
    if (res.status === 200) {
      res.body?.cancel().catch(() => {});
      throw new GanderError('UNSUPPORTED', `${url} was served whole: the server ignores range requests, so its headers cannot be read alone`,
        { url, validator: validatorOf(res, Number(res.headers.get('content-encoding') ? NaN : res.headers.get('content-length'))) });
    }
    if (res.status !== 206) throw new GanderError('IO', `could not fetch bytes ${a}..${b} of ${url}: HTTP ${res.status} ${res.statusText}`, { url, status: res.status });
    // Every range must come from the version the first one came from: a file replaced on the
    // server midway would otherwise be stored or loaded as a mix of two versions.
    if (src.validator) {
      const size = Number(/\/(\d+)$/.exec(res.headers.get('content-range') || '')?.[1]);
      const now = validatorOf(res, size);
      if (now !== src.validator) {
        res.body?.cancel().catch(() => {});
        throw new GanderError('IO', `${url} changed on the server while it was being read (ETag, Last-Modified or size differ); retry to read the new version`, { url });
      }
    }
    const bytes = new Uint8Array(await res.arrayBuffer());
    src.fetched += bytes.byteLength;
    return { res, bytes };
  };
  const src = { size: 0, name, fetched: 0, read: async (a, b) => {
    const { bytes } = await get(a, b);
    if (bytes.byteLength !== b - a) throw new GanderError('IO', `the server sent ${bytes.byteLength} bytes for range ${a}..${b} of ${url}; retry`, { url });
    return bytes;
  } };
  // The first byte tells the size (Content-Range: bytes 0-0/TOTAL).
  const { res } = await get(0, 1);
  const total = Number(/\/(\d+)$/.exec(res.headers.get('content-range') || '')?.[1]);
  if (!Number.isSafeInteger(total)) throw new GanderError('UNSUPPORTED', `${url}: the server did not say the file's size (Content-Range)`, { url });
  src.size = total;
  src.validator = validatorOf(res, total);
  return src;
}

/** What identifies one version of a served file: its ETag, Last-Modified and size (a server
 *  that hides the first two from CORS leaves the size alone; null when nothing is known). */
function validatorOf(res, size) {
  const etag = res.headers.get('etag');
  const modified = res.headers.get('last-modified');
  if (!etag && !modified && !Number.isSafeInteger(size)) return null;
  return JSON.stringify([etag, modified, Number.isSafeInteger(size) ? size : null]);
}

/** Bytes handed to a wasm pull loader or converter at a time: a big tensor's range arrives in
 *  pieces, so JS holds one piece of it, never the whole tensor or file. */
const PIECE = 16 << 20;

/**
 * Hand the range a pull loader asked for (`need`: [file, start, end]) over from `srcs[file]`,
 * piece by piece, with `add(file, at, bytes)`. Resolves to the bytes handed over.
 */
export async function handOver(srcs, [f, a, b], add, { signal } = {}) {
  for (let at = a; at < b; at += PIECE) {
    const end = Math.min(b, at + PIECE);
    const bytes = await srcs[f].read(at, end).catch((e) => { throw toGanderError(e, { what: `reading ${srcs[f].name || 'the model'}`, requested: end - at }); });
    throwIfAborted(signal);
    add(f, at, bytes);
  }
  return b - a;
}
