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

const BY_CODE = {
  ABORTED: AbortedError,
  QUOTA: QuotaError,
  BAD_MODEL: BadModelError,
  BAD_INPUT: BadInputError,
  STATE_MISMATCH: StateMismatchError,
  NO_WEBGPU: NoWebGPUError,
  DEVICE_LOST: DeviceLostError,
};

/** An error of the given code, as the right subclass. */
export function makeError(code, message, extra) {
  const C = BY_CODE[code];
  return C ? new C(message, extra) : new GanderError(code, message, extra);
}

/**
 * Any thrown value as a GanderError: errors from the wasm engine carry a `code`; a wasm trap
 * (which should not happen) becomes INTERNAL; DOMExceptions keep their meaning.
 */
export function toGanderError(e) {
  if (e instanceof GanderError) return e;
  if (e && typeof e === 'object' && typeof e.code === 'string' && typeof e.message === 'string') {
    return makeError(e.code, e.message);
  }
  if (e && e.name === 'AbortError') return new AbortedError(e.message || undefined);
  if (e && e.name === 'QuotaExceededError') return new QuotaError(`storage quota exceeded: ${e.message}`);
  if (e instanceof WebAssembly.RuntimeError) {
    return new GanderError('INTERNAL', `the wasm engine failed (${e.message}); reload the page and report this as a bug`);
  }
  return new GanderError('INTERNAL', String(e && e.message ? e.message : e));
}

/** Plain data for postMessage (workers). */
export function serializeError(e) {
  const g = toGanderError(e);
  const extra = {};
  for (const k of Object.keys(g)) if (k !== 'code' && k !== 'name') extra[k] = g[k];
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
