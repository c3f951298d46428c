// The Gander demo page: loads the built-in model (or one stored in IndexedDB), chats or completes
// text with streaming output, keeps models and states in the browser, and shows what RWKV's
// fixed-size state allows: save/restore across reloads, branch, export/import, and priming a
// state once with a document or examples ("learning at test time").
//
// Everything goes through the public package API (./pkg/index.js), as any web app would use it.
// URL parameters: ?backend=auto|webgpu|cpu (default auto), ?worker=0 to run on the page's thread.
// Test hooks (stable): data-testid = prompt, generate, output, status (says "ready"), stop.

import { CHAT_DEFAULTS, Gander, ModelStore, TURN_STOPS, formatChat, sqlTable } from './pkg/index.js';

const BUILTIN = {
  key: 'builtin',
  label: 'sql-rwkv7 (built-in text-to-SQL)',
  url: new URL('./models/sql-rwkv7-int8.safetensors', import.meta.url).href,
  size: '18.0 MiB',
  note: 'The built-in model is Gander\'s own small RWKV-7 (874K parameters plus a 65,536-token embedding and head, int8), trained to turn a question about one table into SQL. Give it a schema and a question in the format shown; it answers after "SQL:". It knows the phrasings it was trained on, not free English. Add any RWKV-7 checkpoint under Models for general text.',
  // How the page drives this model: completion of a fixed prompt format, greedy, one line,
  // every question from a fresh (or primed) state.
  profile: {
    sql: true,
    mode: 'complete', stop: ['\n'], temperature: 0, maxTokens: 80, fresh: true,
    example: 'Table: employees(name TEXT, city TEXT, salary INTEGER)\nQuestion: What is the average salary of the employees in Berlin?\nSQL:',
    ingest: 'Table: employees(name TEXT, city TEXT, salary INTEGER)\nQuestion: How many employees are there?\nSQL: SELECT COUNT(*) FROM employees;\n\nTable: employees(name TEXT, city TEXT, salary INTEGER)\nQuestion: List the name of the employees in Paris.\nSQL: SELECT name FROM employees WHERE city = \'Paris\';\n',
  },
};

const params = new URLSearchParams(location.search);
const backendPref = ['auto', 'webgpu', 'cpu'].includes(params.get('backend')) ? params.get('backend') : 'auto';
const useWorker = params.get('worker') !== '0';

const $ = (id) => document.getElementById(id);

const app = {
  store: null,
  model: null,
  session: null,
  key: null,
  busy: false,
  abort: null,
  mode: 'chat',
  transcript: [], // {role: 'user'|'bot'|'system'|'completion', text, given?}
  context: false, // the session's state holds text already
  lastFinish: null,
  primed: null, // {bytes, tokens, label}
};

// ---------- small helpers ----------

function mib(n) {
  if (n == null) return '?';
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(n < 10240 ? 1 : 0)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1048576).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

function setStatus(text, kind = '') {
  const el = $('status');
  el.textContent = text;
  el.title = text;
  el.className = `status ${kind}`;
}

function notice(text) {
  const el = $('notice');
  el.hidden = !text;
  el.textContent = text || '';
}

/** A message a person can act on, from any error the package throws. */
function friendly(e) {
  const code = e && e.code;
  const msg = (e && e.message) || String(e);
  switch (code) {
    case 'QUOTA': return `Not enough storage: ${e.needed ? `${mib(e.needed)} needed, ${mib(e.available)} free` : msg}. Delete a model or a saved state, or free disk space.`;
    case 'BAD_MODEL': return `That file is not an RWKV-7 checkpoint Gander can read (${msg}).`;
    case 'UNSUPPORTED': return `Gander cannot run this model: ${msg}`;
    case 'STATE_MISMATCH': return `That state does not fit this model: ${msg.replace(/^state does not fit this model: /, '').replace(/\.$/, '')}.`;
    case 'NO_WEBGPU': return `WebGPU is not available in this browser: ${msg}. Choose the CPU backend (?backend=cpu).`;
    case 'DEVICE_LOST': return 'The GPU was lost (driver reset or sleep). Reload the page; a saved state can be restored.';
    case 'IO': return `Could not fetch the model: ${msg}`;
    case 'BUSY': return msg;
    case 'NO_STORAGE': return `Browser storage is not available (private window?): ${msg}`;
    default: return msg;
  }
}

function setBusy(on) {
  app.busy = on;
  $('generate').disabled = on || !app.session;
  $('stop').disabled = !on || !app.abort;
  for (const id of ['model-select', 'new-conversation', 'save-state-btn', 'export-state', 'ingest', 'add-model-btn']) $(id).disabled = on;
  $('import-state').disabled = on;
}

function readyStatus() {
  const i = app.model.info;
  const where = i.backend === 'webgpu' ? `WebGPU${i.adapter ? ` (${i.adapter})` : ''}` : 'CPU (wasm SIMD)';
  setStatus(`ready · ${labelOf(app.key)} · ${where}`, 'ready');
}

function labelOf(key) {
  return key === BUILTIN.key ? BUILTIN.label : key;
}

// ---------- output ----------

function renderOutput() {
  const out = $('output');
  out.replaceChildren();
  if (!app.transcript.length) {
    const p = document.createElement('p');
    p.className = 'empty';
    p.textContent = app.mode === 'chat'
      ? 'Say something. The conversation lives in the model\'s state: each turn feeds only the new text.'
      : 'Type the beginning of a text; the model continues it.';
    out.append(p);
    return;
  }
  for (const m of app.transcript) out.append(messageNode(m));
  out.scrollTop = out.scrollHeight;
}

function messageNode(m) {
  const div = document.createElement('div');
  div.className = `msg ${m.role}`;
  if (m.role === 'completion') {
    const given = document.createElement('span');
    given.className = 'given';
    given.textContent = m.given;
    div.append(given, document.createTextNode(m.text));
  } else {
    div.textContent = m.text;
  }
  return div;
}

function addMessage(m) {
  const out = $('output');
  out.querySelector('.empty')?.remove();
  app.transcript.push(m);
  const node = messageNode(m);
  out.append(node);
  out.scrollTop = out.scrollHeight;
  return node;
}

// ---------- models ----------

async function refreshModels() {
  const list = app.store ? await app.store.list().catch(() => []) : [];
  const sel = $('model-select');
  sel.replaceChildren(new Option(BUILTIN.label, BUILTIN.key));
  for (const m of list) sel.add(new Option(`${m.name} · ${m.quant} · ${mib(m.size)}`, m.name));
  sel.value = app.key || BUILTIN.key;
  const ul = $('model-list');
  ul.replaceChildren();
  const row = (key, name, meta, deletable) => {
    const li = document.createElement('li');
    if (key === app.key) li.className = 'current';
    const n = document.createElement('span');
    n.className = 'name';
    n.textContent = name;
    n.title = name;
    const mt = document.createElement('span');
    mt.className = 'meta';
    mt.textContent = meta;
    li.append(n, mt);
    if (key !== app.key) li.append(button('Use', () => selectModel(key)));
    if (deletable) li.append(button('Delete', () => deleteModel(key), 'danger'));
    li.dataset.model = key;
    ul.append(li);
  };
  row(BUILTIN.key, BUILTIN.label, `int8 · ${BUILTIN.size}`, false);
  for (const m of list) row(m.name, m.name, `${m.quant} · ${mib(m.size)}`, true);
  return list;
}

function button(text, onClick, cls = '') {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = `small ${cls}`;
  b.textContent = text;
  b.addEventListener('click', onClick);
  return b;
}

async function refreshUsage() {
  if (!app.store) { $('storage-usage').textContent = 'Storage: not available in this browser window.'; return; }
  const u = await app.store.usage();
  $('storage-usage').textContent = `Storage: models ${mib(u.models)} · this site uses ${mib(u.usage)} of ${mib(u.quota)}${u.persisted ? ' · persistent' : ''}`;
}

async function selectModel(key) {
  if (app.busy) return;
  setBusy(true);
  notice('');
  const label = labelOf(key);
  setStatus(`loading ${label}…`, 'busy');
  if (app.model) {
    await app.model.dispose().catch(() => {});
    app.model = app.session = null;
  }
  try {
    const source = key === BUILTIN.key ? BUILTIN.url : { store: key };
    app.model = await Gander.load(source, {
      backend: backendPref,
      worker: useWorker,
      onProgress: (p) => setStatus(`loading ${label}… ${Math.round(p.fraction * 100)}%`, 'busy'),
    });
  } catch (e) {
    setBusy(false);
    setStatus(`could not load ${label}`, 'error');
    notice(friendly(e));
    if (key !== BUILTIN.key) return selectModel(BUILTIN.key);
    return;
  }
  app.key = key;
  app.session = app.model.session();
  localStorage.setItem('gander.model', key);
  app.transcript = [];
  app.context = false;
  app.lastFinish = null;
  app.primed = null;
  $('use-primed').checked = false;
  $('use-primed').disabled = true;
  $('ingest-status').textContent = '';
  app.profile = key === BUILTIN.key ? BUILTIN.profile : null;
  applyProfile();
  renderOutput();
  showInfo();
  setBusy(false);
  readyStatus();
  const notes = [];
  if (app.model.info.backend === 'cpu' && backendPref !== 'cpu') notes.push(`${app.model.info.reason}.`);
  if (key === BUILTIN.key) notes.push(BUILTIN.note);
  if (!app.model.info.tokenizer) notes.push('This model has a vocabulary Gander has no tokenizer for, so it cannot take text.');
  notice(notes.join(' '));
  await refreshModels();
  await refreshStates();
}

async function deleteModel(name) {
  if (app.busy || !confirmDelete(`the model “${name}”`)) return;
  await app.store.delete(name);
  await refreshModels();
  await refreshUsage();
}

function confirmDelete(what) {
  // Tests and scripted use can pre-approve with ?confirm=0.
  return params.get('confirm') === '0' || window.confirm(`Delete ${what}?`);
}

async function addModel(ev) {
  ev.preventDefault();
  if (app.busy) return;
  const file = $('model-file').files[0];
  const url = $('model-url').value.trim();
  const status = $('add-status');
  if (!app.store) { status.textContent = 'Storage is not available in this window.'; return; }
  if (!file && !url) { status.textContent = 'Choose a file or give a URL first.'; return; }
  const quant = $('model-quant').value || undefined;
  const base = (file ? file.name : url.split('/').pop() || 'model').replace(/\.(pth|safetensors|bin|st)$/i, '') + (quant ? `-${quant}` : '');
  const taken = new Set((await app.store.list()).map((m) => m.name));
  let name = base;
  for (let i = 2; taken.has(name); i++) name = `${base} (${i})`;
  const bar = $('add-progress');
  bar.hidden = false;
  bar.value = 0;
  const phases = { download: 'downloading', convert: `converting to ${quant}`, store: 'storing' };
  const ac = new AbortController();
  app.abort = ac;
  setBusy(true);
  try {
    await app.store.put(name, file || url, {
      quant,
      worker: true,
      signal: ac.signal,
      onProgress: (p) => { bar.value = p.fraction; status.textContent = `${phases[p.phase] || p.phase}… ${Math.round(p.fraction * 100)}%`; },
    });
    status.textContent = `Added “${name}”.`;
    $('model-file').value = '';
    $('model-url').value = '';
  } catch (e) {
    status.textContent = e.code === 'ABORTED' ? 'Stopped; nothing was stored.' : friendly(e);
  } finally {
    app.abort = null;
    bar.hidden = true;
    setBusy(false);
    await refreshModels();
    await refreshUsage();
  }
}

// ---------- generation ----------

function sampling() {
  const num = (id) => { const v = $(id).value; return v === '' ? undefined : Number(v); };
  const o = {
    temperature: num('temperature'),
    topP: num('top-p'),
    topK: num('top-k'),
    maxTokens: num('max-tokens'),
    presencePenalty: num('presence'),
    frequencyPenalty: num('frequency'),
    penaltyDecay: 0.996,
  };
  const seed = num('seed');
  if (seed !== undefined) o.seed = seed;
  else o.seed = Math.floor(Math.random() * 2 ** 32);
  return o;
}

async function generate(ev) {
  ev?.preventDefault();
  if (app.busy || !app.session) return;
  const text = $('prompt').value;
  if (!text.trim()) { $('prompt').focus(); return; }
  const opts = sampling();
  app.lastChat = null;
  let prompt;
  let node;
  const ac = new AbortController();
  app.abort = ac;
  setBusy(true);
  setStatus('generating…', 'busy');
  try {
    if ($('use-primed').checked && app.primed) {
      await app.session.loadState(app.primed.bytes);
      app.transcript = [{ role: 'system', text: `started from the primed state (${app.primed.tokens} tokens of “${app.primed.label}”)` }];
      renderOutput();
      app.context = true;
      app.lastFinish = null;
    } else if (app.profile?.fresh && app.mode === app.profile.mode && app.context) {
      // This model answers each question on its own: start from an empty state.
      await app.session.reset();
      app.context = false;
      app.lastFinish = null;
    }
    if (app.mode === 'chat' && !($('use-primed').checked && app.primed)) {
      await chat(text.trim(), opts, ac);
    } else if (app.mode === 'chat') {
      // A primed state: the conversation continues in this page's session, as the G1 template
      // (formatChat) renders it after the primed text.
      const messages = [...chatMessages(), { role: 'user', content: text.trim() }];
      prompt = `${app.context ? '\n\n' : ''}${formatChat(messages.slice(-1))}`;
      opts.stop = [...TURN_STOPS];
      addMessage({ role: 'user', text: text.trim() });
      const m = { role: 'bot', text: '' };
      node = addMessage(m);
      node.classList.add('streaming');
      $('prompt').value = '';
      await stream(prompt, opts, ac, (t) => { m.text += t; node.textContent = m.text.trimStart(); });
    } else {
      prompt = app.context && app.profile?.fresh ? `\n${text}` : text;
      if (app.profile && app.mode === app.profile.mode) {
        opts.stop = app.profile.stop;
        const g = app.profile.sql && $('sql-grammar').checked ? sqlGrammarFor(text) : null;
        if (g) opts.grammar = g;
      }
      const m = { role: 'completion', given: text, text: '' };
      node = addMessage(m);
      const tail = document.createTextNode('');
      node.append(tail);
      node.classList.add('streaming');
      await stream(prompt, opts, ac, (t) => { m.text += t; tail.data += t; });
    }
    readyStatus();
  } catch (e) {
    if (e.code === 'DEVICE_LOST') notice(friendly(e));
    setStatus(friendly(e), 'error');
    if (app.model) setTimeout(() => app.busy || readyStatus(), 4000);
  } finally {
    node?.classList.remove('streaming');
    app.abort = null;
    setBusy(false);
    showStats();
  }
}

/** The SQL grammar of the table the question is about: the prompt's last `Table:` line, or the
 *  primed text's when the question comes without one. */
function sqlGrammarFor(text) {
  const lastTable = (t) => t.split('\n').filter((l) => l.startsWith('Table:')).pop();
  const line = lastTable(text) ?? ($('use-primed').checked && app.primed ? lastTable($('ingest-text').value) : undefined);
  return line ? sqlTable(line).grammar : null;
}

/** The transcript as chat messages (notes such as "stopped" left out). */
function chatMessages() {
  return app.transcript
    .filter((m) => (m.role === 'user' || m.role === 'bot') && !m.pending)
    .map((m) => ({ role: m.role === 'bot' ? 'assistant' : 'user', content: m.text }));
}

/** One chat turn through the package's OpenAI-shaped API: the model keeps the conversation's
 *  state, so only the new turn is read (`usage.cached_tokens` says how much was not). */
async function chat(text, opts, ac) {
  const messages = [...chatMessages(), { role: 'user', content: text }];
  addMessage({ role: 'user', text });
  const m = { role: 'bot', text: '', pending: true };
  const node = addMessage(m);
  node.classList.add('streaming');
  $('prompt').value = '';
  const out = $('output');
  let details = null;
  const body = document.createElement('span');
  node.replaceChildren(body);
  app.lastChat = null;
  try {
    const chunks = await app.model.chat.completions.create({
      messages, stream: true, signal: ac.signal, think: $('think').checked ? true : false,
      max_tokens: opts.maxTokens, temperature: opts.temperature, top_p: opts.topP, top_k: opts.topK,
      presence_penalty: opts.presencePenalty, frequency_penalty: opts.frequencyPenalty, penalty_decay: opts.penaltyDecay, seed: opts.seed,
    });
    for await (const c of chunks) {
      const atBottom = out.scrollHeight - out.scrollTop - out.clientHeight < 40;
      const d = c.choices[0].delta;
      if (d.reasoning) {
        if (!details) {
          details = document.createElement('details');
          details.className = 'reasoning';
          const sum = document.createElement('summary');
          sum.textContent = 'reasoning';
          details.append(sum, document.createElement('span'));
          node.prepend(details);
        }
        details.lastChild.textContent += d.reasoning;
      }
      if (d.content) { m.text += d.content; body.textContent = m.text; }
      if (c.usage) app.lastChat = c.usage;
      if (c.choices[0].finish_reason === 'abort') addMessage({ role: 'system', text: 'stopped' });
      if (atBottom) out.scrollTop = out.scrollHeight;
    }
  } finally {
    m.pending = false;
    node.classList.remove('streaming');
  }
}

async function stream(prompt, opts, ac, onText) {
  const out = $('output');
  try {
    for await (const ev of app.session.generate(prompt, { ...opts, signal: ac.signal })) {
      const atBottom = out.scrollHeight - out.scrollTop - out.clientHeight < 40;
      onText(ev.text);
      if (atBottom) out.scrollTop = out.scrollHeight;
    }
  } catch (e) {
    if (e.code !== 'ABORTED') throw e;
    addMessage({ role: 'system', text: 'stopped' });
  } finally {
    app.context = true;
    app.lastFinish = app.session.lastGeneration?.finish ?? null;
  }
}

function showStats() {
  const g = app.session?.lastGeneration;
  const i = app.model?.info;
  if (!i) return;
  $('st-backend').textContent = i.backend === 'webgpu' ? 'WebGPU' : 'CPU';
  $('st-backend').title = i.reason;
  const rate = (n, ms) => (n && ms > 0 ? `${(n / (ms / 1000)).toFixed(n / (ms / 1000) >= 100 ? 0 : 1)} tok/s` : '–');
  const perS = (r) => (r > 0 ? `${r.toFixed(r >= 100 ? 0 : 1)} tok/s` : '–');
  const u = app.lastChat;
  if (u) {
    $('st-prefill').textContent = u.extra.prefill_tokens ? perS(u.extra.prefill_tokens_per_s) : '–';
    $('st-decode').textContent = perS(u.extra.decode_tokens_per_s);
    $('st-cached').textContent = `${u.cached_tokens} of ${u.prompt_tokens} tokens`;
    $('st-cached').title = 'prompt tokens the model did not read again: the conversation state was kept';
  } else {
    $('st-prefill').textContent = g ? rate(g.prefillTokens, g.prefillMs) : '–';
    $('st-decode').textContent = g ? rate(g.tokens, g.decodeMs) : '–';
    $('st-cached').textContent = '–';
  }
  $('st-state').textContent = mib(i.stateBytes);
}

function showInfo() {
  const i = app.model.info;
  const rows = [
    ['backend', i.backend === 'webgpu' ? 'WebGPU' : 'CPU (wasm SIMD)'], ['why', i.reason], ['adapter', i.adapter || '–'],
    ['engine', useWorker ? 'in a Web Worker' : 'on the page thread'], ['layers', i.layers], ['width', i.embd],
    ['heads', `${i.heads} × ${i.headSize}`], ['vocabulary', `${i.vocab}${i.tokenizer ? ` (${i.tokenizer})` : ''}`],
    ['weights', `${i.quant} · ${mib(i.weightBytes)}`], ['parameters', i.params.toLocaleString()], ['state', mib(i.stateBytes)],
    ['fingerprint', i.fingerprint.slice(0, 16)],
  ];
  const dl = $('about');
  dl.replaceChildren();
  for (const [k, v] of rows) {
    const dt = document.createElement('dt');
    dt.textContent = k;
    const dd = document.createElement('dd');
    dd.textContent = String(v);
    dl.append(dt, dd);
  }
  showStats();
}

// ---------- states ----------

const transcriptKey = (name) => `gander.transcript.${app.model.info.fingerprint}.${name}`;

async function refreshStates() {
  const ul = $('state-list');
  ul.replaceChildren();
  const states = app.store && app.model ? await app.store.listStates(app.model).catch(() => []) : [];
  if (!states.length) {
    const li = document.createElement('li');
    li.className = 'none';
    li.textContent = 'no saved states for this model';
    ul.append(li);
  }
  for (const s of states.sort((a, b) => b.createdAt - a.createdAt)) {
    const li = document.createElement('li');
    li.dataset.state = s.name;
    const n = document.createElement('span');
    n.className = 'name';
    n.textContent = s.name;
    n.title = `${s.name} · saved ${new Date(s.createdAt).toLocaleString()}`;
    const mt = document.createElement('span');
    mt.className = 'meta';
    mt.textContent = mib(s.size);
    li.append(n, mt, button('Restore', () => restoreState(s.name)), button('Delete', () => deleteState(s.name), 'danger'));
    ul.append(li);
  }
}

async function saveState(ev) {
  ev.preventDefault();
  if (app.busy || !app.session || !app.store) return;
  const name = $('state-name').value.trim() || `conversation ${new Date().toLocaleString()}`;
  try {
    // A chat through the API keeps its state in the model's conversation cache, not in this
    // page's session: save that state, with the text it has read, so a restore continues it.
    const msgs = chatMessages();
    const conv = app.mode === 'chat' && !app.context && msgs.at(-1)?.role === 'assistant'
      ? await app.model.chat.saveConversation(msgs, { think: $('think').checked }) : null;
    let chat = null;
    if (conv) {
      const s = app.model.session();
      try {
        await s.loadState(conv.state);
        await app.store.putState(app.model, name, s);
      } finally { await s.dispose(); }
      chat = { text: conv.text, ids: conv.ids };
    } else {
      await app.store.putState(app.model, name, app.session);
    }
    localStorage.setItem(transcriptKey(name), JSON.stringify({ transcript: app.transcript, context: app.context, lastFinish: app.lastFinish, mode: app.mode, chat }));
    $('state-name').value = '';
    setStatus(`ready · saved state “${name}”`, 'ready');
  } catch (e) {
    notice(friendly(e));
  }
  await refreshStates();
  await refreshUsage();
}

async function restoreState(name) {
  if (app.busy) return;
  try {
    const bytes = await app.store.getState(app.model, name);
    if (!bytes) throw new Error(`state “${name}” is gone`);
    const saved = JSON.parse(localStorage.getItem(transcriptKey(name)) || 'null');
    if (saved?.chat) {
      // A chat-API conversation: back into the model's conversation cache, so the next turn
      // reads only its new text.
      await app.model.chat.restoreConversation({ text: saved.chat.text, ids: saved.chat.ids, state: bytes });
      await app.session.reset();
    } else {
      await app.session.loadState(bytes);
    }
    app.transcript = saved ? saved.transcript : [];
    app.context = !saved?.chat;
    // A loaded state has no "last logits": the next turn always starts with a prompt.
    app.lastFinish = saved && saved.lastFinish === 'stop' ? 'stop' : null;
    if (saved && saved.mode) setMode(saved.mode, false);
    app.transcript.push({ role: 'system', text: `restored “${name}” (the saved state is unchanged: continuing here is a branch)` });
    $('use-primed').checked = false;
    asPrimed(bytes, name);
    renderOutput();
    readyStatus();
  } catch (e) {
    notice(friendly(e));
  }
}

async function deleteState(name) {
  if (app.busy || !confirmDelete(`the state “${name}”`)) return;
  await app.store.deleteState(name);
  localStorage.removeItem(transcriptKey(name));
  await refreshStates();
  await refreshUsage();
}

async function exportState() {
  if (app.busy || !app.session) return;
  const bytes = await app.session.saveState();
  const a = document.createElement('a');
  a.href = URL.createObjectURL(new Blob([bytes], { type: 'application/octet-stream' }));
  a.download = `gander-state-${app.model.info.fingerprint.slice(0, 8)}-${Date.now()}.gstate`;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
}

async function importState(ev) {
  const file = ev.target.files[0];
  ev.target.value = '';
  if (!file || app.busy) return;
  try {
    // A state (or state-tuning file) is about the state's size; refuse a large file before
    // reading it into memory.
    const cap = 2 * app.model.info.stateBytes + (1 << 20);
    if (file.size > cap) {
      notice(`${file.name} (${mib(file.size)}) is far larger than a state of this model (${mib(app.model.info.stateBytes)}): choose a state exported here or a state-tuning file.`);
      return;
    }
    await app.session.loadState(new Uint8Array(await file.arrayBuffer()));
    const bytes = await app.session.saveState();
    app.transcript = [{ role: 'system', text: `state imported from ${file.name}` }];
    app.context = true;
    app.lastFinish = null;
    asPrimed(bytes, file.name);
    renderOutput();
    notice('');
  } catch (e) {
    notice(friendly(e));
  }
}

/** A model that answers each question from a fresh state (the built-in SQL model) starts every
 *  question from a restored or imported state instead, as from a primed one. */
function asPrimed(bytes, label) {
  if (!(app.profile?.fresh && app.mode === app.profile.mode)) return;
  app.primed = { bytes, tokens: 'saved', label };
  $('use-primed').disabled = false;
  $('use-primed').checked = true;
}

/** Feed a document or examples into a fresh state once; later questions start from a copy. */
async function ingest() {
  if (app.busy || !app.session) return;
  const text = $('ingest-text').value;
  const status = $('ingest-status');
  if (!text.trim()) { status.textContent = 'Paste a document or some examples first.'; return; }
  setBusy(true);
  setStatus('ingesting…', 'busy');
  try {
    const ids = app.model.tokenizer.encode(text);
    await app.session.reset();
    const t0 = performance.now();
    const step = 512;
    for (let i = 0; i < ids.length; i += step) {
      await app.session.prefill(ids.subarray(i, i + step));
      status.textContent = `reading… ${Math.min(ids.length, i + step)} / ${ids.length} tokens`;
    }
    const secs = (performance.now() - t0) / 1000;
    const label = text.trim().split(/\s+/).slice(0, 5).join(' ');
    app.primed = { bytes: await app.session.saveState(), tokens: ids.length, label };
    if (app.store) {
      await app.store.putState(app.model, `primed: ${label}`, app.session);
      localStorage.setItem(transcriptKey(`primed: ${label}`), JSON.stringify({ transcript: [], context: true, lastFinish: null, mode: 'chat' }));
    }
    $('use-primed').disabled = false;
    $('use-primed').checked = true;
    app.transcript = [{ role: 'system', text: `primed with ${ids.length} tokens in ${secs.toFixed(1)} s; each question now starts from this state` }];
    app.context = true;
    app.lastFinish = null;
    renderOutput();
    status.textContent = `Primed state ready (${ids.length} tokens, ${mib(app.model.info.stateBytes)}), also saved as “primed: ${label}”.`;
  } catch (e) {
    status.textContent = friendly(e);
  } finally {
    setBusy(false);
    readyStatus();
    await refreshStates();
  }
}

// ---------- wiring ----------

/** Sampling defaults, mode and example prompt of the built-in model (others: chat defaults). */
function applyProfile() {
  const p = app.profile;
  $('sql-grammar-field').hidden = !p?.sql;
  setMode(p ? p.mode : 'chat', false);
  $('temperature').value = p ? p.temperature : CHAT_DEFAULTS.temperature;
  // The SQL model is evaluated greedy without penalties (tools/sql/eval.py); chat models get the
  // G1 chat sampling.
  $('top-p').value = p ? 1 : CHAT_DEFAULTS.top_p;
  $('presence').value = p ? 0 : CHAT_DEFAULTS.presence_penalty;
  $('frequency').value = p ? 0 : CHAT_DEFAULTS.frequency_penalty;
  $('max-tokens').value = p ? p.maxTokens : 200;
  $('prompt').value = p ? p.example : '';
  $('ingest-text').value = p ? p.ingest : '';
}

function setMode(mode, render = true) {
  app.mode = mode;
  for (const b of document.querySelectorAll('.seg-btn')) b.classList.toggle('active', b.dataset.mode === mode);
  $('prompt').placeholder = mode === 'chat'
    ? 'Type a message… (Enter sends, Shift+Enter for a new line)'
    : app.profile ? 'Table: NAME(col TYPE, ...) / Question: ... / SQL:  (Enter sends, Shift+Enter for a new line)' : 'Beginning of a text to continue… (Enter sends)';
  if (render) renderOutput();
}

async function newConversation() {
  if (app.busy || !app.session) return;
  await app.session.reset();
  app.transcript = [];
  app.context = false;
  app.lastFinish = null;
  $('use-primed').checked = false;
  renderOutput();
}

$('composer').addEventListener('submit', generate);
$('prompt').addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); generate(); }
});
$('stop').addEventListener('click', () => app.abort?.abort());
$('model-select').addEventListener('change', (e) => selectModel(e.target.value));
$('add-model').addEventListener('submit', addModel);
$('save-state').addEventListener('submit', saveState);
$('export-state').addEventListener('click', exportState);
$('import-state').addEventListener('change', importState);
$('ingest').addEventListener('click', ingest);
$('new-conversation').addEventListener('click', newConversation);
for (const b of document.querySelectorAll('.seg-btn')) {
  b.addEventListener('click', () => { if (!app.busy) { setMode(b.dataset.mode); newConversation(); } });
}

async function main() {
  setBusy(true);
  setStatus('starting…', 'busy');
  try {
    app.store = await ModelStore.open();
  } catch (e) {
    notice(`${friendly(e)} Models and states cannot be saved in this window.`);
  }
  const stored = await refreshModels();
  await refreshUsage().catch(() => {});
  const last = localStorage.getItem('gander.model');
  setBusy(false);
  await selectModel(last && stored.some((m) => m.name === last) ? last : BUILTIN.key);
}

window.__gander = app; // for debugging and tests
main();
