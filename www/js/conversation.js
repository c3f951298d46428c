// The conversation view: the transcript in #output, the Chat/Completion mode, and one turn of
// generation with streaming output and stop. Chat goes through the package's OpenAI-shaped chat
// API (the model keeps the conversation's state); completion, SQL (the built-in model's profile,
// optionally under the table's grammar) and chat from a primed state stream from the page's own
// session.

import { TURN_STOPS, formatChat, sqlTable } from '../pkg/index.js';
import { showStats } from './engine-info.js';
import { readyStatus, setBusy } from './page-state.js';
import { sampling } from './settings.js';
import { $, friendly, notice, setStatus } from './ui.js';

export function renderOutput(page) {
  const out = $('output');
  out.replaceChildren();
  if (!page.transcript.length) {
    const p = document.createElement('p');
    p.className = 'empty';
    p.textContent = page.mode === 'chat'
      ? 'Say something. The conversation lives in the model\'s state: each turn feeds only the new text.'
      : 'Type the beginning of a text; the model continues it.';
    out.append(p);
    return;
  }
  for (const m of page.transcript) out.append(messageNode(m));
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

function addMessage(page, m) {
  const out = $('output');
  out.querySelector('.empty')?.remove();
  page.transcript.push(m);
  const node = messageNode(m);
  out.append(node);
  out.scrollTop = out.scrollHeight;
  return node;
}

export function setMode(page, mode, render = true) {
  page.mode = mode;
  for (const b of document.querySelectorAll('.seg-btn')) b.classList.toggle('active', b.dataset.mode === mode);
  $('prompt').placeholder = mode === 'chat'
    ? 'Type a message… (Enter sends, Shift+Enter for a new line)'
    : page.profile ? 'Table: NAME(col TYPE, ...) / Question: ... / SQL:  (Enter sends, Shift+Enter for a new line)' : 'Beginning of a text to continue… (Enter sends)';
  if (render) renderOutput(page);
}

export async function newConversation(page) {
  if (page.busy || !page.session) return;
  await page.session.reset();
  page.transcript = [];
  page.context = false;
  page.lastFinish = null;
  $('use-primed').checked = false;
  renderOutput(page);
}

/** The transcript as chat messages (notes such as "stopped" left out). */
export function chatMessages(page) {
  return page.transcript
    .filter((m) => (m.role === 'user' || m.role === 'bot') && !m.pending)
    .map((m) => ({ role: m.role === 'bot' ? 'assistant' : 'user', content: m.text }));
}

/** One turn from the prompt box (the composer's submit, or Enter in the prompt). */
export async function generate(page, ev) {
  ev?.preventDefault();
  if (page.busy || !page.session) return;
  const text = $('prompt').value;
  if (!text.trim()) { $('prompt').focus(); return; }
  const opts = sampling();
  page.lastChat = null;
  let prompt;
  let node;
  const ac = new AbortController();
  page.abort = ac;
  setBusy(page, true);
  setStatus('generating…', 'busy');
  try {
    if ($('use-primed').checked && page.primed) {
      await page.session.loadState(page.primed.bytes);
      page.transcript = [{ role: 'system', text: `started from the primed state (${page.primed.tokens} tokens of “${page.primed.label}”)` }];
      renderOutput(page);
      page.context = true;
      page.lastFinish = null;
    } else if (page.profile?.fresh && page.mode === page.profile.mode && page.context) {
      // This model answers each question on its own: start from an empty state.
      await page.session.reset();
      page.context = false;
      page.lastFinish = null;
    }
    if (page.mode === 'chat' && !($('use-primed').checked && page.primed)) {
      await chat(page, text.trim(), opts, ac);
    } else if (page.mode === 'chat') {
      // A primed state: the conversation continues in this page's session, as the G1 template
      // (formatChat) renders it after the primed text.
      const messages = [...chatMessages(page), { role: 'user', content: text.trim() }];
      prompt = `${page.context ? '\n\n' : ''}${formatChat(messages.slice(-1))}`;
      opts.stop = [...TURN_STOPS];
      addMessage(page, { role: 'user', text: text.trim() });
      const m = { role: 'bot', text: '' };
      node = addMessage(page, m);
      node.classList.add('streaming');
      $('prompt').value = '';
      await stream(page, prompt, opts, ac, (t) => { m.text += t; node.textContent = m.text.trimStart(); });
    } else {
      prompt = page.context && page.profile?.fresh ? afterPrimed(page, text) : text;
      if (page.profile && page.mode === page.profile.mode) {
        opts.stop = page.profile.stop;
        const g = page.profile.sql && $('sql-grammar').checked ? sqlGrammarFor(page, text) : null;
        if (g) opts.grammar = g;
      }
      const m = { role: 'completion', given: text, text: '' };
      node = addMessage(page, m);
      const tail = document.createTextNode('');
      node.append(tail);
      node.classList.add('streaming');
      await stream(page, prompt, opts, ac, (t) => { m.text += t; tail.data += t; });
    }
    readyStatus(page);
  } catch (e) {
    if (e.code === 'DEVICE_LOST') notice(friendly(e));
    setStatus(friendly(e), 'error');
    if (page.model) setTimeout(() => page.busy || readyStatus(page), 4000);
  } finally {
    node?.classList.remove('streaming');
    page.abort = null;
    setBusy(page, false);
    showStats(page);
  }
}

/** What is fed after a primed state. For the text-to-SQL model the state holds the `Table:` line
 *  and solved examples (the primed-prompt contract, issue 19: `Table: …` once, then `Question: …
 *  SQL: …;` each), so a question that repeats the primed table's line is fed without it, as
 *  `gander sql --state` and `model.sql(…, { state })` do. A state restored from the store has no
 *  text: the question goes as typed (after a newline for other models). */
function afterPrimed(page, text) {
  const primed = page.primed?.text;
  let t = text;
  const first = t.split('\n', 1)[0].trim();
  const primedTable = primed?.split('\n').find((l) => l.startsWith('Table:'))?.trim();
  if (page.profile?.sql && first.startsWith('Table:') && first === primedTable) t = t.includes('\n') ? t.slice(t.indexOf('\n') + 1) : '';
  if (primed === undefined) return page.profile?.sql ? t : `\n${t}`;
  return primed.endsWith('\n') ? t : `\n${t}`;
}

/** The SQL grammar of the table the question is about: the prompt's last `Table:` line, or the
 *  primed text's when the question comes without one; its text literals are runs of the last
 *  `Question:` line's words, as `gander sql` and `model.sql` do. */
function sqlGrammarFor(page, text) {
  const last = (t, head) => t.split('\n').filter((l) => l.startsWith(head)).pop();
  const line = last(text, 'Table:') ?? ($('use-primed').checked && page.primed ? last(page.primed.text ?? $('ingest-text').value, 'Table:') : undefined);
  const question = last(text, 'Question:')?.slice('Question:'.length).trim();
  return line ? sqlTable(line, question || undefined).grammar : null;
}

/** One chat turn through the package's OpenAI-shaped API: the model keeps the conversation's
 *  state, so only the new turn is read (`usage.cached_tokens` says how much was not). */
async function chat(page, text, opts, ac) {
  const messages = [...chatMessages(page), { role: 'user', content: text }];
  addMessage(page, { role: 'user', text });
  const m = { role: 'bot', text: '', pending: true };
  const node = addMessage(page, m);
  node.classList.add('streaming');
  $('prompt').value = '';
  const out = $('output');
  let details = null;
  const body = document.createElement('span');
  node.replaceChildren(body);
  page.lastChat = null;
  try {
    const chunks = await page.model.chat.completions.create({
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
      if (c.usage) page.lastChat = c.usage;
      if (c.choices[0].finish_reason === 'abort') addMessage(page, { role: 'system', text: 'stopped' });
      if (atBottom) out.scrollTop = out.scrollHeight;
    }
  } finally {
    m.pending = false;
    node.classList.remove('streaming');
  }
}

/** Streams a generation from the page's session into `onText`; a stop adds a "stopped" note. */
async function stream(page, prompt, opts, ac, onText) {
  const out = $('output');
  try {
    for await (const ev of page.session.generate(prompt, { ...opts, signal: ac.signal })) {
      const atBottom = out.scrollHeight - out.scrollTop - out.clientHeight < 40;
      onText(ev.text);
      if (atBottom) out.scrollTop = out.scrollHeight;
    }
  } catch (e) {
    if (e.code !== 'ABORTED') throw e;
    addMessage(page, { role: 'system', text: 'stopped' });
  } finally {
    page.context = true;
    page.lastFinish = page.session.lastGeneration?.finish ?? null;
  }
}
