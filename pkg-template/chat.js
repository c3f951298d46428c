// `model.chat.completions.create`: OpenAI-shaped chat over the G1 template (chat-format.js), with
// conversations that never re-read their past.
//
// The model keeps the states of recent conversations in a ChatCache, each keyed by the exact text
// its state has read (and the token ids of that text). A request's prompt, formatChat over the
// whole history, normally begins with the text of an earlier request's prompt plus its answer
// (the stop string `\n\nUser:` included, as the model wrote it); its state is forked and only the
// rest is fed, which `usage.cached_tokens` counts. Two entries per request: the state after the
// prompt (for regenerating or branching from the same history) and the state after the answer.
// With `persist`, answer states are also written to the ModelStore and found again after a reload.

import { AbortedError, BadInputError, GanderError, throwIfAborted, toGanderError } from './errors.js';
import { checkThink, cleanText, formatChat, ReplySplitter, TURN_STOPS } from './chat-format.js';
import { checkOptions, is } from './options.js';

/** Sampling for G1 chat as the RWKV authors' chat demo sets it (BlinkDL/ChatRWKV
 *  API_DEMO_CHAT.py); also the CLI's (src/chat/mod.rs `chat_sampling`). */
export const CHAT_DEFAULTS = Object.freeze({
  temperature: 1.0, top_p: 0.3, top_k: 0, presence_penalty: 0.5, frequency_penalty: 0.5, penalty_decay: 0.996, max_tokens: 1024,
});

/** Default byte budget of a model's conversation cache (a 0.1B state is ~2.4 MiB). */
export const CHAT_CACHE_BYTES = 64 * 1024 * 1024;
/** Persisted conversation states kept per model in the store (oldest deleted first). */
export const CHAT_PERSIST_KEEP = 8;

const number = [(v) => typeof v === 'number' && Number.isFinite(v), 'a finite number'];
const CREATE_OPTIONS = {
  messages: [(v) => Array.isArray(v), 'an array of {role, content} messages'],
  model: is.string,
  stream: is.bool,
  max_tokens: is.posInt,
  temperature: [(v) => typeof v === 'number' && v >= 0 && Number.isFinite(v), 'a number >= 0 (0 = greedy)'],
  top_p: [(v) => typeof v === 'number' && v >= 0 && v <= 1, 'a number between 0 and 1'],
  top_k: [(v) => Number.isInteger(v) && v >= 0, 'an integer >= 0 (0 = no limit)'],
  presence_penalty: number,
  frequency_penalty: number,
  penalty_decay: [(v) => typeof v === 'number' && v >= 0 && v <= 1, 'a number between 0 and 1'],
  seed: [(v) => Number.isSafeInteger(v) && v >= 0, 'a non-negative integer'],
  stop: [(v) => typeof v === 'string' || (Array.isArray(v) && v.every((s) => typeof s === 'string')), 'a string or an array of strings'],
  think: [(v) => v === true || v === false || v === 'fake', "true, false or 'fake'"],
  n: [(v) => v === 1, '1 (one answer per request)'],
  cache: is.bool,
  signal: is.signal,
  response_format: [(v) => v && typeof v === 'object' && ['text', 'json_object', 'json_schema'].includes(v.type)
    && (v.type !== 'json_schema' || (v.json_schema && typeof v.json_schema === 'object' && v.json_schema.schema !== undefined)),
  "{type: 'text'} | {type: 'json_object'} | {type: 'json_schema', json_schema: {name, schema}}"],
  logit_bias: [(v) => v && typeof v === 'object' && !Array.isArray(v)
    && Object.entries(v).every(([k, b]) => /^\d+$/.test(k) && typeof b === 'number' && Number.isFinite(b)),
  '{token id: bias} (finite numbers; -100 bans a token)'],
};

/** Check a create() request; returns it with the defaults filled in. */
export function checkCreate(params) {
  if (!params || typeof params !== 'object') throw new BadInputError('chat.completions.create: give an object with `messages`');
  checkOptions('chat.completions.create', params, CREATE_OPTIONS);
  if (params.messages === undefined) throw new BadInputError('chat.completions.create: `messages` is required');
  const p = { ...CHAT_DEFAULTS, ...Object.fromEntries(Object.entries(params).filter(([, v]) => v !== undefined)) };
  p.think = checkThink(p.think);
  if (p.seed === undefined) p.seed = randomSeed();
  formatChat(p.messages, { think: p.think }); // refuses bad messages before anything runs
  const rf = p.response_format?.type;
  if ((rf === 'json_object' || rf === 'json_schema') && p.think !== false) {
    throw new BadInputError('chat.completions.create: `response_format` cannot be combined with `think` (the grammar would constrain the reasoning too); use think: false');
  }
  return p;
}

function randomSeed() {
  const a = new Uint32Array(2);
  crypto.getRandomValues(a);
  return (a[0] & 0x1fffff) * 2 ** 32 + a[1];
}

function hexId() {
  const a = new Uint8Array(12);
  crypto.getRandomValues(a);
  return Array.from(a, (b) => b.toString(16).padStart(2, '0')).join('');
}

function concatIds(a, b) {
  const out = new Uint32Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

/** Free an entry's state once nobody is copying it. */
async function drop(e) {
  await e.forking?.catch(() => {});
  await e.session.dispose();
}

/** Recent conversation states of one model, keyed by the text they have read, in a byte budget. */
export class ChatCache {
  constructor(maxBytes, entryBytes) {
    this.maxBytes = maxBytes;
    this.entryBytes = entryBytes;
    this.entries = [];
    this.tick = 0;
  }

  /** `{entry, text}` for the entry with the longest key that is a prefix of `text`, or null. */
  find(text) {
    let best = null;
    for (const e of this.entries) {
      for (const k of e.keys) if (text.startsWith(k) && (!best || k.length > best.text.length)) best = { entry: e, text: k };
    }
    if (best) best.entry.used = ++this.tick;
    return best;
  }

  /** Keep `session` (now owned by the cache) as the state after `text` (token ids `ids`);
   *  `alias` is the same text as the template renders it (see `answerAlias`). */
  async put(text, ids, session, alias) {
    const same = this.entries.findIndex((e) => e.keys[0] === text);
    if (same >= 0) await drop(this.entries.splice(same, 1)[0]);
    if (this.entryBytes > this.maxBytes) { await session.dispose(); return; }
    this.entries.push({ keys: alias && alias !== text ? [text, alias] : [text], ids, session, used: ++this.tick });
    while (this.entries.length * this.entryBytes > this.maxBytes) {
      let lru = 0;
      for (let i = 1; i < this.entries.length; i++) if (this.entries[i].used < this.entries[lru].used) lru = i;
      await drop(this.entries.splice(lru, 1)[0]);
    }
  }

  /** A copy of an entry's state; forks of one entry wait for each other (a session runs one
   *  call at a time). */
  fork(entry) {
    const f = (entry.forking ?? Promise.resolve()).catch(() => {}).then(() => entry.session.fork());
    entry.forking = f;
    return f;
  }

  get bytes() { return this.entries.length * this.entryBytes; }

  async clear() {
    const all = this.entries.splice(0);
    for (const e of all) await drop(e);
  }
}

async function sha256Hex(text) {
  const d = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text)));
  return Array.from(d, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** Where a persisted answer state may end inside `prompt`: before each turn label after an
 *  answer (an answer ended by end-of-text) and after it (one ended by the model's `\n\nUser:`). */
function boundaries(prompt) {
  const out = [];
  for (const stop of TURN_STOPS) {
    for (let at = prompt.indexOf(stop); at >= 0; at = prompt.indexOf(stop, at + 1)) out.push(at, at + stop.length);
  }
  return out.sort((a, b) => b - a);
}

/** Answer states written to the ModelStore (opt-in), found again after a reload. */
export class ChatPersistence {
  constructor(model, openStore, keep = CHAT_PERSIST_KEEP) {
    this.model = model;
    this.openStore = openStore;
    this.keep = keep;
  }

  async _name(text) { return `chat:${await sha256Hex(`${this.model.info.fingerprint}\n${text}`)}`; }

  /** A session holding the longest persisted prefix of `prompt`, or null. */
  async find(prompt) {
    const store = await this.openStore();
    try {
      for (const at of boundaries(prompt)) {
        const text = prompt.slice(0, at);
        const rec = await store._getChat(await this._name(text), this.model.info.fingerprint);
        if (!rec) continue;
        const s = this.model.session();
        await s.loadState(rec.bytes);
        return { text, ids: rec.ids, session: s };
      }
      return null;
    } finally {
      store.close();
    }
  }

  async save(text, ids, session) {
    const store = await this.openStore();
    try {
      await store._putChat(await this._name(text), this.model.info.fingerprint, await session.saveState(), ids, this.keep);
    } finally {
      store.close();
    }
  }
}

/** generate() options for `response_format` and `logit_bias`: the JSON grammar, allowing the
 *  space the model writes after `Assistant:`. */
function constraint(p) {
  const out = {};
  const rf = p.response_format;
  if (rf?.type === 'json_object') out.jsonSchema = true;
  if (rf?.type === 'json_schema') out.jsonSchema = rf.json_schema.schema;
  if (out.jsonSchema !== undefined) out.leadingSpace = true;
  if (p.logit_bias) out.logitBias = p.logit_bias;
  return out;
}

const squash = (t) => t.replace(/\s+/g, '');

/**
 * The text a client sends back for an answer: `prompt`, a space, the content as formatChat
 * cleans it, then the turn label the model wrote (if it wrote one). It differs from what the
 * state read (`prompt + raw`) only in whitespace when the model's spacing was not the template's
 * (no space after `Assistant:`, a trailing newline, blank lines inside the answer); the state is
 * then reused for that history too, exactly as the model wrote it. Anything more than whitespace
 * (a dropped think block, an edited answer) gives no alias: the prompt's state is used instead.
 */
function answerAlias(prompt, raw, content) {
  let tail = '';
  for (const stop of TURN_STOPS) {
    const at = raw.lastIndexOf(stop);
    if (at >= 0 && (!tail || at > raw.length - tail.length)) tail = raw.slice(at);
  }
  const alias = `${prompt} ${cleanText(content)}${tail}`;
  return squash(alias) === squash(prompt + raw) ? alias : null;
}

/** Find or build the state for `prompt`: the longest cached (or persisted) prefix forked, the
 *  rest fed. With `wantLogits`, the logits after the prompt are returned too (tests). */
async function openConversation(model, prompt, { useCache, signal, wantLogits = false }) {
  const cache = model._chat.cache;
  let hit = useCache ? cache.find(prompt) : null;
  let session;
  if (hit) {
    session = await cache.fork(hit.entry);
    hit = { text: hit.text, ids: hit.entry.ids };
  } else if (useCache && model._chat.persist) {
    hit = await model._chat.persist.find(prompt);
    if (hit) session = hit.session;
  }
  if (!session) session = model.session();
  try {
    const cachedIds = hit ? hit.ids : new Uint32Array(0);
    const rest = prompt.slice(hit ? hit.text.length : 0);
    const newIds = rest ? model.tokenizer.encode(rest) : new Uint32Array(0);
    throwIfAborted(signal);
    let logits = null;
    if (newIds.length) logits = wantLogits ? await session.forward(newIds) : (await session.prefill(newIds), null);
    return { session, cachedIds, newIds, ids: concatIds(cachedIds, newIds), logits };
  } catch (e) {
    await session.dispose();
    throw e;
  }
}

/** Tests: the logits after `messages`' prompt as a create() would reach them (cache included),
 *  with the token ids the state read and how many came from the cache. */
export async function chatPromptLogits(model, params) {
  const p = checkCreate(params);
  const prompt = formatChat(p.messages, { think: p.think });
  const c = await openConversation(model, prompt, { useCache: p.cache !== false, wantLogits: true });
  await c.session.dispose();
  return { ids: Array.from(c.ids), cached: c.cachedIds.length, logits: c.logits };
}

function chunk(base, delta, finish = null) {
  return { ...base, object: 'chat.completion.chunk', choices: [{ index: 0, delta, finish_reason: finish }] };
}

const FINISH = { length: 'length', eos: 'stop', stop: 'stop', aborted: 'abort' };

/**
 * The chunks of one chat completion on a LocalModel (`p` from checkCreate). The last chunk has
 * `finish_reason` and `usage` (with `cached_tokens`, and WebLLM-style timings in `usage.extra`).
 */
export async function* chatChunks(model, p) {
  const { signal } = p;
  const prompt = formatChat(p.messages, { think: p.think });
  const base = { id: `chatcmpl-${hexId()}`, created: Math.floor(Date.now() / 1000), model: p.model ?? `rwkv7-${model.info.fingerprint.slice(0, 12)}` };
  const cache = model._chat.cache;
  const useCache = p.cache !== false;
  // One answer at a time per conversation: the same history asked again while it is being
  // answered is refused (two different conversations run side by side).
  const inFlight = model._chat.inFlight;
  if (inFlight.has(prompt)) {
    throw new GanderError('BUSY', 'chat.completions.create: this conversation is being answered already; await that request (or abort it) first');
  }
  inFlight.add(prompt);
  const t0 = performance.now();
  let session;
  let owned = true;
  try {
    let cachedIds, newIds, ids;
    ({ session, cachedIds, newIds, ids } = await openConversation(model, prompt, { useCache, signal }));
    throwIfAborted(signal);
    const prefillMs = performance.now() - t0;
    if (useCache && newIds.length) await cache.put(prompt, ids, await session.fork());
    yield chunk(base, { role: 'assistant', content: '' });
    const split = new ReplySplitter(p.think);
    const tokens = [];
    let content = '';
    let finish = 'abort';
    let ttft;
    const t1 = performance.now();
    const userStops = p.stop === undefined ? [] : [].concat(p.stop);
    try {
      const gen = session.generate('', {
        maxTokens: p.max_tokens, temperature: p.temperature, topP: p.top_p, topK: p.top_k,
        presencePenalty: p.presence_penalty, frequencyPenalty: p.frequency_penalty, penaltyDecay: p.penalty_decay,
        seed: p.seed, stop: [...TURN_STOPS, ...userStops], signal, ...constraint(p),
      });
      for await (const ev of gen) {
        if (ev.token !== undefined) tokens.push(ev.token);
        ttft ??= performance.now() - t0;
        const d = split.push(ev.text);
        content += d.content;
        if (d.reasoning) yield chunk(base, { reasoning: d.reasoning });
        if (d.content) yield chunk(base, { content: d.content });
      }
      finish = FINISH[session.lastGeneration?.finish] ?? 'stop';
    } catch (e) {
      if (toGanderError(e).code !== 'ABORTED') throw e;
    }
    const decodeMs = performance.now() - t1;
    const d = split.finish();
    content += d.content;
    if (d.reasoning) yield chunk(base, { reasoning: d.reasoning });
    if (d.content) yield chunk(base, { content: d.content });
    // The state has read the prompt and every sampled token (a stop string's too).
    const raw = model.tokenizer.decode(tokens);
    const text = prompt + raw;
    const alias = answerAlias(prompt, raw, content);
    const all = concatIds(ids, Uint32Array.from(tokens));
    if (useCache) {
      if (model._chat.persist) await model._chat.persist.save(alias ?? text, all, session);
      owned = false;
      await cache.put(text, all, session, alias);
    }
    const usage = {
      prompt_tokens: ids.length,
      completion_tokens: tokens.length,
      total_tokens: ids.length + tokens.length,
      cached_tokens: cachedIds.length,
      prompt_tokens_details: { cached_tokens: cachedIds.length },
      extra: {
        prefill_tokens: newIds.length,
        prefill_tokens_per_s: newIds.length / Math.max(prefillMs, 1e-3) * 1000,
        decode_tokens_per_s: tokens.length / Math.max(decodeMs, 1e-3) * 1000,
        time_to_first_token_s: (ttft ?? performance.now() - t0) / 1000,
        e2e_latency_s: (performance.now() - t0) / 1000,
        backend: model.info.backend,
      },
    };
    yield { ...chunk(base, {}, finish), usage };
  } finally {
    inFlight.delete(prompt);
    if (owned && session) await session.dispose();
  }
}

/** The non-streamed response, built from the chunks. */
export async function collect(chunks) {
  let content = '';
  let reasoning = '';
  let last;
  for await (const c of chunks) {
    const d = c.choices[0].delta;
    if (d.content) content += d.content;
    if (d.reasoning) reasoning += d.reasoning;
    last = c;
  }
  if (!last) throw new GanderError('INTERNAL', 'the chat produced no response');
  const message = { role: 'assistant', content };
  if (reasoning) message.reasoning = reasoning;
  return {
    id: last.id, object: 'chat.completion', created: last.created, model: last.model,
    choices: [{ index: 0, message, finish_reason: last.choices[0].finish_reason }],
    usage: last.usage,
  };
}

export { AbortedError };

/**
 * The kept state of a conversation whose last message is the assistant's answer, to store and
 * bring back later (`restoreConversation`): `{text, ids, state}` (the text and token ids the
 * state has read, and the state blob), or null if the model keeps no state of it.
 */
export async function saveConversation(model, messages, { think = false } = {}) {
  if (!Array.isArray(messages) || messages.length < 2 || messages[messages.length - 1]?.role !== 'assistant') {
    throw new BadInputError('chat.saveConversation: give the messages up to and including the assistant\'s last answer');
  }
  const last = messages[messages.length - 1];
  if (typeof last.content !== 'string') throw new BadInputError('chat.saveConversation: the last message needs a string `content`');
  const history = `${formatChat(messages.slice(0, -1), { think: checkThink(think) })} ${cleanText(last.content)}`;
  // The longest kept prefix of the history as the next request will write it.
  const hit = model._chat.cache.find(`${history}${TURN_STOPS[0]} `);
  if (!hit) return null;
  const s = await model._chat.cache.fork(hit.entry);
  try {
    return { text: hit.text, ids: Array.from(hit.entry.ids), state: await s.saveState() };
  } finally {
    await s.dispose();
  }
}

/** Bring back a conversation saved by `saveConversation` (after a reload, say): the next
 *  request that extends it reads only its new turn. STATE_MISMATCH for another model's state. */
export async function restoreConversation(model, saved) {
  const { text, ids, state } = saved ?? {};
  if (typeof text !== 'string' || !text || !Array.isArray(ids) && !(ids instanceof Uint32Array) || !(state instanceof Uint8Array)) {
    throw new BadInputError('chat.restoreConversation: give {text, ids, state} as saveConversation returned them');
  }
  const s = model.session();
  try {
    await s.loadState(state);
  } catch (e) {
    await s.dispose();
    throw e;
  }
  await model._chat.cache.put(text, Uint32Array.from(ids), s);
}
