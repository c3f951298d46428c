// Small DOM and text helpers that every part of the demo page uses: element lookup by id, the
// status line, the notice bar, byte sizes, list-row buttons, and turning any error the package
// throws into a message a person can act on. No page state lives here.

export const $ = (id) => document.getElementById(id);

/** A byte count as KiB, MiB or GiB ("?" when unknown). */
export function mib(n) {
  if (n == null) return '?';
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(n < 10240 ? 1 : 0)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1048576).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

/** The status line at the top right (data-testid=status); `kind` is '', 'busy', 'ready' or 'error'. */
export function setStatus(text, kind = '') {
  const el = $('status');
  el.textContent = text;
  el.title = text;
  el.className = `status ${kind}`;
}

/** The notice bar above the conversation; an empty text hides it. */
export function notice(text) {
  const el = $('notice');
  el.hidden = !text;
  el.textContent = text || '';
}

/** A message a person can act on, from any error the package throws. */
export function friendly(e) {
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

/** A small button for a row of the model or state list. */
export function button(text, onClick, cls = '') {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = `small ${cls}`;
  b.textContent = text;
  b.addEventListener('click', onClick);
  return b;
}
