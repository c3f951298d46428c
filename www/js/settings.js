// The page's settings: what the URL asks for (?backend=auto|webgpu|cpu, ?worker=0, ?confirm=0)
// and the Sampling panel (read into generation options, and reset to a model's defaults when one
// loads). Read once from the URL at start; the panel's inputs are the only other source.

import { CHAT_DEFAULTS } from '../pkg/index.js';
import { $ } from './ui.js';

const params = new URLSearchParams(location.search);

/** The backend to ask Gander.load for: ?backend=auto|webgpu|cpu, default auto. */
export const backendPref = ['auto', 'webgpu', 'cpu'].includes(params.get('backend')) ? params.get('backend') : 'auto';

/** Whether the engine runs in a Web Worker: yes unless ?worker=0. */
export const useWorker = params.get('worker') !== '0';

/** Asks before deleting a model or a state. */
export function confirmDelete(what) {
  // Tests and scripted use can pre-approve with ?confirm=0.
  return params.get('confirm') === '0' || window.confirm(`Delete ${what}?`);
}

/** The Sampling panel as generation options (a random seed when none is given). */
export function sampling() {
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

/** The Sampling panel's values for a model: its profile's (the built-in model), else the chat
 *  defaults. */
export function applySamplingDefaults(p) {
  $('temperature').value = p ? p.temperature : CHAT_DEFAULTS.temperature;
  // The SQL model is evaluated greedy without penalties (tools/sql/eval.py); chat models get the
  // G1 chat sampling.
  $('top-p').value = p ? 1 : CHAT_DEFAULTS.top_p;
  $('presence').value = p ? 0 : CHAT_DEFAULTS.presence_penalty;
  $('frequency').value = p ? 0 : CHAT_DEFAULTS.frequency_penalty;
  $('max-tokens').value = p ? p.maxTokens : 200;
}
