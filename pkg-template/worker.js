// The Web Worker behind `worker: true` (client.js talks to it): runs engine.js here and answers
// messages `{id, op, args}` with `{id, ok, value}` or `{id, ok: false, error}`; progress and
// tokens stream as `{id, event, value}`. `{op: 'abort', args: {target}}` aborts request `target`.

import { initWasm, loadModel, wasmMemoryBytes } from './engine.js';
import { openStoreFor } from './store.js';
import { GanderError, serializeError, toGanderError } from './errors.js';
import { chatChunks, checkCreate } from './chat.js';

const models = new Map();
const sessions = new Map();
const aborts = new Map();
const credits = new Map();
let nextId = 1;

function session(sid) {
  const s = sessions.get(sid);
  if (!s) throw new GanderError('DISPOSED', 'this session was disposed');
  return s;
}

function model(mid) {
  const m = models.get(mid);
  if (!m) throw new GanderError('DISPOSED', 'this model was disposed');
  return m;
}

const handlers = {
  async load({ source, options }, ctx) {
    const m = await loadModel(source, { ...options, signal: ctx.signal, onProgress: ctx.progress }, openStoreFor);
    const mid = nextId++;
    models.set(mid, m);
    return [{ mid, info: { ...m.info } }];
  },
  session({ mid }) {
    const sid = nextId++;
    sessions.set(sid, model(mid).session());
    return [sid];
  },
  async forward({ sid, ids }) {
    const l = await session(sid).forward(ids);
    return [l, [l.buffer]];
  },
  async prefill({ sid, input }) {
    await session(sid).prefill(input);
    return [undefined];
  },
  // Pull-driven: one token per credit from the client (one per `next()` of its iterator), so
  // the state never runs ahead of what the page has seen, and an abort lands between tokens
  // exactly as on the page's own thread.
  async generate({ sid, prompt, options }, ctx) {
    const s = session(sid);
    const it = s.generate(prompt, { ...options, signal: ctx.signal });
    try {
      for (;;) {
        await ctx.credit();
        const { value, done } = await it.next();
        if (done) break;
        ctx.event(value);
      }
    } finally {
      // Stats also when the generation ends in an error or an abort.
      self.postMessage({ id: ctx.id, event: 'stats', value: s.lastGeneration });
    }
    return [s.lastGeneration];
  },
  // Pull-driven like generate: one chunk per credit.
  async chat({ mid, params }, ctx) {
    const m = model(mid);
    const it = chatChunks(m, checkCreate({ ...params, stream: true, signal: ctx.signal }));
    for (;;) {
      await ctx.credit();
      const { value, done } = await it.next();
      if (done) break;
      ctx.event(value);
    }
    return [undefined];
  },
  async chatLogits({ mid, params }) {
    const r = await model(mid)._chatLogits(params);
    return [r, [r.logits.buffer]];
  },
  async sql({ mid, table, question, options }, ctx) {
    return [await model(mid).sql(table, question, { ...options, signal: ctx.signal })];
  },
  async chatSave({ mid, messages, opts }) {
    const r = await model(mid).chat.saveConversation(messages, opts);
    return r ? [r, [r.state.buffer]] : [null];
  },
  async chatRestore({ mid, saved }) {
    await model(mid).chat.restoreConversation(saved);
    return [undefined];
  },
  chatCacheInfo({ mid }) {
    return [model(mid)._chatCacheInfo()];
  },
  liveSessions({ mid }) {
    return [model(mid)._liveSessions()];
  },
  async saveState({ sid }) {
    const b = await session(sid).saveState();
    return [b, [b.buffer]];
  },
  async loadState({ sid, bytes }) {
    await session(sid).loadState(bytes);
    return [undefined];
  },
  async fork({ sid }) {
    const f = await session(sid).fork();
    const id = nextId++;
    sessions.set(id, f);
    return [id];
  },
  async reset({ sid }) {
    await session(sid).reset();
    return [undefined];
  },
  async disposeSession({ sid }) {
    await session(sid).dispose();
    sessions.delete(sid);
    return [undefined];
  },
  memory() {
    return [wasmMemoryBytes()];
  },
  async deviceCounters({ mid }) {
    return [await model(mid).deviceCounters()];
  },
  simulateDeviceLoss({ mid }) {
    model(mid)._simulateDeviceLoss();
    return [undefined];
  },
  async convert({ bytes, quant }, ctx) {
    const wasm = await initWasm();
    let out;
    try {
      out = wasm.convert(bytes, quant, (d, t) => ctx.progress({ loaded: d, total: t }));
    } catch (e) {
      throw toGanderError(e, { what: `converting the model to ${quant}`, requested: bytes.byteLength });
    }
    return [out, [out.buffer]];
  },
};

self.onmessage = async (e) => {
  const { id, op, args } = e.data;
  if (op === 'abort') {
    aborts.get(args.target)?.abort();
    credits.get(args.target)?.grant();
    return;
  }
  if (op === 'credit') {
    credits.get(args.target)?.grant();
    return;
  }
  const ac = new AbortController();
  aborts.set(id, ac);
  let n = 1;
  let wake = null;
  credits.set(id, { grant: () => { n++; wake?.(); } });
  const ctx = {
    id,
    credit: async () => {
      while (n === 0 && !ac.signal.aborted) await new Promise((r) => { wake = r; });
      wake = null;
      if (n > 0) n--;
    },
    signal: ac.signal,
    progress: (value) => self.postMessage({ id, event: 'progress', value }),
    event: (value) => self.postMessage({ id, event: 'token', value }),
  };
  try {
    const h = handlers[op];
    if (!h) throw new GanderError('BAD_INPUT', `unknown worker call ${op}`);
    const [value, transfer = []] = await h(args, ctx);
    self.postMessage({ id, ok: true, value }, transfer);
  } catch (err) {
    self.postMessage({ id, ok: false, error: serializeError(err) });
  } finally {
    aborts.delete(id);
    credits.delete(id);
  }
};
