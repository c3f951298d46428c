// The browser store (IndexedDB, through the package's ModelStore) as the page sees it: opening
// it at start (a page without storage still runs the built-in model) and the usage line under
// Models, which both the model and the state panels refresh after they write to the store.

import { ModelStore } from '../pkg/index.js';
import { $, friendly, mib, notice } from './ui.js';

/** Opens the store into `page.store`; says so in the notice bar when it cannot. */
export async function openStore(page) {
  try {
    page.store = await ModelStore.open();
  } catch (e) {
    notice(`${friendly(e)} Models and states cannot be saved in this window.`);
  }
}

export async function refreshUsage(page) {
  if (!page.store) { $('storage-usage').textContent = 'Storage: not available in this browser window.'; return; }
  const u = await page.store.usage();
  $('storage-usage').textContent = `Storage: models ${mib(u.models)} · this site uses ${mib(u.usage)} of ${mib(u.quota)}${u.persisted ? ' · persistent' : ''}`;
}
