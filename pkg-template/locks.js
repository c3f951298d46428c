// Locks between tabs and workers of one origin: the Web Locks API (navigator.locks), or where a
// browser lacks it, the same semantics within this page or worker only (no cross-tab protection
// there). Used by store.js: loads hold a model's lock shared, put and delete take it exclusive.

import { throwIfAborted } from './errors.js';

/** Run `f(lock)` holding lock `name`; `opts`: {mode: 'exclusive' | 'shared', ifAvailable,
 *  signal}. With `ifAvailable` and the lock taken, `f(null)` runs at once. An abort of `signal`
 *  while the lock is still waited for (another tab holds it) gives up the wait with ABORTED.
 *  Resolves to what `f` resolves to. */
export function withLock(name, opts, f) {
  const { signal, ...rest } = opts;
  try { throwIfAborted(signal); } catch (e) { return Promise.reject(e); }
  if (typeof navigator === 'undefined' || !navigator.locks) return local.request(name, opts, f);
  let called = false;
  // Web Locks refuses a signal together with ifAvailable (which never waits anyway).
  const o = signal && !rest.ifAvailable ? { ...rest, signal } : rest;
  return navigator.locks.request(name, o, (lock) => { called = true; return f(lock); }).catch((e) => {
    // Web Locks refused outright (an opaque origin, a sandboxed frame): this page's own locks.
    if (!called && e && e.name === 'SecurityError') {
      throwIfAborted(signal);
      return local.request(name, opts, f);
    }
    // the wait was given up: the same error as every other abort
    if (!called && signal && signal.aborted) throwIfAborted(signal);
    throw e;
  });
}

/** Take lock `name` and keep it until the returned `release()` is called (null with
 *  `ifAvailable` when it is taken). */
export function acquire(name, opts = {}) {
  return new Promise((resolve, reject) => {
    let release;
    const held = new Promise((r) => { release = r; });
    withLock(name, opts, (lock) => {
      if (!lock) { resolve(null); return undefined; }
      resolve(release);
      return held;
    }).catch(reject);
  });
}

/** Names of the locks held or waited for (null when unknown). */
export async function heldLocks() {
  const q = typeof navigator !== 'undefined' && navigator.locks ? await navigator.locks.query() : local.query();
  return new Set([...(q.held || []), ...(q.pending || [])].map((l) => l.name));
}

/** The fallback: reader-writer locks granted in request order, as Web Locks grants them. */
class LocalLocks {
  constructor() { this.locks = new Map(); }

  request(name, opts = {}, f) {
    const mode = opts.mode === 'shared' ? 'shared' : 'exclusive';
    const st = this.locks.get(name) ?? { held: [], queue: [] };
    this.locks.set(name, st);
    return new Promise((resolve, reject) => {
      const signal = opts.signal;
      let onAbort;
      const run = () => {
        signal?.removeEventListener('abort', onAbort);
        st.held.push(mode);
        Promise.resolve().then(() => f({ name, mode })).then(resolve, reject).finally(() => {
          st.held.splice(st.held.indexOf(mode), 1);
          this.pump(name);
        });
      };
      if (st.queue.length === 0 && this.grantable(st, mode)) run();
      else if (opts.ifAvailable) {
        if (!st.held.length && !st.queue.length) this.locks.delete(name);
        Promise.resolve().then(() => f(null)).then(resolve, reject);
      } else {
        const entry = { mode, run };
        st.queue.push(entry);
        if (signal) {
          // still waiting when aborted: leave the queue, as Web Locks does
          onAbort = () => {
            const i = st.queue.indexOf(entry);
            if (i < 0) return;
            st.queue.splice(i, 1);
            this.pump(name);
            try { throwIfAborted(signal); } catch (e) { reject(e); }
          };
          signal.addEventListener('abort', onAbort, { once: true });
        }
      }
    });
  }

  grantable(st, mode) {
    return st.held.length === 0 || (mode === 'shared' && st.held.every((m) => m === 'shared'));
  }

  pump(name) {
    const st = this.locks.get(name);
    if (!st) return;
    while (st.queue.length && this.grantable(st, st.queue[0].mode)) st.queue.shift().run();
    if (!st.held.length && !st.queue.length) this.locks.delete(name);
  }

  query() {
    const held = [];
    const pending = [];
    for (const [name, st] of this.locks) {
      for (const mode of st.held) held.push({ name, mode });
      for (const q of st.queue) pending.push({ name, mode: q.mode });
    }
    return { held, pending };
  }
}

const local = new LocalLocks();
