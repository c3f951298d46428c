// What the chat tests do inside the page (tests/e2e/chat.test.mjs checks what these return):
// model.chat.completions.create over the trained byte-level fixture, on the page and in the
// worker, on WebGPU (SwiftShader) and the wasm CPU path.

import { Gander, formatChat } from '/pkg/index.js';
import { relErr } from './pkg-scenario.js';

const FIXTURE = '/shared/fixtures/tiny-rwkv7-834k/model.safetensors';

async function bytes(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return new Uint8Array(await r.arrayBuffer());
}

function err(e) {
  return { name: e && e.name, code: e && e.code, message: String(e && e.message) };
}

const load = async (opts) => Gander.load((await bytes(FIXTURE)).buffer, opts);

/** The README's ten lines, as a user writes them, plus the response and chunk shapes. */
export async function shapes({ backend, worker, maxTokens = 12 }) {
  const model = await load({ backend, worker });
  const messages = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'What is a goose?' }];
  const res = await model.chat.completions.create({ messages, max_tokens: maxTokens, temperature: 0 });
  const chunks = [];
  for await (const c of await model.chat.completions.create({ messages, max_tokens: maxTokens, temperature: 0, stream: true })) chunks.push(c);
  await model.dispose();
  return { res, chunks, backend: model.info.backend, prompt: formatChat(messages) };
}

/** Three turns: per-turn usage, and the logits after turn 3's prompt (reached through the
 *  cache) against a fresh session fed the same ids. */
export async function threeTurns({ backend, worker, maxTokens = 24, questions = ['Tell me about rivers.', 'And about the sea?', 'Which is larger?'], uncached = true }) {
  const model = await load({ backend, worker });
  const messages = [];
  const turns = [];
  for (const q of questions) {
    messages.push({ role: 'user', content: q });
    const res = await model.chat.completions.create({ messages, max_tokens: maxTokens, temperature: 0 });
    turns.push({ usage: res.usage, finish: res.choices[0].finish_reason, content: res.choices[0].message.content });
    messages.push(res.choices[0].message);
  }
  messages.push({ role: 'user', content: 'Thanks.' });
  const viaCache = await model._chatLogits({ messages });
  const fresh = await model.session().forward(viaCache.ids);
  const noCache = uncached ? await model._chatLogits({ messages, cache: false }) : null;
  const info = await model._chatCacheInfo();
  await model.dispose();
  return {
    turns, cached: viaCache.cached, ids: viaCache.ids.length, uncachedCached: noCache?.cached,
    err: relErr(viaCache.logits, fresh), entries: info.entries.length, bytes: info.bytes,
  };
}

/** Overlapping calls on one session are refused with BUSY; the first call is unharmed. */
export async function busy({ backend, worker, maxTokens = 6 }) {
  const model = await load({ backend, worker });
  const s = model.session();
  const out = {};
  const a = s.generate('The', { maxTokens, temperature: 0 });
  await a.next();
  try { for await (const _ of s.generate('x', { maxTokens: 2 })) { /* not reached */ } out.generate = 'no error'; } catch (e) { out.generate = err(e); }
  try { await s.forward([1]); out.forward = 'no error'; } catch (e) { out.forward = err(e); }
  let n = 1;
  for await (const _ of a) n++;
  out.firstTokens = n;
  out.after = (await s.forward([2])).length;
  // One conversation asked twice at once: BUSY for the second; another conversation runs.
  const ask = (content) => model.chat.completions.create({ messages: [{ role: 'user', content }], max_tokens: 2, temperature: 0 })
    .then((r) => r.choices[0].finish_reason, (e) => e.code);
  out.chats = await Promise.all([ask('Hi'), ask('Hi'), ask('Hello')]);
  await model.dispose();
  return out;
}

/** Abort mid-stream: the last chunk says 'abort', and the cached state holds exactly the
 *  tokens that were generated (a fresh run over its ids gives the same logits). */
export async function abortMidStream({ backend, worker }) {
  const model = await load({ backend, worker });
  const ac = new AbortController();
  const messages = [{ role: 'user', content: 'Write a long story.' }];
  const chunks = [];
  for await (const c of await model.chat.completions.create({ messages, max_tokens: 500, temperature: 0, stream: true, signal: ac.signal })) {
    chunks.push(c);
    if (chunks.length === 4) ac.abort();
  }
  const last = chunks[chunks.length - 1];
  const content = chunks.map((c) => c.choices[0].delta.content ?? '').join('');
  const info = await model._chatCacheInfo();
  const answer = info.entries.reduce((a, e) => (e.ids.length > a.ids.length ? e : a));
  const prompt = formatChat(messages);
  const s = model.session();
  const fresh = await s.forward(answer.ids);
  const next = await model._chatLogits({ messages: [...messages, { role: 'assistant', content }, { role: 'user', content: 'Go on.' }] });
  await model.dispose();
  return {
    finish: last.choices[0].finish_reason, usage: last.usage, content, chunks: chunks.length,
    answerText: answer.text, prompt, answerIds: answer.ids.length, nextCached: next.cached,
    freshFinite: fresh.every(Number.isFinite),
  };
}

/** Sessions the page drops are reclaimed: live sessions and wasm memory stay flat. */
export async function reclaim({ worker, n = 1000 }) {
  const model = await load({ backend: 'cpu', worker });
  const warm = [];
  for (let i = 0; i < 20; i++) { const s = model.session(); await s.forward([1, 2]); warm.push(s); }
  warm.length = 0;
  const settle = async () => {
    for (let i = 0; i < 5; i++) { globalThis.gc?.(); await new Promise((r) => setTimeout(r, 50)); }
  };
  await settle();
  const memBefore = await model._memoryBytes();
  let memHalf = 0;
  for (let i = 0; i < n; i++) {
    const s = model.session();
    await s.forward([1, 2, 3]);
    if (i % 50 === 49) await settle();
    if (i === n / 2 - 1) memHalf = await model._memoryBytes();
  }
  await settle();
  const memAfter = await model._memoryBytes();
  const live = await model._liveSessions();
  await model.dispose();
  return { n, memBefore, memHalf, memAfter, live, stateBytes: model.info.stateBytes, hasGc: typeof globalThis.gc === 'function' };
}

/** With persist, a conversation's state survives a reload (a new model object here; the
 *  test reloads the page between the two halves). */
export async function persistTurn({ half }) {
  const model = await load({ backend: 'cpu', worker: false, chatCache: { persist: true } });
  const messages = [{ role: 'user', content: 'Name a bird.' }];
  let out;
  if (half === 1) {
    const res = await model.chat.completions.create({ messages, max_tokens: 10, temperature: 0 });
    out = { content: res.choices[0].message.content, usage: res.usage };
  } else {
    const prev = JSON.parse(half);
    messages.push({ role: 'assistant', content: prev.content }, { role: 'user', content: 'Another?' });
    const res = await model.chat.completions.create({ messages, max_tokens: 10, temperature: 0 });
    out = { usage: res.usage };
  }
  await model.dispose();
  return out;
}

const PERSON = {
  type: 'object',
  properties: { name: { type: 'string', maxLength: 8 }, age: { type: 'integer' }, pet: { enum: ['cat', 'dog', null] } },
  required: ['name', 'age'],
};

/** Constrained output: `runs` sampled generations under a JSON schema (hot temperature), a
 *  chat answer in JSON mode and with a schema, a GBNF grammar, a logit bias, a bad schema. */
export async function structured({ backend, worker, runs = 20, maxTokens = 200, chats = true }) {
  const model = await load({ backend, worker });
  const s = model.session();
  const outputs = [];
  for (let i = 0; i < runs; i++) {
    await s.reset();
    let text = '';
    for await (const ev of s.generate('Person:', { jsonSchema: PERSON, temperature: 1.5, seed: i, maxTokens })) text += ev.text;
    outputs.push({ text, finish: s.lastGeneration.finish });
  }
  const out = { outputs };
  const messages = [{ role: 'user', content: 'Describe a person as JSON.' }];
  if (chats) {
    const j = await model.chat.completions.create({ messages, response_format: { type: 'json_object' }, max_tokens: maxTokens, temperature: 1.2, seed: 3 });
    out.jsonMode = { content: j.choices[0].message.content, finish: j.choices[0].finish_reason };
    const k = await model.chat.completions.create({ messages, response_format: { type: 'json_schema', json_schema: { name: 'person', schema: PERSON } }, max_tokens: maxTokens, temperature: 1.2, seed: 4 });
    out.schema = { content: k.choices[0].message.content, finish: k.choices[0].finish_reason };
  }
  await s.reset();
  let g = '';
  for await (const ev of s.generate('Answer:', { grammar: 'root ::= ("yes" | "no") "!"', temperature: 1, seed: 1 })) g += ev.text;
  out.gbnf = g;
  await s.reset();
  let b = '';
  for await (const ev of s.generate('x', { logitBias: { 122: 100 }, maxTokens: chats ? 4 : 2, seed: 2 })) b += ev.text;
  out.bias = b;
  try { for await (const _ of s.generate('x', { jsonSchema: { type: 'string', pattern: 'a+' } })) { /* none */ } out.bad = 'no error'; } catch (e) { out.bad = err(e); }
  try { await model.chat.completions.create({ messages, response_format: { type: 'json_object' }, think: true }); out.badThink = 'no error'; } catch (e) { out.badThink = err(e); }
  await model.dispose();
  return out;
}

/** saveConversation / restoreConversation across two model objects (as across a reload): the
 *  restored conversation's next turn reads only its new tokens and answers as the original. */
export async function saveRestore({ worker }) {
  const a = await load({ backend: 'cpu', worker });
  const messages = [{ role: 'user', content: 'Remember the word apple.' }];
  const r1 = await a.chat.completions.create({ messages, max_tokens: 12, temperature: 0 });
  messages.push(r1.choices[0].message);
  const saved = await a.chat.saveConversation(messages);
  const next = [...messages, { role: 'user', content: 'What word?' }];
  const same = await a.chat.completions.create({ messages: next, max_tokens: 12, temperature: 0 });
  await a.dispose();
  const b = await load({ backend: 'cpu', worker });
  await b.chat.restoreConversation(saved);
  const restored = await b.chat.completions.create({ messages: next, max_tokens: 12, temperature: 0 });
  let mismatch = null;
  const other = await Gander.load(await bytes('/tests/golden/fp32-bytes/model.safetensors'), { backend: 'cpu', worker });
  try { await other.chat.restoreConversation(saved); } catch (e) { mismatch = err(e); }
  await other.dispose();
  await b.dispose();
  return {
    savedIds: saved.ids.length, first: r1.usage, same: { content: same.choices[0].message.content, usage: same.usage },
    restored: { content: restored.choices[0].message.content, usage: restored.usage }, mismatch,
  };
}
