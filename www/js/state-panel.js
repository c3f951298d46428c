// The State panel: what RWKV's fixed-size state allows. Save the conversation's state (with its
// transcript, kept in localStorage) to the store and restore it after a reload, which branches
// from it; delete saved states; export or import a state file (also an RWKV state-tuning file);
// and prime a state once with a document or examples ("learning at test time") so that each
// question starts from a copy of it.

import { chatMessages, renderOutput, setMode } from './conversation.js';
import { readyStatus, setBusy } from './page-state.js';
import { confirmDelete } from './settings.js';
import { refreshUsage } from './storage.js';
import { $, button, friendly, mib, notice, setStatus } from './ui.js';

const transcriptKey = (page, name) => `gander.transcript.${page.model.info.fingerprint}.${name}`;

/** The list of the loaded model's saved states, newest first. */
export async function refreshStates(page) {
  const ul = $('state-list');
  ul.replaceChildren();
  const states = page.store && page.model ? await page.store.listStates(page.model).catch(() => []) : [];
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
    li.append(n, mt, button('Restore', () => restoreState(page, s.name)), button('Delete', () => deleteState(page, s.name), 'danger'));
    ul.append(li);
  }
}

export async function saveState(page, ev) {
  ev.preventDefault();
  if (page.busy || !page.session || !page.store) return;
  const name = $('state-name').value.trim() || `conversation ${new Date().toLocaleString()}`;
  try {
    // A chat through the API keeps its state in the model's conversation cache, not in this
    // page's session: save that state, with the text it has read, so a restore continues it.
    const msgs = chatMessages(page);
    const conv = page.mode === 'chat' && !page.context && msgs.at(-1)?.role === 'assistant'
      ? await page.model.chat.saveConversation(msgs, { think: $('think').checked }) : null;
    let chat = null;
    if (conv) {
      const s = page.model.session();
      try {
        await s.loadState(conv.state);
        await page.store.putState(page.model, name, s);
      } finally { await s.dispose(); }
      chat = { text: conv.text, ids: conv.ids };
    } else {
      await page.store.putState(page.model, name, page.session);
    }
    localStorage.setItem(transcriptKey(page, name), JSON.stringify({ transcript: page.transcript, context: page.context, lastFinish: page.lastFinish, mode: page.mode, chat }));
    $('state-name').value = '';
    setStatus(`ready · saved state “${name}”`, 'ready');
  } catch (e) {
    notice(friendly(e));
  }
  await refreshStates(page);
  await refreshUsage(page);
}

async function restoreState(page, name) {
  if (page.busy) return;
  try {
    const bytes = await page.store.getState(page.model, name);
    if (!bytes) throw new Error(`state “${name}” is gone`);
    const saved = JSON.parse(localStorage.getItem(transcriptKey(page, name)) || 'null');
    if (saved?.chat) {
      // A chat-API conversation: back into the model's conversation cache, so the next turn
      // reads only its new text.
      await page.model.chat.restoreConversation({ text: saved.chat.text, ids: saved.chat.ids, state: bytes });
      await page.session.reset();
    } else {
      await page.session.loadState(bytes);
    }
    page.transcript = saved ? saved.transcript : [];
    page.context = !saved?.chat;
    // A loaded state has no "last logits": the next turn always starts with a prompt.
    page.lastFinish = saved && saved.lastFinish === 'stop' ? 'stop' : null;
    if (saved && saved.mode) setMode(page, saved.mode, false);
    page.transcript.push({ role: 'system', text: `restored “${name}” (the saved state is unchanged: continuing here is a branch)` });
    $('use-primed').checked = false;
    asPrimed(page, bytes, name);
    renderOutput(page);
    readyStatus(page);
  } catch (e) {
    notice(friendly(e));
  }
}

async function deleteState(page, name) {
  if (page.busy || !confirmDelete(`the state “${name}”`)) return;
  await page.store.deleteState(page.model, name);
  localStorage.removeItem(transcriptKey(page, name));
  await refreshStates(page);
  await refreshUsage(page);
}

export async function exportState(page) {
  if (page.busy || !page.session) return;
  const bytes = await page.session.saveState();
  const a = document.createElement('a');
  a.href = URL.createObjectURL(new Blob([bytes], { type: 'application/octet-stream' }));
  a.download = `gander-state-${page.model.info.fingerprint.slice(0, 8)}-${Date.now()}.gstate`;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
}

export async function importState(page, ev) {
  const file = ev.target.files[0];
  ev.target.value = '';
  if (!file || page.busy) return;
  try {
    // A state (or state-tuning file) is about the state's size; refuse a large file before
    // reading it into memory.
    const cap = 2 * page.model.info.stateBytes + (1 << 20);
    if (file.size > cap) {
      notice(`${file.name} (${mib(file.size)}) is far larger than a state of this model (${mib(page.model.info.stateBytes)}): choose a state exported here or a state-tuning file.`);
      return;
    }
    await page.session.loadState(new Uint8Array(await file.arrayBuffer()));
    const bytes = await page.session.saveState();
    page.transcript = [{ role: 'system', text: `state imported from ${file.name}` }];
    page.context = true;
    page.lastFinish = null;
    asPrimed(page, bytes, file.name);
    renderOutput(page);
    notice('');
  } catch (e) {
    notice(friendly(e));
  }
}

/** A model that answers each question from a fresh state (the built-in SQL model) starts every
 *  question from a restored or imported state instead, as from a primed one. */
function asPrimed(page, bytes, label) {
  if (!(page.profile?.fresh && page.mode === page.profile.mode)) return;
  page.primed = { bytes, tokens: 'saved', label };
  $('use-primed').disabled = false;
  $('use-primed').checked = true;
}

/** Feed a document or examples into a fresh state once; later questions start from a copy. */
export async function ingest(page) {
  if (page.busy || !page.session) return;
  const text = $('ingest-text').value;
  const status = $('ingest-status');
  if (!text.trim()) { status.textContent = 'Paste a document or some examples first.'; return; }
  setBusy(page, true);
  setStatus('ingesting…', 'busy');
  try {
    const ids = page.model.tokenizer.encode(text);
    await page.session.reset();
    const t0 = performance.now();
    const step = 512;
    for (let i = 0; i < ids.length; i += step) {
      await page.session.prefill(ids.subarray(i, i + step));
      status.textContent = `reading… ${Math.min(ids.length, i + step)} / ${ids.length} tokens`;
    }
    const secs = (performance.now() - t0) / 1000;
    const label = text.trim().split(/\s+/).slice(0, 5).join(' ');
    page.primed = { bytes: await page.session.saveState(), tokens: ids.length, label, text };
    if (page.store) {
      await page.store.putState(page.model, `primed: ${label}`, page.session);
      localStorage.setItem(transcriptKey(page, `primed: ${label}`), JSON.stringify({ transcript: [], context: true, lastFinish: null, mode: 'chat' }));
    }
    $('use-primed').disabled = false;
    $('use-primed').checked = true;
    if (page.profile?.afterIngest && text === page.profile.ingest) $('prompt').value = page.profile.afterIngest;
    page.transcript = [{ role: 'system', text: `primed with ${ids.length} tokens in ${secs.toFixed(1)} s; each question now starts from this state` }];
    page.context = true;
    page.lastFinish = null;
    renderOutput(page);
    status.textContent = `Primed state ready (${ids.length} tokens, ${mib(page.model.info.stateBytes)}), also saved as “primed: ${label}”.`;
  } catch (e) {
    status.textContent = friendly(e);
  } finally {
    setBusy(page, false);
    readyStatus(page);
    await refreshStates(page);
  }
}
