// The Web Worker behind `worker: true` (client.js talks to it): runs engine.js here and answers
// messages `{id, op, args}` with `{id, ok, value}` or `{id, ok: false, error}`; progress and
// tokens stream as `{id, event, value}`. `{op: 'abort', args: {target}}` aborts request `target`.

import { initWasm, loadModel } from './engine.js';
import { ModelStore } from './store.js';
import { GanderError, serializeError } from './errors.js';

const models = new Map();
const sessions = new Map();
const aborts = new Map();
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
    const m = await loadModel(source, { ...options, signal: ctx.signal, onProgress: ctx.progress }, (s) => ModelStore.open(s.database ? { database: s.database } : {}));
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
  async generate({ sid, prompt, options }, ctx) {
    const s = session(sid);
    const it = s.generate(prompt, { ...options, signal: ctx.signal });
    for await (const ev of it) ctx.event(ev);
    return [s.lastGeneration];
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
      throw e;
    }
    return [out, [out.buffer]];
  },
};

self.onmessage = async (e) => {
  const { id, op, args } = e.data;
  if (op === 'abort') {
    aborts.get(args.target)?.abort();
    return;
  }
  const ac = new AbortController();
  aborts.set(id, ac);
  const ctx = {
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
  }
};
