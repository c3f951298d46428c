// The package's chat template and reply splitter (pkg-template/chat-format.js, pure JS, no wasm)
// against the hand-written vectors that the Rust tests (tests/chat.rs) also read.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { formatChat, ReplySplitter } from '../../pkg-template/chat-format.js';

const v = JSON.parse(readFileSync(new URL('../data/chat-template.json', import.meta.url), 'utf8'));

test('formatChat matches the G1 template', () => {
  for (const c of v.prompts) assert.equal(formatChat(c.messages, { think: c.think }), c.prompt, c.name);
});

test('formatChat refuses bad conversations with BAD_INPUT naming the problem', () => {
  for (const c of v.bad) {
    assert.throws(() => formatChat(c.messages), (e) => e.code === 'BAD_INPUT' && e.message.includes(c.error), c.name);
  }
  assert.throws(() => formatChat([{ role: 'user', content: 'x' }], { think: 'yes' }), (e) => e.code === 'BAD_INPUT' && e.message.includes('think'));
  assert.throws(() => formatChat([{ role: 'user', content: 42 }]), (e) => e.code === 'BAD_INPUT' && e.message.includes('content'));
  assert.equal(formatChat([{ role: 'user', content: [{ type: 'text', text: 'a' }, { type: 'text', text: 'b' }] }]), 'User: ab\n\nAssistant:');
});

test('replies split into reasoning and content, whatever the pieces', () => {
  for (const c of v.replies) {
    const whole = c.chunks.join('');
    for (const pieces of [c.chunks, [...whole], whole.match(/[\s\S]{1,2}/g), whole.match(/[\s\S]{1,3}/g)]) {
      const s = new ReplySplitter(c.think);
      let reasoning = '';
      let content = '';
      for (const p of [...pieces.map((x) => s.push(x)), s.finish()]) {
        reasoning += p.reasoning;
        content += p.content;
      }
      assert.equal(content, c.content, c.name);
      assert.equal(reasoning, c.reasoning, c.name);
    }
  }
});
