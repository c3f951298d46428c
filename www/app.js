// The Gander demo page: loads the built-in model (or one stored in IndexedDB), chats or completes
// text with streaming output, keeps models and states in the browser, and shows what RWKV's
// fixed-size state allows: save/restore across reloads, branch, export/import, and priming a
// state once with a document or examples ("learning at test time").
//
// Everything goes through the public package API (./pkg/index.js), as any web app would use it.
// URL parameters: ?backend=auto|webgpu|cpu (default auto), ?worker=0 to run on the page's thread.
// Test hooks (stable): data-testid = prompt, generate, output, status (says "ready"), stop.
//
// This file is the entry point and only wires the page: it creates the shared page state
// (js/page-state.js), binds the controls to the modules that do the work, and loads the first
// model. The modules, one job each (plain ES modules, no bundler):
//   js/ui.js             DOM and text helpers, friendly error messages
//   js/settings.js       URL parameters and the Sampling panel
//   js/builtin-model.js  the built-in text-to-SQL model and how the page drives it
//   js/page-state.js     the shared state object, the busy lock, the "ready" status line
//   js/engine-info.js    the stats line and the "About this engine" panel
//   js/storage.js        opening the browser store, the storage usage line
//   js/conversation.js   the transcript, chat/completion mode, generating a turn
//   js/model-manager.js  the Models panel: pick, load, add and delete models
//   js/state-panel.js    the State panel: save/restore/delete, export/import, priming

import { BUILTIN } from './js/builtin-model.js';
import { generate, newConversation, setMode } from './js/conversation.js';
import { addModel, inspectChoice, refreshModels, selectModel } from './js/model-manager.js';
import { createPageState, setBusy } from './js/page-state.js';
import { exportState, importState, ingest, saveState } from './js/state-panel.js';
import { openStore, refreshUsage } from './js/storage.js';
import { $, setStatus } from './js/ui.js';

const page = createPageState();

$('composer').addEventListener('submit', (e) => generate(page, e));
$('prompt').addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); generate(page); }
});
$('stop').addEventListener('click', () => page.abort?.abort());
$('model-select').addEventListener('change', (e) => selectModel(page, e.target.value));
$('add-model').addEventListener('submit', (e) => addModel(page, e));
for (const id of ['model-file', 'model-url', 'model-quant']) $(id).addEventListener('change', () => inspectChoice(page));
$('save-state').addEventListener('submit', (e) => saveState(page, e));
$('export-state').addEventListener('click', () => exportState(page));
$('import-state').addEventListener('change', (e) => importState(page, e));
$('ingest').addEventListener('click', () => ingest(page));
$('new-conversation').addEventListener('click', () => newConversation(page));
for (const b of document.querySelectorAll('.seg-btn')) {
  b.addEventListener('click', () => { if (!page.busy) { setMode(page, b.dataset.mode); newConversation(page); } });
}

async function main() {
  setBusy(page, true);
  setStatus('starting…', 'busy');
  await openStore(page);
  const stored = await refreshModels(page);
  await refreshUsage(page).catch(() => {});
  const last = localStorage.getItem('gander.model');
  setBusy(page, false);
  await selectModel(page, last && stored.some((m) => m.name === last) ? last : BUILTIN.key);
}

window.__gander = page; // for debugging and tests
main();
