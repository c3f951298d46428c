// Gander.load(url) with a cache (issue 16): the file is downloaded by range requests in chunks
// straight into the IndexedDB store (store.js `putRanges`), one chunk in memory at a time, under
// the name `url:` + the absolute URL and a validator (ETag, Last-Modified, size). The next load
// of the same URL checks the validator with a one-byte request and reads only the store; an
// interrupted download resumes at its first missing chunk; offline, a complete copy is used as
// it is. A server that ignores ranges is downloaded whole once (plain GET), then stored. Without
// room in the storage quota the URL loads as with `cache: false`.

import { throwIfAborted } from './errors.js';
import { fetchBytes, rangeSource } from './sources.js';
import { describeSource } from './convert.js';

/** The store name of a URL's cached copy (list() shows it; delete() removes it). */
export function cacheName(url) {
  const base = typeof location !== 'undefined' ? location.href : undefined;
  return `url:${new URL(url, base).href}`;
}

/**
 * A byte-range source over the cached copy of `url`, downloading (or resuming) it first when the
 * store has no current copy. `cache`: true or `{database?, chunkSize?}`; `shard`: the file may be
 * one shard of a model (kept although it is not a whole model). Resolves to null where
 * there is no IndexedDB (the caller loads without a cache). The source's `close()` closes the
 * store; `fromCache` says whether no weight byte came from the network.
 */
export async function cachedUrlSource(url, { cache, signal, onProgress, openStore, shard = false }) {
  const opts = cache && typeof cache === 'object' ? cache : {};
  let store;
  try {
    store = await openStore({ database: opts.database, chunkSize: opts.chunkSize });
  } catch (e) {
    if (e && e.code === 'NO_STORAGE') return null;
    throw e;
  }
  try {
    const name = cacheName(url);
    const have = await store.manifest(name);
    let remote;
    let validator;
    try {
      remote = await rangeSource(url, { signal });
      validator = remote.validator;
    } catch (e) {
      throwIfAborted(signal);
      if (e && e.code === 'UNSUPPORTED' && 'validator' in e) {
        validator = e.validator;
      } else if (have && e && e.code === 'IO') {
        // Offline, or the server is down: the complete copy is the best there is.
        return await opened(store, name, onProgress, true, `${e.message}; loaded the cached copy`);
      } else {
        throw e;
      }
    }
    if (have && validator && have.validator === validator) return await opened(store, name, onProgress, true);
    const describe = (src) => describeSource(src, { shard });
    if (remote) {
      await store.putRanges(name, { size: remote.size, validator, read: remote.read, describe }, { onProgress, signal });
    } else {
      // The server ignores ranges: one plain download, then into the store chunk by chunk.
      const bytes = await fetchBytes(url, { signal, onProgress });
      await store.putRanges(name, { size: bytes.byteLength, validator, read: async (a, b) => bytes.subarray(a, b), describe },
        { onProgress, signal });
    }
    return await opened(store, name, onProgress, false);
  } catch (e) {
    store.close();
    // No room to keep it: load it as without a cache (into memory), which still works.
    if (e && e.code === 'QUOTA') {
      onProgress?.({ phase: 'download', loaded: 0, total: 0, fraction: 0, note: `not cached: ${e.message}` });
      return null;
    }
    throw e;
  }
}

async function opened(store, name, onProgress, fromCache, note) {
  const src = await store.source(name);
  const release = src.close;
  src.close = () => {
    try { release?.(); } finally { store.close(); }
  };
  src.fromCache = fromCache;
  try {
    if (fromCache) onProgress?.({ phase: 'cache', loaded: src.size, total: src.size, fraction: 1, name, ...(note ? { note } : {}) });
  } catch (e) {
    src.close(); // a throwing callback must not leave the model's reader lock held
    throw e;
  }
  return src;
}

