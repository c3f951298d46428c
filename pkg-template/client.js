// `worker: true`: the same API, with the engine in a dedicated module Worker (worker.js). Calls
// become messages; tokens stream back as events; buffers are transferred, not copied (an
// ArrayBuffer given as a model source is moved into the worker and detached here).

import * as wasm from './gander.js';
import { BadInputError, GanderError, deserializeError, throwIfAborted } from './errors.js';
import { initWasm } from './engine.js';
import { toIds } from './options.js';
import { checkCreate, collect } from './chat.js';

/** Ends the worker of a model the page dropped without dispose(). */
const reclaimWorker = typeof FinalizationRegistry !== 'undefined'
  ? new FinalizationRegistry((client) => client.terminate())
  : null;

/** Tells the worker to free a session the page dropped without dispose(). */
const reclaim = typeof FinalizationRegistry !== 'undefined'
  ? new FinalizationRegistry(({ client, sid }) => {
    sid.then((id) => { if (!client._dead) client.request('disposeSession', { sid: id }).catch(() => {}); }, () => {});
  })
  : null;

export class WorkerClient {
  constructor() {
    this._w = new Worker(new URL('./worker.js', import.meta.url), { type: 'module', name: 'gander' });
    this._next = 1;
    this._pending = new Map();
    this._w.onmessage = (e) => this._on(e.data);
    this._w.onerror = (e) => this._fail(new GanderError('WORKER', `the Gander worker failed to start or crashed: ${e.message || 'unknown error'} (is worker.js served next to index.js?)`));
    this._w.onmessageerror = () => this._fail(new GanderError('WORKER', 'a message from the Gander worker could not be read'));
  }

  _fail(err) {
    for (const p of this._pending.values()) p.reject(err);
    this._pending.clear();
    this._dead = err;
  }

  _on(msg) {
    const p = this._pending.get(msg.id);
    if (!p) return;
    if (msg.event === 'progress') { p.onProgress?.(msg.value); return; }
    if (msg.event === 'stats') { p.onStats?.(msg.value); return; }
    if (msg.event) { p.onEvent?.(msg.value); return; }
    this._pending.delete(msg.id);
    p.cleanup?.();
    if (msg.ok) p.resolve(msg.value);
    else p.reject(deserializeError(msg.error));
  }

  /** Send `op`; resolves with its result. `signal` aborts it inside the worker. */
  request(op, args, transfer = [], { onProgress, onEvent, onStats, signal, onId } = {}) {
    if (this._dead) return Promise.reject(this._dead);
    throwIfAborted(signal);
    const id = this._next++;
    onId?.(id);
    return new Promise((resolve, reject) => {
      const entry = { resolve, reject, onProgress, onEvent, onStats };
      if (signal) {
        const onAbort = () => this.abort(id);
        signal.addEventListener('abort', onAbort, { once: true });
        entry.cleanup = () => signal.removeEventListener('abort', onAbort);
      }
      this._pending.set(id, entry);
      this._w.postMessage({ id, op, args }, transfer);
    });
  }

  /**
   * Stream the events of request `op`, pulling one per `next()` (the worker makes one item per
   * credit). On abort: `drain` keeps reading the items the worker still sends after it saw the
   * abort (chat's final chunk); otherwise the iterator throws an AbortedError.
   */
  async *stream(op, args, { signal, onStats, drain = false } = {}) {
    const queue = [];
    let wake = null;
    let finished = false;
    let error;
    let result;
    let reqId;
    const p = this.request(op, args, [], {
      signal,
      onId: (id) => { reqId = id; },
      onEvent: (ev) => { queue.push(ev); wake?.(); },
      onStats,
    });
    p.then((v) => { finished = true; result = v; wake?.(); }, (e) => { finished = true; error = e; wake?.(); });
    // The request itself carries the first credit.
    let asked = true;
    try {
      for (;;) {
        if (queue.length) { yield queue.shift(); asked = false; continue; }
        if (finished) {
          if (error) throw error;
          return result;
        }
        if (!asked) {
          if (signal && signal.aborted && !drain) {
            this.abort(reqId);
            await p.catch(() => {});
            throwIfAborted(signal);
          }
          this.credit(reqId);
          asked = true;
        }
        await new Promise((r) => { wake = r; });
        wake = null;
      }
    } finally {
      // The consumer stopped early (break, return, throw): stop the worker's loop too, and wait
      // for it so the session is free for the next call.
      if (!finished) {
        if (reqId !== undefined) this.abort(reqId);
        await p.catch(() => {});
      }
    }
  }

  abort(target) {
    if (!this._dead) this._w.postMessage({ id: 0, op: 'abort', args: { target } });
  }

  credit(target) {
    if (!this._dead) this._w.postMessage({ id: 0, op: 'credit', args: { target } });
  }

  /** End the worker; pending and later requests fail with `err`. */
  terminate(err = new GanderError('DISPOSED', 'this model was disposed')) {
    this._w.terminate();
    this._fail(err);
  }
}

function absolute(u) {
  return typeof location !== 'undefined' ? new URL(String(u), location.href).href : String(u);
}

/** A model whose engine runs in a worker. */
export class WorkerModel {
  static async load(source, options) {
    const { onProgress, signal, worker: _w, ...rest } = options;
    if (rest.wasmUrl !== undefined) rest.wasmUrl = absolute(rest.wasmUrl);
    let transfer = [];
    const isUrl = (s) => typeof s === 'string' || (typeof URL !== 'undefined' && s instanceof URL);
    if (isUrl(source)) {
      source = absolute(source);
    } else if (Array.isArray(source)) {
      // Shards: URLs resolved here (the worker's base is its script), the rest copied.
      source = source.map((s) => (isUrl(s) ? absolute(s) : s));
    } else if (source instanceof ArrayBuffer) {
      transfer = [source];
    } else if (ArrayBuffer.isView(source)) {
      const whole = source.byteOffset === 0 && source.byteLength === source.buffer.byteLength;
      source = whole ? new Uint8Array(source.buffer) : new Uint8Array(source.buffer, source.byteOffset, source.byteLength).slice();
      transfer = [source.buffer];
    }
    const client = new WorkerClient();
    try {
      const [{ mid, info }] = await Promise.all([
        client.request('load', { source, options: rest }, transfer, { onProgress, signal }),
        initWasm(rest.wasmUrl),
      ]);
      return new WorkerModel(client, mid, info);
    } catch (e) {
      client.terminate();
      throw e;
    }
  }

  constructor(client, mid, info) {
    this._c = client;
    reclaimWorker?.register(this, client, this);
    this._mid = mid;
    this.info = Object.freeze(info);
    // Tokenizing on this thread keeps encode/decode synchronous, as on the main-thread engine.
    const tok = info.tokenizer ? wasm.WasmTokenizer.forVocab(info.vocab) : null;
    const none = () => { throw new GanderError('UNSUPPORTED', `no tokenizer for a vocabulary of ${info.vocab} rows; pass token ids`); };
    this.tokenizer = Object.freeze({
      encode: (text) => {
        if (typeof text !== 'string') throw new BadInputError('tokenizer.encode: expected a string');
        return tok ? tok.encode(text) : none();
      },
      decode: (ids) => (tok ? tok.decode(toIds('tokenizer.decode', ids)) : none()),
    });
  }

  session() {
    return new WorkerSession(this, this._c.request('session', { mid: this._mid }));
  }

  /** OpenAI-shaped chat (chat.js); the conversation cache lives in the worker with the model. */
  get chat() {
    const create = async (params) => {
      const p = checkCreate(params);
      const { signal, ...rest } = p;
      const chunks = this._c.stream('chat', { mid: this._mid, params: rest }, { signal, drain: true });
      return p.stream ? chunks : collect(chunks);
    };
    return Object.freeze({
      completions: Object.freeze({ create }),
      saveConversation: (messages, opts) => this._c.request('chatSave', { mid: this._mid, messages, opts }),
      restoreConversation: (saved) => this._c.request('chatRestore', { mid: this._mid, saved }),
    });
  }

  /** One question to SQL (sql.js), run in the worker. */
  async sql(table, question, options = {}) {
    const { signal, state, ...rest } = options ?? {};
    const args = { table, question, options: { ...rest, ...(state ? { state: state instanceof ArrayBuffer ? new Uint8Array(state) : state } : {}) } };
    return this._c.request('sql', { mid: this._mid, ...args }, [], { signal });
  }

  async _chatLogits(params) {
    return this._c.request('chatLogits', { mid: this._mid, params });
  }

  async _chatCacheInfo() {
    return this._c.request('chatCacheInfo', { mid: this._mid });
  }

  async _liveSessions() {
    return this._c.request('liveSessions', { mid: this._mid });
  }

  async dispose() {
    reclaimWorker?.unregister(this);
    this._c.terminate();
  }

  async deviceCounters() {
    return this._c.request('deviceCounters', { mid: this._mid });
  }

  async _memoryBytes() {
    return this._c.request('memory', {});
  }

  async _simulateDeviceLoss() {
    await this._c.request('simulateDeviceLoss', { mid: this._mid });
  }
}

/** A session whose state lives in the worker. */
export class WorkerSession {
  constructor(model, sid) {
    this.model = model;
    this._c = model._c;
    this._sid = sid; // a Promise of the worker-side id
    this.lastGeneration = null;
    reclaim?.register(this, { client: this._c, sid }, this);
  }

  async _req(op, args = {}, transfer = [], extra = {}) {
    return this._c.request(op, { sid: await this._sid, ...args }, transfer, extra);
  }

  async forward(ids) {
    const t = toIds('forward', ids);
    if (t.length === 0) throw new BadInputError('forward: give at least one token id');
    return this._req('forward', { ids: t });
  }

  async prefill(textOrIds) {
    const arg = typeof textOrIds === 'string' ? textOrIds : toIds('prefill', textOrIds);
    await this._req('prefill', { input: arg });
  }

  async *generate(prompt = '', options = {}) {
    const { signal, ...rest } = options ?? {};
    if (signal !== undefined && !(signal instanceof AbortSignal)) {
      throw new BadInputError('generate: option `signal` must be an AbortSignal');
    }
    if (prompt !== undefined && prompt !== null && typeof prompt !== 'string') prompt = toIds('generate', prompt);
    const sid = await this._sid;
    const result = yield* this._c.stream('generate', { sid, prompt, options: rest }, {
      signal,
      onStats: (st) => { this.lastGeneration = st; },
    });
    this.lastGeneration = result;
    return result;
  }

  async saveState() { return this._req('saveState'); }

  async loadState(bytes) {
    if (bytes instanceof ArrayBuffer) bytes = new Uint8Array(bytes);
    if (!(bytes instanceof Uint8Array)) throw new BadInputError('loadState: expected bytes (a Uint8Array or ArrayBuffer) from saveState or of a state-tuning file');
    await this._req('loadState', { bytes });
  }

  async fork() {
    return new WorkerSession(this.model, this._req('fork'));
  }

  async reset() { await this._req('reset'); }

  async dispose() {
    reclaim?.unregister(this);
    await this._req('disposeSession');
  }
}
