// The Models panel and model loading: the model picker and the list of stored models (the
// built-in one first), loading a model (which starts a new conversation and applies the model's
// profile: mode, sampling defaults, example prompt), adding a model from a file or a URL into
// the browser store (converted to the chosen quantization), and deleting one. The built-in
// model loads by URL through the package's cache (a reload reads it from IndexedDB).

import { Gander } from '../pkg/index.js';
import { BUILTIN, labelOf } from './builtin-model.js';
import { renderOutput, setMode } from './conversation.js';
import { showInfo } from './engine-info.js';
import { readyStatus, setBusy } from './page-state.js';
import { applySamplingDefaults, backendPref, confirmDelete, useWorker } from './settings.js';
import { refreshStates } from './state-panel.js';
import { refreshUsage } from './storage.js';
import { $, button, friendly, mib, notice, setStatus } from './ui.js';

/** Files up to this size are converted whole in a worker; bigger ones stream on the page. */
const WORKER_CONVERT_MAX = 256 * 1024 * 1024;

/** The picker and the list of models; resolves to the stored models. */
export async function refreshModels(page) {
  const all = page.store ? await page.store.list().catch(() => []) : [];
  // Copies that Gander.load keeps of URLs (`url:…`, the built-in model's among them) are a cache,
  // not models the user added: the built-in row says whether its copy is stored.
  const list = all.filter((m) => !m.name.startsWith('url:'));
  const builtinCached = all.some((m) => m.name === `url:${BUILTIN.url}`);
  const sel = $('model-select');
  sel.replaceChildren(new Option(BUILTIN.label, BUILTIN.key));
  for (const m of list) sel.add(new Option(`${m.name} · ${m.quant} · ${mib(m.size)}`, m.name));
  sel.value = page.key || BUILTIN.key;
  const ul = $('model-list');
  ul.replaceChildren();
  const row = (key, name, meta, deletable) => {
    const li = document.createElement('li');
    if (key === page.key) li.className = 'current';
    const n = document.createElement('span');
    n.className = 'name';
    n.textContent = name;
    n.title = name;
    const mt = document.createElement('span');
    mt.className = 'meta';
    mt.textContent = meta;
    li.append(n, mt);
    if (key !== page.key) li.append(button('Use', () => selectModel(page, key)));
    if (deletable) li.append(button('Delete', () => deleteModel(page, key), 'danger'));
    li.dataset.model = key;
    ul.append(li);
  };
  row(BUILTIN.key, BUILTIN.label, `int8 · ${BUILTIN.size}${builtinCached ? ' · cached' : ''}`, false);
  for (const m of list) row(m.name, m.name, `${m.quant} · ${mib(m.size)}`, true);
  return list;
}

/** Loads a model ('builtin' or a stored model's name); falls back to the built-in one when a
 *  stored model cannot load. */
export async function selectModel(page, key) {
  if (page.busy) return;
  setBusy(page, true);
  notice('');
  const label = labelOf(key);
  setStatus(`loading ${label}…`, 'busy');
  if (page.model) {
    await page.model.dispose().catch(() => {});
    page.model = page.session = null;
  }
  try {
    const source = key === BUILTIN.key ? BUILTIN.url : { store: key };
    page.model = await Gander.load(source, {
      backend: backendPref,
      worker: useWorker,
      onProgress: (p) => setStatus(p.phase === 'cache' ? `loading ${label} from the browser's cache…`
        : `loading ${label}… ${p.phase === 'download' ? 'downloading ' : ''}${Math.round(p.fraction * 100)}%`, 'busy'),
    });
  } catch (e) {
    setBusy(page, false);
    setStatus(`could not load ${label}`, 'error');
    notice(friendly(e));
    if (key !== BUILTIN.key) return selectModel(page, BUILTIN.key);
    return;
  }
  page.key = key;
  page.session = page.model.session();
  localStorage.setItem('gander.model', key);
  page.transcript = [];
  page.context = false;
  page.lastFinish = null;
  page.primed = null;
  $('use-primed').checked = false;
  $('use-primed').disabled = true;
  $('ingest-status').textContent = '';
  page.profile = key === BUILTIN.key ? BUILTIN.profile : null;
  applyProfile(page);
  renderOutput(page);
  showInfo(page);
  setBusy(page, false);
  readyStatus(page);
  const notes = [];
  if (page.model.info.backend === 'cpu' && backendPref !== 'cpu') notes.push(`${page.model.info.reason}.`);
  if (key === BUILTIN.key) notes.push(BUILTIN.note);
  if (!page.model.info.tokenizer) notes.push('This model has a vocabulary Gander has no tokenizer for, so it cannot take text.');
  notice(notes.join(' '));
  await refreshModels(page);
  await refreshStates(page);
}

/** Sampling defaults, mode and example prompt of the built-in model (others: chat defaults). */
function applyProfile(page) {
  const p = page.profile;
  $('sql-grammar-field').hidden = !p?.sql;
  setMode(page, p ? p.mode : 'chat', false);
  applySamplingDefaults(p);
  $('prompt').value = p ? p.example : '';
  $('ingest-text').value = p ? p.ingest : '';
}

async function deleteModel(page, name) {
  if (page.busy || !confirmDelete(`the model “${name}”`)) return;
  await page.store.delete(name);
  await refreshModels(page);
  await refreshUsage(page);
}

/** Before "Add": what the chosen file or URL holds and what it would cost here, read from its
 *  headers alone (Gander.inspect: a few range requests for a URL). */
export async function inspectChoice(page) {
  const file = $('model-file').files[0];
  const url = $('model-url').value.trim();
  const out = $('add-inspect');
  const source = file || url;
  const ticket = (page.inspectTicket = (page.inspectTicket || 0) + 1);
  if (!source) { out.textContent = ''; return; }
  out.textContent = 'Reading the headers…';
  try {
    const r = await Gander.inspect(source);
    if (ticket !== page.inspectTicket) return;
    const c = r.config;
    const quant = $('model-quant').value;
    const q = r.quants.find((x) => x.quant === quant);
    const yes = (v) => (v === null ? 'unknown' : v ? 'yes' : 'no');
    const cost = q
      ? `As ${quant}: ${mib(q.fileBytes)} stored, ${mib(q.memoryBytes)} in memory; fits storage: ${yes(q.fits.store)}, CPU (wasm): ${yes(q.fits.cpu)}, WebGPU: ${yes(q.fits.webgpu)}.`
      : `As is: ${mib(r.fileBytes)}.`;
    out.textContent = `RWKV-7, ${c.layers} layers × ${c.embd}, ${(r.params / 1e6).toFixed(1)}M parameters, ${r.stored}, ${r.layout} layout, vocabulary ${c.vocab}; state ${mib(r.stateBytes)}. ${cost} (Read ${mib(r.fetchedBytes)} of ${mib(r.fileBytes)} to tell.)`;
  } catch (e) {
    if (ticket === page.inspectTicket) out.textContent = friendly(e);
  }
}

/** The Add form: store a model from a file or a URL, converted to the chosen quantization. */
export async function addModel(page, ev) {
  ev.preventDefault();
  if (page.busy) return;
  const file = $('model-file').files[0];
  const url = $('model-url').value.trim();
  const status = $('add-status');
  if (!page.store) { status.textContent = 'Storage is not available in this window.'; return; }
  if (!file && !url) { status.textContent = 'Choose a file or give a URL first.'; return; }
  const quant = $('model-quant').value || undefined;
  const base = (file ? file.name : url.split('/').pop() || 'model').replace(/\.(pth|safetensors|bin|st|gguf)$/i, '') + (quant ? `-${quant}` : '');
  const taken = new Set((await page.store.list()).map((m) => m.name));
  let name = base;
  for (let i = 2; taken.has(name); i++) name = `${base} (${i})`;
  const bar = $('add-progress');
  bar.hidden = false;
  bar.value = 0;
  const phases = { download: 'downloading', convert: `converting to ${quant}`, store: 'storing' };
  const ac = new AbortController();
  page.abort = ac;
  setBusy(page, true);
  try {
    await page.store.put(name, file || url, {
      quant,
      // A small file converts whole in a worker (the page never waits); a big file or a URL
      // streams tensor by tensor on this thread, reading by ranges, so it fits in memory.
      worker: Boolean(file) && file.size < WORKER_CONVERT_MAX,
      signal: ac.signal,
      onProgress: (p) => { bar.value = p.fraction; status.textContent = `${phases[p.phase] || p.phase}… ${Math.round(p.fraction * 100)}%`; },
    });
    status.textContent = `Added “${name}”.`;
    $('model-file').value = '';
    $('model-url').value = '';
    $('add-inspect').textContent = '';
  } catch (e) {
    status.textContent = e.code === 'ABORTED' ? 'Stopped; nothing was stored.' : friendly(e);
  } finally {
    page.abort = null;
    bar.hidden = true;
    setBusy(page, false);
    await refreshModels(page);
    await refreshUsage(page);
  }
}
