// The page's shared state, one plain object that app.js creates and passes to each module (and
// exposes as window.__gander for debugging), with the two things every panel does with it: take
// or release the busy lock (which disables the controls that must not run during a generation,
// a load or a store write) and show the "ready" status line.

import { labelOf } from './builtin-model.js';
import { $, setStatus } from './ui.js';

/** A fresh page state. Who writes what: model-manager.js loads `model`/`session`/`key`/
 *  `profile`; conversation.js and state-panel.js change the conversation fields. */
export function createPageState() {
  return {
    store: null, // the ModelStore (IndexedDB), or null when storage is not available
    model: null, // the loaded Gander model
    session: null, // its session: the page's own state for completion and primed chat
    key: null, // the loaded model: 'builtin' or a stored model's name
    profile: null, // how the page drives the loaded model (builtin-model.js), or null
    busy: false, // a load, generation or store write is running
    abort: null, // the AbortController of what runs now, when it can be stopped
    mode: 'chat', // 'chat' or 'complete'
    transcript: [], // {role: 'user'|'bot'|'system'|'completion', text, given?}
    context: false, // the session's state holds text already
    lastFinish: null, // why the session's last generation ended
    lastChat: null, // usage of the last chat-API turn (for the stats line), or null
    primed: null, // {bytes, tokens, label}
  };
}

export function setBusy(page, on) {
  page.busy = on;
  $('generate').disabled = on || !page.session;
  $('stop').disabled = !on || !page.abort;
  for (const id of ['model-select', 'new-conversation', 'save-state-btn', 'export-state', 'ingest', 'add-model-btn']) $(id).disabled = on;
  $('import-state').disabled = on;
}

export function readyStatus(page) {
  const i = page.model.info;
  const where = i.backend === 'webgpu' ? `WebGPU${i.adapter ? ` (${i.adapter})` : ''}` : 'CPU (wasm SIMD)';
  setStatus(`ready · ${labelOf(page.key)} · ${where}`, 'ready');
}
