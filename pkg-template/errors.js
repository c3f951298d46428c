// Error classes of gander-rwkv. Every error the package throws is a GanderError with a stable
// `code` (design.md "JavaScript API"); the subclasses let `instanceof` pick out the common cases.

export class GanderError extends Error {
  constructor(code, message, extra = {}) {
    super(message);
    this.name = 'GanderError';
    this.code = code;
    Object.assign(this, extra);
  }
}

/** The request was aborted through its AbortSignal. `name` is 'AbortError', as for fetch. */
export class AbortedError extends GanderError {
  constructor(message = 'the operation was aborted', extra) {
    super('ABORTED', message, extra);
    this.name = 'AbortError';
  }
}

/** Storage quota exceeded: `needed` and `available` are byte counts. */
export class QuotaError extends GanderError {
  constructor(message, extra) { super('QUOTA', message, extra); this.name = 'QuotaError'; }
}

export class BadModelError extends GanderError {
  constructor(message, extra) { super('BAD_MODEL', message, extra); this.name = 'BadModelError'; }
}

export class BadInputError extends GanderError {
  constructor(message, extra) { super('BAD_INPUT', message, extra); this.name = 'BadInputError'; }
}

export class StateMismatchError extends GanderError {
  constructor(message, extra) { super('STATE_MISMATCH', message, extra); this.name = 'StateMismatchError'; }
}

export class NoWebGPUError extends GanderError {
  constructor(message, extra) { super('NO_WEBGPU', message, extra); this.name = 'NoWebGPUError'; }
}

export class DeviceLostError extends GanderError {
  constructor(message, extra) { super('DEVICE_LOST', message, extra); this.name = 'DeviceLostError'; }
}

/** The wasm engine (or the browser) could not allocate memory: `wasmBytes` is the wasm memory in
 *  use, `requested` the bytes asked for when known. */
export class OutOfMemoryError extends GanderError {
  constructor(message, extra) { super('OUT_OF_MEMORY', message, extra); this.name = 'OutOfMemoryError'; }
}

const BY_CODE = {
  ABORTED: AbortedError,
  QUOTA: QuotaError,
  BAD_MODEL: BadModelError,
  BAD_INPUT: BadInputError,
  STATE_MISMATCH: StateMismatchError,
  NO_WEBGPU: NoWebGPUError,
  DEVICE_LOST: DeviceLostError,
  OUT_OF_MEMORY: OutOfMemoryError,
};

/** An error of the given code, as the right subclass. */
export function makeError(code, message, extra) {
  const C = BY_CODE[code];
  return C ? new C(message, extra) : new GanderError(code, message, extra);
}

const MiB = 1048576;
/** Bytes as MiB for messages. */
export function mib(n) {
  return n == null ? 'unknown' : `${(n / MiB).toFixed(n < 10 * MiB ? 1 : 0)} MiB`;
}

/** What wasm.js knows about the engine's memory (set when it loads: errors.js stays a leaf). */
let engineMemory = { bytes: () => null, trap: null };
export function setEngineMemory(m) { engineMemory = m; }

/** What to do when memory runs out (the OUT_OF_MEMORY messages end with it). */
export const OOM_ADVICE = 'use a smaller quantisation (ModelStore.put(name, file, { quant: \'int8\' }) or \'q4\'), '
  + 'run the model on WebGPU (backend: \'webgpu\' keeps the weights in GPU memory), or dispose other models and sessions '
  + '(with worker: true, the default, every model has its own wasm memory)';

/** An OUT_OF_MEMORY error: memory ran out in `what` ('loading the model', 'forward', ...);
 *  `requested`: the bytes asked for, when known; `detail`: the browser's own words. */
export function outOfMemory(what = 'a call of the wasm engine', { requested, cause, detail } = {}) {
  const wasmBytes = engineMemory.bytes();
  const facts = [
    wasmBytes ? `${mib(wasmBytes)} of wasm memory in use, at most 4096 MiB per page or worker` : null,
    requested ? `${mib(requested)} more asked for` : null,
    detail || null,
  ].filter(Boolean).join('; ');
  return new OutOfMemoryError(`out of memory in ${what}${facts ? ` (${facts})` : ''}: ${OOM_ADVICE}`,
    { wasmBytes: wasmBytes ?? null, requested: requested ?? null, ...(cause ? { cause } : {}) });
}

/** A JavaScript allocation failure (a huge ArrayBuffer, or the engine's memory.grow from JS). */
function isJsAllocationFailure(e) {
  return e instanceof RangeError && /allocation failed|out of memory|could not allocate|maximum memory size|Memory\.grow|invalid array buffer length/i.test(e.message);
}

/** Traps already classified (one trap may end several calls). */
const trapKinds = new WeakMap();

/**
 * Any thrown value as a GanderError: errors from the wasm engine carry a `code`; a wasm trap is
 * OUT_OF_MEMORY when the engine's allocator had run out (wasm.js tells), INTERNAL (a bug) when
 * not; DOMExceptions keep their meaning. `hint.requested`: bytes the failed call asked for.
 */
export function toGanderError(e, hint = {}) {
  if (e instanceof GanderError) return e;
  if (e && typeof e === 'object' && typeof e.code === 'string' && typeof e.message === 'string') {
    return makeError(e.code, e.message);
  }
  if (e && e.name === 'AbortError') return new AbortedError(e.message || undefined);
  if (e && e.name === 'QuotaExceededError') return new QuotaError(`storage quota exceeded: ${e.message}; delete a model or state, or free disk space`);
  if (isJsAllocationFailure(e)) return outOfMemory(hint.what, { requested: hint.requested, detail: `the browser could not allocate it: ${e.message}` });
  if (typeof WebAssembly !== 'undefined' && e instanceof WebAssembly.RuntimeError) {
    let kind = trapKinds.get(e);
    if (!kind) {
      kind = engineMemory.trap ? engineMemory.trap(e, hint) : 'internal';
      trapKinds.set(e, kind);
    }
    if (kind === 'oom') return outOfMemory(hint.what, { requested: hint.requested, cause: e });
    const used = engineMemory.bytes();
    return new GanderError('INTERNAL', `the wasm engine failed (${e.message}${used ? `; ${mib(used)} of wasm memory in use` : ''}); reload the page and report this as a bug`, { cause: e });
  }
  return new GanderError('INTERNAL', String(e && e.message ? e.message : e));
}

/** True for a wasm trap (the engine stopped in the middle of a call). */
export function isTrap(e) {
  return typeof WebAssembly !== 'undefined' && e instanceof WebAssembly.RuntimeError;
}

/** Plain data for postMessage (workers). */
export function serializeError(e) {
  const g = toGanderError(e);
  const extra = {};
  for (const k of Object.keys(g)) if (k !== 'code' && k !== 'name' && k !== 'cause') extra[k] = g[k];
  return { code: g.code, message: g.message, extra };
}

export function deserializeError(d) {
  return makeError(d.code, d.message, d.extra);
}

/** Throw AbortedError if `signal` is aborted. */
export function throwIfAborted(signal) {
  if (signal && signal.aborted) {
    const r = signal.reason;
    throw new AbortedError(r && r.message ? `aborted: ${r.message}` : 'the operation was aborted');
  }
}

/** Run the synchronous wasm call `f`, turning what it throws into a GanderError (`hint`: what
 *  was being done, and the bytes it asked for; see toGanderError). engine.js's `call` adds the
 *  session or model whose call trapped. */
export function callWasm(f, hint = {}) {
  try { return f(); } catch (e) { throw toGanderError(e, hint); }
}
