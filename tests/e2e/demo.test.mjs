// The demo page (www/) in headless Chromium, through its stable test hooks: ready with the
// built-in model, generate, stop, add a model from a file, find it again after a reload, delete
// it, save and restore a state across a reload, import state-tuning files, prime a state, the no-WebGPU path, and a phone-width
// layout. Screenshots go to target/screenshots/ (look at them when the page changes).
//
// The first test uses WebGPU (SwiftShader, which checks correctness, not speed: seconds per token
// for the built-in model, mostly the 65,536-row head at one workgroup per row); the others pin
// the CPU backend (?backend=cpu) to keep the suite short, and one runs with WebGPU disabled.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer } from '../../tools/serve.mjs';
import { launch, openPage } from './browser.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SHOTS = join(ROOT, 'target', 'screenshots');
const FIXTURE = join(ROOT, '..', 'shared', 'fixtures', 'tiny-rwkv7-834k', 'model.pth');
const ready = () => /ready/.test(document.querySelector('[data-testid=status]')?.textContent || '');

let server;
let browser;

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  server = await startServer({ root: join(ROOT, 'www'), mounts: { '/pkg': join(ROOT, 'pkg') } });
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await server?.close();
});

async function open(path = '', ctx = browser.ctx) {
  const r = await openPage(ctx, `${server.url}${path}`, { ready });
  await r.page.setViewportSize({ width: 1280, height: 860 });
  return r;
}

const tid = (page, id) => page.locator(`[data-testid=${id}]`);

// The built-in model turns a table and a question into SQL (completion mode, one line).
const SQL_PROMPT = 'Table: north_cars(brand TEXT, price REAL, year INTEGER)\nQuestion: What is the average price of the north_cars made by Acme?\nSQL:';

async function generateOnce(page, prompt) {
  if (prompt !== undefined) await tid(page, 'prompt').fill(prompt);
  await tid(page, 'generate').click();
  await page.waitForFunction(() => document.querySelector('[data-testid=stop]').disabled && /ready/.test(document.querySelector('[data-testid=status]').textContent), null, { timeout: 300000 });
}

test('ready with the built-in model; it writes SQL; no console errors', async () => {
  const { page, errors } = await open('?confirm=0&backend=webgpu');
  const status = await tid(page, 'status').textContent();
  assert.match(status, /ready/);
  assert.match(status, /WebGPU/, 'SwiftShader WebGPU is used when asked for');
  await generateOnce(page, SQL_PROMPT);
  const text = await page.locator('.msg.completion').last().textContent();
  console.log(`  webgpu: ${JSON.stringify(text.slice(SQL_PROMPT.length))}`);
  assert.match(text, /SQL: SELECT .* FROM north_cars/, 'the built-in model answers with SQL about the table');
  assert.match(await page.locator('#st-decode').textContent(), /tok\/s/);
  assert.match(await page.locator('#st-state').textContent(), /KiB|MiB/);
  await page.screenshot({ path: join(SHOTS, 'demo-desktop.png') });
  assert.deepEqual(errors, []);
  await page.close();
});

test('auto takes the faster path: the CPU over a software WebGPU adapter, and says why', async () => {
  const { page, errors } = await open('?confirm=0');
  assert.match(await tid(page, 'status').textContent(), /ready .* CPU/);
  const why = await page.locator('#notice').textContent();
  assert.match(why, /ran a token in \d+ ms; the wasm CPU path reads .* MiB per token in about [\d.]+ ms, so the CPU path runs it/);
  await generateOnce(page, SQL_PROMPT);
  assert.match(await page.locator('.msg.completion').last().textContent(), /SQL: SELECT .* FROM north_cars/);
  assert.deepEqual(errors, []);
  await page.close();
});

test('stop ends a long generation and the page stays usable', async () => {
  const { page, errors } = await open('?confirm=0&backend=cpu');
  await page.locator('#mode-chat').click();
  await page.locator('#max-tokens').fill('4000');
  await tid(page, 'prompt').fill('Tell me a long story');
  await tid(page, 'generate').click();
  await page.waitForFunction(() => (document.querySelector('.msg.bot')?.textContent || '').length > 20);
  await tid(page, 'stop').click();
  await page.waitForFunction(() => document.querySelector('[data-testid=stop]').disabled);
  assert.match(await tid(page, 'output').textContent(), /stopped/);
  const tokens = await page.evaluate(() => document.querySelector('#st-decode').textContent);
  assert.match(tokens, /tok\/s/);
  await page.locator('#max-tokens').fill('10');
  await generateOnce(page, 'And now?');
  assert.equal(await page.locator('.msg.bot').count(), 2);
  assert.deepEqual(errors, []);
  await page.close();
});

test('add a model from a file, find it after a reload, use it, delete it', async () => {
  const { page, errors } = await open('?confirm=0&backend=cpu');
  await page.locator('#model-file').setInputFiles(FIXTURE);
  await page.locator('#model-quant').selectOption('q4');
  // Before "Add", the headers say what the file holds and what it costs (Gander.inspect).
  await page.waitForFunction(() => /As q4: .* stored/.test(document.querySelector('#add-inspect').textContent), null, { timeout: 60000 });
  const told = await page.locator('#add-inspect').textContent();
  assert.match(told, /RWKV-7, 12 layers × 64, .* official layout/);
  await page.screenshot({ path: join(SHOTS, 'demo-model-inspected.png') });
  await page.locator('#add-model-btn').click();
  await page.waitForFunction(() => /Added/.test(document.querySelector('#add-status').textContent), null, { timeout: 60000 });
  assert.equal(await page.locator('[data-model="model-q4"]').count(), 1);
  await page.screenshot({ path: join(SHOTS, 'demo-model-added.png') });
  await page.reload();
  await page.waitForFunction(ready);
  assert.equal(await page.locator('[data-model="model-q4"]').count(), 1, 'still stored after a reload');
  await page.locator('[data-model="model-q4"] button', { hasText: 'Use' }).click();
  await page.waitForFunction(() => /ready · model-q4/.test(document.querySelector('[data-testid=status]').textContent));
  await page.locator('#max-tokens').fill('8');
  await generateOnce(page, 'Hi');
  // A file that is not a model gets a friendly message and stores nothing.
  await page.locator('#model-file').setInputFiles({ name: 'notes.safetensors', mimeType: 'application/octet-stream', buffer: Buffer.from('this is not a model at all, just some text') });
  await page.locator('#add-model-btn').click();
  await page.waitForFunction(() => /not an RWKV-7 checkpoint/.test(document.querySelector('#add-status').textContent));
  // Delete (the page switches back to the built-in model when its model is gone on reload).
  await page.locator('[data-model="model-q4"] button', { hasText: 'Delete' }).click();
  await page.waitForFunction(() => !document.querySelector('[data-model="model-q4"]'));
  await page.reload();
  await page.waitForFunction(ready);
  assert.equal(await page.locator('[data-model="model-q4"]').count(), 0);
  assert.match(await tid(page, 'status').textContent(), /built-in/);
  assert.deepEqual(errors, []);
  await page.close();
});

test('save a conversation state, reload, restore it and continue', async () => {
  const { page, errors } = await open('?confirm=0&backend=cpu');
  await page.locator('#mode-chat').click();
  await page.locator('#max-tokens').fill('12');
  await page.locator('#temperature').fill('0');
  await generateOnce(page, 'Remember the word apple');
  const first = await page.locator('.msg.bot').last().textContent();
  await page.locator('#state-name').fill('apple talk');
  await page.locator('#save-state-btn').click();
  await page.waitForSelector('[data-state="apple talk"]');
  // The reference: the same next turn without a reload.
  await generateOnce(page, 'What word?');
  const expected = await page.locator('.msg.bot').last().textContent();
  await page.reload();
  await page.waitForFunction(ready);
  await page.locator('#mode-chat').click();
  await page.locator('#temperature').fill('0');
  await page.locator('#max-tokens').fill('12');
  await page.locator('[data-state="apple talk"] button', { hasText: 'Restore' }).click();
  await page.waitForFunction(() => /restored/.test(document.querySelector('[data-testid=output]').textContent));
  assert.equal(await page.locator('.msg.bot').first().textContent(), first, 'the transcript comes back');
  await generateOnce(page, 'What word?');
  assert.equal(await page.locator('.msg.bot').last().textContent(), expected, 'restored state continues exactly as before the reload');
  await page.screenshot({ path: join(SHOTS, 'demo-restored.png') });
  await page.locator('[data-state="apple talk"] button', { hasText: 'Delete' }).click();
  await page.waitForFunction(() => !document.querySelector('[data-state="apple talk"]'));
  assert.deepEqual(errors, []);
  await page.close();
});

/** A safetensors state-tuning file: blocks.N.att.time_state, [H, N, N] f32, all `value`. */
function tuningFile(layers, heads, headSize, value) {
  const n = heads * headSize * headSize * 4;
  const header = {};
  for (let i = 0; i < layers; i++) header[`blocks.${i}.att.time_state`] = { dtype: 'F32', shape: [heads, headSize, headSize], data_offsets: [i * n, (i + 1) * n] };
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  const data = Buffer.alloc(layers * n);
  for (let o = 0; o < data.length; o += 4) data.writeFloatLE(value, o);
  return Buffer.concat([len, json, data]);
}

test('import a state-tuning file: another model\'s is refused, a fitting one is used', async () => {
  const { page, errors } = await open('?confirm=0&backend=cpu');
  await generateOnce(page, SQL_PROMPT);
  const fresh = (await page.locator('.msg.completion').last().textContent()).slice(SQL_PROMPT.length);
  // The random test model's tuning file (H=2, N=32, L=2) does not fit the built-in model.
  await page.locator('#import-state').setInputFiles(join(ROOT, 'tests', 'golden', 'fp32-bytes', 'time_state.pth'));
  await page.waitForFunction(() => /does not fit this model.*tuned for another model/.test(document.querySelector('#notice').textContent));
  await page.screenshot({ path: join(SHOTS, 'demo-tuning-refused.png') });
  // One for the built-in model's shape (L=4, H=2, N=64) with all-zero matrices is the zero
  // state: it loads, acts as a primed state, and gives the fresh answer.
  await page.locator('#import-state').setInputFiles({ name: 'zero-tuning.safetensors', mimeType: 'application/octet-stream', buffer: tuningFile(4, 2, 64, 0) });
  await page.waitForFunction(() => /state imported from zero-tuning.safetensors/.test(document.querySelector('[data-testid=output]').textContent));
  await generateOnce(page, SQL_PROMPT);
  assert.match(await tid(page, 'output').textContent(), /started from the primed state/);
  assert.equal((await page.locator('.msg.completion').last().textContent()).slice(SQL_PROMPT.length), fresh);
  assert.deepEqual(errors, []);
  await page.close();
});

test('ingest solved examples into a primed state and answer from it', async () => {
  const { page, errors } = await open('?confirm=0&backend=cpu');
  // The page pre-fills two solved examples for the built-in model.
  assert.match(await page.locator('#ingest-text').inputValue(), /SQL: SELECT/);
  await page.locator('#ingest').click();
  await page.waitForFunction(() => /Primed state ready/.test(document.querySelector('#ingest-status').textContent));
  assert.equal(await page.locator('#use-primed').isChecked(), true);
  // The page offers a question without its Table line (the primed-prompt contract).
  const asked = await tid(page, 'prompt').inputValue();
  assert.match(asked, /^Question: .*\nSQL:$/);
  await generateOnce(page);
  await generateOnce(page, asked.replace('Finance', 'Sales'));
  // Each question starts from the primed state: the transcript holds the last one only.
  assert.equal(await page.locator('.msg.completion').count(), 1);
  assert.match(await tid(page, 'output').textContent(), /started from the primed state/);
  // The grammar comes from the primed table's line: the answer is SQL over that table (whether
  // it is the right SQL is tools/sql/eval.py's measurement, not this test's).
  assert.match(await page.locator('.msg.completion').textContent(), /SQL: SELECT .* FROM staff/);
  await page.screenshot({ path: join(SHOTS, 'demo-primed.png') });
  assert.deepEqual(errors, []);
  await page.close();
});

test('without WebGPU the page falls back to the CPU and says so', async () => {
  const nogpu = await launch({ webgpu: false });
  try {
    const { page, errors } = await open('?confirm=0', nogpu.ctx);
    assert.match(await tid(page, 'status').textContent(), /ready.*CPU/);
    assert.match(await page.locator('#notice').textContent(), /WebGPU is not available/);
    await generateOnce(page, SQL_PROMPT);
    assert.match(await page.locator('.msg.completion').last().textContent(), /SQL: SELECT/);
    await page.screenshot({ path: join(SHOTS, 'demo-no-webgpu.png') });
    assert.deepEqual(errors, []);
  } finally {
    await nogpu.close();
  }
});

test('phone width: one column, no horizontal scrolling', async () => {
  const { page, errors } = await open('?confirm=0&backend=cpu');
  await page.setViewportSize({ width: 390, height: 844 });
  await generateOnce(page, SQL_PROMPT);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `page is ${overflow}px wider than the window`);
  await page.screenshot({ path: join(SHOTS, 'demo-phone.png'), fullPage: true });
  assert.deepEqual(errors, []);
  await page.close();
});
