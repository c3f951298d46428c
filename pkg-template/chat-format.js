// The G1 chat template and the split of an answer into reasoning and content: the same rules as
// the Rust `gander::chat` (src/chat/), both tested against the hand-written vectors of
// tests/data/chat-template.json. No wasm here, so formatChat works before any model is loaded.
//
// Template (model authors' RWKV7-G1x-templates.txt): every text is cleaned (\r\n -> \n, runs of
// two or more \n -> one \n, trimmed), turns are `System: …`, `User: …`, `Assistant: …` joined by
// \n\n, and the prompt ends where the assistant's answer begins.

import { BadInputError } from './errors.js';

/** Where an answer ends besides end-of-text: the model starting a new turn (never content). */
export const TURN_STOPS = ['\n\nUser:', '\n\nSystem:'];

const LABELS = { system: 'System', user: 'User', assistant: 'Assistant' };
const OPENINGS = { false: 'Assistant:', true: 'Assistant: <think', fake: 'Assistant: <think>\n</think' };

/** A message's text as the template wants it. */
export function cleanText(text) {
  return text.replace(/\r\n/g, '\n').replace(/\n{2,}/g, '\n').trim();
}

/** OpenAI content: a string, or an array of parts of which the text parts are joined. */
function contentText(m, i) {
  const c = m.content;
  if (typeof c === 'string') return c;
  if (Array.isArray(c) && c.every((p) => p && p.type === 'text' && typeof p.text === 'string')) return c.map((p) => p.text).join('');
  throw new BadInputError(`chat: message ${i} needs a string \`content\` (or an array of {type: 'text', text} parts)`);
}

export function checkThink(think, where = 'chat') {
  if (think === undefined) return false;
  if (think === true || think === false || think === 'fake') return think;
  throw new BadInputError(`${where}: option \`think\` must be true, false or 'fake'`);
}

/**
 * The exact prompt text for `messages` ([{role: 'system'|'user'|'assistant', content}], ending with
 * a user message). `think`: false (default) ends with `Assistant:`, true with `Assistant: <think`,
 * 'fake' with `Assistant: <think>\n</think`.
 */
export function formatChat(messages, { think = false } = {}) {
  think = checkThink(think, 'formatChat');
  if (!Array.isArray(messages)) throw new BadInputError('chat: `messages` must be an array of {role, content}');
  if (messages.length === 0) throw new BadInputError('chat: no messages; give at least one user message');
  const turns = messages.map((m, i) => {
    if (!m || typeof m !== 'object') throw new BadInputError(`chat: message ${i} is not an object`);
    const label = Object.hasOwn(LABELS, m.role) ? LABELS[m.role] : undefined;
    if (!label) throw new BadInputError(`chat: unknown role \`${m.role}\` in message ${i} (RWKV G1 models know system, user and assistant)`);
    return `${label}: ${cleanText(contentText(m, i))}`;
  });
  const last = messages[messages.length - 1].role;
  if (last !== 'user') throw new BadInputError(`chat: the last message is a ${last} message; the conversation must end with a user message`);
  turns.push(OPENINGS[String(think)]);
  return turns.join('\n\n');
}

const OPEN = '<think>';
const CLOSE = '</think>';

function partialTag(s, tag) {
  for (let n = tag.length - 1; n > 0; n--) if (s.endsWith(tag.slice(0, n))) return n;
  return 0;
}

/** Splits a streamed answer into reasoning (inside <think>…</think>) and content, holding back
 *  what may still be the start of a tag, and whitespace that may turn out to be trailing. */
export class ReplySplitter {
  constructor(think = false) {
    this.mode = think === true ? 'opening' : think === 'fake' ? 'closingFake' : 'start';
    this.pending = '';
    this.started = { reasoning: false, content: false };
  }

  /** Feed a piece of text; returns {reasoning, content} added. */
  push(text) {
    this.pending += text;
    return this._advance(false);
  }

  /** The answer ended: release what was held back (trailing whitespace dropped). */
  finish() {
    return this._advance(true);
  }

  _emit(out, field, text) {
    const t = this.started[field] ? text : text.trimStart();
    if (t) {
      this.started[field] = true;
      out[field] += t;
    }
  }

  _advance(end) {
    const out = { reasoning: '', content: '' };
    for (;;) {
      if (this.mode === 'opening' || this.mode === 'closingFake') {
        if (!this.pending && !end) return out;
        if (this.pending.startsWith('>')) this.pending = this.pending.slice(1);
        this.mode = this.mode === 'opening' ? 'reasoning' : 'content';
      } else if (this.mode === 'start') {
        const head = this.pending.trimStart();
        if (head.startsWith(OPEN)) {
          this.pending = head.slice(OPEN.length);
          this.mode = 'reasoning';
        } else if (!end && (!head || OPEN.startsWith(head))) {
          return out;
        } else {
          this.mode = 'content';
        }
      } else if (this.mode === 'reasoning') {
        const at = this.pending.indexOf(CLOSE);
        if (at >= 0) {
          this._emit(out, 'reasoning', this.pending.slice(0, at).trimEnd());
          this.pending = this.pending.slice(at + CLOSE.length);
          this.mode = 'content';
          continue;
        }
        const keep = end ? this.pending.length : this.pending.length - partialTag(this.pending, CLOSE);
        const text = this.pending.slice(0, keep).trimEnd();
        this._emit(out, 'reasoning', text);
        this.pending = end ? '' : this.pending.slice(text.length);
        return out;
      } else {
        const text = this.pending.trimEnd();
        this._emit(out, 'content', text);
        this.pending = end ? '' : this.pending.slice(text.length);
        return out;
      }
    }
  }
}
