// model.chat.completions.create in headless Chromium (the built pkg/, no bundler), on the page
// and in the worker, on WebGPU (SwiftShader) and the wasm CPU path: response and chunk shapes,
// conversations that feed only their new tokens, BUSY on overlapping calls, abort mid-stream,
// reclaimed sessions, and a conversation state that survives a reload. Needs `make pkg` first.
//
// CHAT_PREFIX_TOL: the logits after a reused prefix against a fresh run over the same ids, as
// max|d|/std. Both are fp32 forwards of one model on one backend that differ only in where the
// sequence is cut into calls; the project's fp32 bound (FP32_TOL, tests/common, 1e-5 from the
// official package) covers exactly that difference (sequence vs token-by-token mode).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer } from '../../tools/serve.mjs';
import { launch, openPage } from './browser.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CHAT_PREFIX_TOL = 1e-5;
const squash = (t) => t.replace(/\s+/g, '');

let server;
let browser;
let page;
let errors;

before(async () => {
  server = await startServer({ root: ROOT, mounts: { '/shared': join(ROOT, '..', 'shared') } });
  browser = await launch({ gc: true });
  ({ page, errors } = await openPage(browser.ctx, `${server.url}tests/e2e/chat.html`));
});

after(async () => {
  await browser?.close();
  await server?.close();
});

const run = (fn, ...args) => page.evaluate(([f, a]) => window.scenario[f](...a), [fn, args]);

for (const worker of [false, true]) {
  const mode = worker ? 'worker' : 'page';
  for (const backend of ['cpu', 'webgpu']) {
    // SwiftShader runs a few tokens a second: fewer and shorter turns there.
    const gpu = backend === 'webgpu';
    const maxTokens = gpu ? 3 : 12;
    test(`${mode}/${backend}: chat.completions.create returns OpenAI-shaped responses and chunks`, async () => {
      const r = await run('shapes', { backend, worker, maxTokens });
      assert.equal(r.backend, backend);
      assert.equal(r.prompt, 'System: Be brief.\n\nUser: What is a goose?\n\nAssistant:');
      const { res, chunks } = r;
      assert.match(res.id, /^chatcmpl-[0-9a-f]{24}$/);
      assert.equal(res.object, 'chat.completion');
      assert.ok(Number.isInteger(res.created));
      assert.equal(typeof res.model, 'string');
      assert.equal(res.choices.length, 1);
      assert.equal(res.choices[0].index, 0);
      assert.equal(res.choices[0].message.role, 'assistant');
      assert.equal(typeof res.choices[0].message.content, 'string');
      assert.ok(['stop', 'length'].includes(res.choices[0].finish_reason));
      const u = res.usage;
      assert.equal(u.total_tokens, u.prompt_tokens + u.completion_tokens);
      assert.equal(u.prompt_tokens, r.prompt.length, 'byte-level model: one token per byte');
      assert.ok(u.completion_tokens > 0 && u.completion_tokens <= maxTokens);
      assert.equal(u.cached_tokens, 0);
      for (const c of chunks) {
        assert.equal(c.object, 'chat.completion.chunk');
        assert.equal(c.choices[0].index, 0);
      }
      assert.equal(chunks[0].choices[0].delta.role, 'assistant');
      const last = chunks[chunks.length - 1];
      assert.equal(last.choices[0].finish_reason, res.choices[0].finish_reason);
      assert.ok(chunks.slice(0, -1).every((c) => c.choices[0].finish_reason === null));
      // Greedy: the streamed text is the non-streamed content; the second request reused the
      // first one's prompt state.
      assert.equal(chunks.map((c) => c.choices[0].delta.content ?? '').join(''), res.choices[0].message.content);
      assert.equal(last.usage.cached_tokens, u.prompt_tokens);
      assert.equal(last.usage.completion_tokens, u.completion_tokens);
    });

    // The cache is JS over the backend's fork and forward: once on WebGPU (page) is enough there.
    if (!(gpu && worker)) test(`${mode}/${backend}: turns 2 and 3 feed only their new tokens, with the logits of a fresh run`, async () => {
      const r = await run('threeTurns', gpu ? { backend, worker, maxTokens: 3, questions: ['Hi.', 'Why?', 'Ok.'], uncached: false } : { backend, worker });
      console.log(`  ${mode}/${backend}: ${r.turns.map((t, i) => `turn ${i + 1} prompt ${t.usage.prompt_tokens} cached ${t.usage.cached_tokens}`).join(', ')}; prefix error ${r.err.toExponential(2)}`);
      assert.equal(r.turns[0].usage.cached_tokens, 0);
      for (const i of [1, 2]) {
        const prev = r.turns[i - 1].usage;
        // The whole previous conversation came from the cache: prompt and answer.
        assert.equal(r.turns[i].usage.cached_tokens, prev.prompt_tokens + prev.completion_tokens, `turn ${i + 1}`);
        assert.ok(r.turns[i].usage.prompt_tokens > r.turns[i].usage.cached_tokens);
      }
      const t3 = r.turns[2].usage;
      assert.equal(r.cached, t3.prompt_tokens + t3.completion_tokens);
      if (!gpu) assert.equal(r.uncachedCached, 0);
      assert.ok(r.err <= CHAT_PREFIX_TOL, `prefix logits differ by ${r.err}`);
      assert.ok(r.entries >= 2 && r.bytes > 0);
    });

    test(`${mode}/${backend}: overlapping calls on one session answer BUSY`, async () => {
      const r = await run('busy', { backend, worker, maxTokens: gpu ? 3 : 6 });
      assert.equal(r.generate.code, 'BUSY', JSON.stringify(r.generate));
      assert.equal(r.forward.code, 'BUSY', JSON.stringify(r.forward));
      assert.equal(r.firstTokens, gpu ? 3 : 6);
      assert.ok(r.after > 0);
      assert.deepEqual(r.chats.map((c) => (c === 'BUSY' ? c : 'answered')), ['answered', 'BUSY', 'answered'], JSON.stringify(r.chats));
    });

    if (gpu) continue; // abort is backend-independent JS; pkg.test.mjs aborts generations on WebGPU
    test(`${mode}/${backend}: abort mid-stream ends with finish_reason 'abort' and the state holds what was said`, async () => {
      const r = await run('abortMidStream', { backend, worker });
      assert.equal(r.finish, 'abort');
      assert.ok(r.usage.completion_tokens >= 2 && r.usage.completion_tokens < 500);
      assert.ok(r.answerText.startsWith(r.prompt));
      const said = squash(r.content);
      const read = squash(r.answerText.slice(r.prompt.length));
      assert.ok(read.startsWith(said), 'the state read what was yielded first');
      assert.equal(r.answerIds, r.usage.prompt_tokens + r.usage.completion_tokens);
      // What the state read beyond the yielded text can only be text held back for a stop string.
      assert.ok('User:'.startsWith(read.slice(said.length)) || 'System:'.startsWith(read.slice(said.length)));
      assert.equal(r.nextCached, read === said ? r.answerIds : r.usage.prompt_tokens);
      assert.ok(r.freshFinite);
    });
  }

  test(`${mode}: sessions dropped by the page are reclaimed (1,000 created and dropped)`, async () => {
    const r = await run('reclaim', { worker, n: 1000 });
    console.log(`  ${mode}: ${r.n} dropped sessions, live ${r.live}, wasm memory ${r.memBefore} -> ${r.memHalf} (after ${r.n / 2}) -> ${r.memAfter} bytes (state ${r.stateBytes} bytes)`);
    assert.ok(r.hasGc, 'the test browser exposes gc()');
    // Without reclaiming, every dropped session would keep its state: the second 500 would add
    // 500 x stateBytes. Reclaimed, the memory of the first half's peak (up to ~50 sessions
    // between collections) is reused.
    assert.ok(r.memAfter - r.memHalf < 10 * r.stateBytes, `wasm memory grew by ${r.memAfter - r.memHalf} over the second half`);
    assert.ok(r.live < 60, `${r.live} sessions still alive`);
  });
}

for (const worker of [false, true]) {
  test(`${worker ? 'worker' : 'page'}: saveConversation / restoreConversation continue a chat in another model object`, async () => {
    const r = await run('saveRestore', { worker });
    assert.equal(r.savedIds, r.first.prompt_tokens + r.first.completion_tokens);
    assert.equal(r.restored.usage.cached_tokens, r.savedIds);
    assert.equal(r.restored.content, r.same.content, 'the restored conversation answers as the original');
    assert.equal(r.mismatch?.code, 'STATE_MISMATCH');
  });
}

test('a persisted conversation state survives a reload', async () => {
  const first = await run('persistTurn', { half: 1 });
  await page.reload();
  await page.waitForFunction(() => document.title === 'ready');
  const second = await run('persistTurn', { half: JSON.stringify(first) });
  assert.equal(second.usage.cached_tokens, first.usage.prompt_tokens + first.usage.completion_tokens);
});

// The package README's "Ten lines", run as written: only the import path and the model URL are
// pointed at this server. WebGPU is off in this browser so `auto` takes the CPU path (SwiftShader
// would take minutes for the default 1,024 tokens).
test("the package README's ten lines chat and reuse the conversation", async () => {
  const { readFileSync } = await import('node:fs');
  const readme = readFileSync(join(ROOT, 'pkg-template', 'README.md'), 'utf8');
  const html = readme.slice(readme.indexOf('## Ten lines')).match(/```html\n<script type="module">\n([\s\S]*?)<\/script>\n```/)[1];
  assert.ok(html.split('\n').filter((l) => l.trim()).length <= 12, 'ten lines of code, give or take the import');
  const code = html
    .replace("'./node_modules/gander-rwkv/index.js'", "'/pkg/index.js'")
    .replace("'/models/rwkv7-g1-0.1b-int8.safetensors'", "'/shared/fixtures/tiny-rwkv7-834k/model.safetensors'")
    + '\nwindow.readmeDone = { reply, answer };\n';
  const b = await launch({ webgpu: false });
  try {
    const { page: p, errors: errs } = await openPage(b.ctx, `${server.url}tests/e2e/chat.html`);
    await p.evaluate((src) => {
      const el = document.createElement('script');
      el.type = 'module';
      el.textContent = src;
      document.body.append(el);
    }, code);
    await p.waitForFunction(() => window.readmeDone, null, { polling: 200, timeout: 0 });
    const r = await p.evaluate(() => ({ ...window.readmeDone, text: document.body.textContent }));
    assert.equal(r.reply.object, 'chat.completion');
    assert.ok(r.reply.usage.cached_tokens > 0, 'the second turn reused the first');
    assert.ok(r.text.includes(`(${r.reply.usage.cached_tokens} tokens reused)`));
    assert.deepEqual(errs, []);
  } finally {
    await b.close();
  }
});

/** A small validator for the PERSON schema of chat-scenario.js (the keywords it uses). */
function validPerson(v) {
  if (!v || typeof v !== 'object' || Array.isArray(v)) return false;
  const keys = Object.keys(v);
  if (!keys.every((k) => ['name', 'age', 'pet'].includes(k))) return false;
  if (typeof v.name !== 'string' || [...v.name].length > 8) return false;
  if (!Number.isInteger(v.age)) return false;
  if ('pet' in v && !['cat', 'dog', null].includes(v.pet)) return false;
  return keys.join(',') === ['name', 'age', 'pet'].filter((k) => k in v).join(','); // declared order
}

for (const worker of [false, true]) {
  for (const backend of ['cpu', 'webgpu']) {
    const mode = worker ? 'worker' : 'page';
    const gpu = backend === 'webgpu';
    if (gpu && worker) continue; // the constraint is host-side and the same in both; one GPU run suffices
    test(`${mode}/${backend}: grammars and JSON schemas constrain every token; output always parses`, async () => {
      const r = await run('structured', { backend, worker, runs: gpu ? 2 : 20, maxTokens: gpu ? 30 : 200, chats: !gpu });
      let complete = 0;
      for (const o of r.outputs) {
        if (o.finish === 'length') continue; // cut by maxTokens: reported as such, never as whole
        assert.equal(o.finish, 'eos', o.text);
        assert.ok(validPerson(JSON.parse(o.text)), o.text);
        complete++;
      }
      assert.ok(complete >= r.outputs.length / 2, `${complete} of ${r.outputs.length} complete`);
      if (!gpu) {
        for (const c of [r.jsonMode, r.schema]) {
          if (c.finish === 'length') continue;
          assert.equal(c.finish, 'stop');
          JSON.parse(c.content);
        }
        if (r.schema.finish === 'stop') assert.ok(validPerson(JSON.parse(r.schema.content)), r.schema.content);
      }
      assert.match(r.gbnf, /^(yes|no)!$/);
      assert.equal(r.bias, gpu ? 'zz' : 'zzzz');
      assert.equal(r.bad.code, 'BAD_INPUT');
      assert.match(r.bad.message, /pattern/);
      assert.equal(r.badThink.code, 'BAD_INPUT');
    });
  }
}

test('no console errors', () => {
  assert.deepEqual(errors, []);
});
