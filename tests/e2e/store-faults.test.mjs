// Faults of the browser store and of the engine around it (issue 17 part 6), in headless
// Chromium on the built pkg/ (store-faults-scenario.js does the work in the pages):
// a. a load holds a reader lock: another tab's delete or put of the name waits for it;
// b. IndexedDB request errors and unexplained aborts are IO errors saying what failed;
// c. running out of wasm memory is OUT_OF_MEMORY (with sizes and what to do), on the page and in
//    a worker, never a hang or a session BUSY forever (the wasm is served with a small memory
//    maximum, so this needs tens of MiB, not 4 GiB);
// d. a download cut off midway and a file changed on disk are IO errors;
// e. the conversion worker comes back after it was killed;
// f. state names are per model.
// Needs `make pkg` first.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, statSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { startServer } from '../../tools/serve.mjs';
import { launch, openPage } from './browser.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SHARED = join(ROOT, '..', 'shared');
const TINY = join(SHARED, 'fixtures', 'tiny-rwkv7-834k', 'model.safetensors');
/** Wasm memory maxima of the out-of-memory tests, in 64 KiB pages: 64 MiB (room for a few
 *  models), and 4 MiB (the wasm's own data and stack take 2.2 MiB: no room for a model). */
const OOM_PAGES = 1024;
const TINY_PAGES = 64;

let server;
let browser;
let tmp;

/** `bytes` (a wasm module) with its memory's maximum set to `maxPages`. */
function withMaxMemory(bytes, maxPages) {
  const b = Buffer.from(bytes);
  let p = 8;
  const leb = () => { let r = 0; let s = 0; let x; do { x = b[p++]; r += (x & 0x7f) * 2 ** s; s += 7; } while (x & 0x80); return r; };
  const enc = (n) => { const o = []; do { let x = n & 0x7f; n = Math.floor(n / 128); if (n) x |= 0x80; o.push(x); } while (n); return o; };
  while (p < b.length) {
    const at = p;
    const id = b[p++];
    const size = leb();
    const start = p;
    if (id === 5) {
      if (leb() !== 1) throw new Error('one memory expected');
      const flags = b[p++];
      const min = leb();
      const body = Buffer.from([...enc(1), flags | 1, ...enc(min), ...enc(maxPages)]);
      return Buffer.concat([b.subarray(0, at), Buffer.from([5, ...enc(body.length)]), body, b.subarray(start + size)]);
    }
    p = start + size;
  }
  throw new Error('no memory section in gander_bg.wasm');
}

const HEADERS = { 'cache-control': 'no-store', 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp', 'cross-origin-resource-policy': 'same-origin' };

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'gander-faults-'));
  server = await startServer({ root: ROOT, mounts: { '/shared': SHARED } });
  // Two routes in front of the static server: /drop/PATH sends half of PATH (with the whole
  // Content-Length) and cuts the connection; /oom/PAGES/gander_bg.wasm is pkg/'s wasm with its
  // memory capped at PAGES.
  const wasm = readFileSync(join(ROOT, 'pkg', 'gander_bg.wasm'));
  const statics = server.server.listeners('request')[0];
  server.server.removeAllListeners('request');
  server.server.on('request', (req, res) => {
    const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    const oom = /^\/oom\/(\d+)\/gander_bg\.wasm$/.exec(path);
    if (oom) {
      const body = withMaxMemory(wasm, Number(oom[1]));
      res.writeHead(200, { ...HEADERS, 'content-type': 'application/wasm', 'content-length': body.length }).end(body);
      return;
    }
    if (path.startsWith('/drop/')) {
      const rest = path.slice('/drop'.length);
      const file = rest.startsWith('/shared/') ? join(SHARED, rest.slice('/shared/'.length)) : join(ROOT, rest);
      const whole = readFileSync(file);
      res.writeHead(200, { ...HEADERS, 'content-type': 'application/octet-stream', 'content-length': whole.length });
      res.write(whole.subarray(0, whole.length >> 1), () => setTimeout(() => res.socket.destroy(), 50));
      return;
    }
    statics(req, res);
  });
  browser = await launch({ webgpu: false });
});

after(async () => {
  await browser?.close();
  await server?.close();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

async function page() {
  const p = await openPage(browser.ctx, `${server.url}tests/e2e/store-faults.html`);
  p.run = (fn, ...args) => p.page.evaluate(([f, a]) => window.scenario[f](...a), [fn, args]);
  return p;
}

async function contested(op) {
  const name = `contested-${op}`;
  const a = await page();
  const b = await page();
  try {
    assert.ok(await a.run('storeTiny', name) >= 3, 'several chunks');
    await a.run('slowChunkReads');
    await a.run('startLoad', name);
    await a.page.waitForFunction(() => window.__paused, null, { timeout: 60000 });
    // Page A's load is now between two chunks; page B (another tab) deletes or replaces the model.
    await b.run('startOp', op, name);
    await new Promise((r) => setTimeout(r, 700));
    const finishedDuringLoad = await b.run('opDone');
    await a.run('releaseSlowRead');
    const load = await a.run('loadResult');
    const result = await b.run('opResult');
    return { load, finishedDuringLoad, result, after: await b.run('loadNowAndDelete', name) };
  } finally {
    await a.page.close();
    await b.page.close();
  }
}

test('a. another tab deleting a model waits for a load of it to finish; the load is intact', async () => {
  const r = await contested('delete');
  assert.equal(r.load.error, undefined, JSON.stringify(r.load.error));
  assert.ok(r.load.err <= 2e-3, `logits ${r.load.err}`);
  assert.equal(r.finishedDuringLoad, false, 'the delete waited for the load');
  assert.deepEqual(r.result.value, true);
  assert.ok(!r.result.names.includes('contested-delete'));
  assert.equal(r.after.error?.code, 'NOT_FOUND');
});

test('a. another tab replacing a model waits for a load of it to finish; then loads get the new one', async () => {
  const r = await contested('put');
  assert.equal(r.load.error, undefined, JSON.stringify(r.load.error));
  assert.ok(r.load.err <= 2e-3, `logits ${r.load.err}`);
  assert.equal(r.finishedDuringLoad, false, 'the put waited for the load to commit');
  assert.equal(r.result.value, 'contested-put', JSON.stringify(r.result.error));
  assert.ok(r.after.fingerprint && r.after.fingerprint !== r.load.fingerprint, 'the replacement is what loads now');
});

test('a. without the Web Locks API, a load and a delete in one page still exclude each other', async () => {
  const p = await page();
  try {
    await p.run('storeTiny', 'no-locks');
    const r = await p.run('noWebLocks', 'no-locks');
    assert.equal(r.load.error, undefined, JSON.stringify(r.load.error));
    assert.ok(r.load.err <= 2e-3);
    assert.equal(r.deletedDuringLoad, false);
    assert.equal(r.op.value, true);
  } finally {
    await p.page.close();
  }
});

test('b. a failed IndexedDB request or an unexplained abort is an IO error saying what failed', async () => {
  const p = await page();
  try {
    const r = await p.run('idbErrors');
    assert.equal(r.requestError.error?.code, 'IO', JSON.stringify(r.requestError));
    assert.match(r.requestError.error.message, /saving state "twice".*ConstraintError.*retry/);
    assert.equal(r.stateAbort.error?.code, 'IO', JSON.stringify(r.stateAbort));
    assert.match(r.stateAbort.error.message, /aborted saving state "aborted" without giving a reason.*retry/);
    assert.equal(r.modelAbort.error?.code, 'IO', JSON.stringify(r.modelAbort));
    assert.match(r.modelAbort.error.message, /storing chunk 1 of \d+ of "aborted-model"/);
    assert.equal(r.after.value, 'after', 'the store works on');
    assert.ok(!r.names.includes('aborted-model'));
    assert.equal(r.leftovers, 0, 'the failed write removed its chunks');
  } finally {
    await p.page.close();
  }
});

function assertOom(e, what) {
  assert.equal(e?.code, 'OUT_OF_MEMORY', `${what}: ${JSON.stringify(e)}`);
  assert.equal(e.name, 'OutOfMemoryError');
  assert.match(e.message, /\d+ MiB of wasm memory in use/, what);
  assert.match(e.message, /quantisation.*WebGPU.*dispose other models/, what);
  assert.ok(e.wasmBytes > 0, what);
}

function assertSessionRecovers(r, mode) {
  assertOom(r.hugeForward, `${mode}: forward of 20M ids`);
  assert.equal(r.hugeForward.requested, 80_000_000);
  assert.doesNotMatch(r.hugeForward.message, /disposed/, 'the ids were never copied in: nothing was lost');
  assert.equal(r.afterHuge.value, 256, `${mode}: the session works on: ${JSON.stringify(r.afterHuge)}`);
  assertOom(r.session, `${mode}: a new session`);
  assertOom(r.fork, `${mode}: fork (a trap inside a Promise)`);
  for (const after of [r.afterFork, r.afterFork2]) {
    assert.equal(after?.error?.code, 'DISPOSED', `${mode}: ${JSON.stringify(after)}`);
    assert.match(after.error.message, /ran out of memory.*create a new session/);
  }
  assert.equal(r.worksAgain.value, 256, `${mode}: after disposing sessions: ${JSON.stringify(r.worksAgain)}`);
}

test('c. out of wasm memory on the page: OUT_OF_MEMORY with sizes, no hang, no session BUSY forever', async () => {
  const p = await page();
  try {
    const r = await p.run('oomPage', { wasmUrl: `/oom/${OOM_PAGES}/gander_bg.wasm` });
    console.log(`  page: ${r.modelsLoaded} models loaded, then: ${r.load?.message}`);
    assertOom(r.load, 'page: a load');
    assert.ok(r.modelsLoaded >= 2);
    assert.equal(r.firstWorks.value, 256, JSON.stringify(r.firstWorks));
    assertSessionRecovers(r, 'page');
    assert.equal(r.loadAgain.value, 256, JSON.stringify(r.loadAgain));
    assert.ok(r.memory <= OOM_PAGES * 65536);
  } finally {
    await p.page.close();
  }
});

test('c. out of wasm memory in a worker: OUT_OF_MEMORY, no hang, the model works on', async () => {
  const p = await page();
  try {
    const r = await p.run('oomWorker', { wasmUrl: `/oom/${OOM_PAGES}/gander_bg.wasm`, tinyWasmUrl: `/oom/${TINY_PAGES}/gander_bg.wasm` });
    assertOom(r.load, 'worker: a load');
    assertSessionRecovers(r, 'worker');
  } finally {
    await p.page.close();
  }
});

test('d. a download cut off midway is an IO error naming the URL (page, worker, store)', async () => {
  const p = await page();
  try {
    const url = '/drop/shared/fixtures/tiny-rwkv7-834k/model.safetensors';
    const r = await p.run('networkDrop', { url });
    for (const k of ['page', 'pageProgress', 'worker', 'put']) {
      assert.equal(r[k].error?.code, 'IO', `${k}: ${JSON.stringify(r[k])}`);
      assert.match(r[k].error.message, /download of .*\/drop\/shared\/fixtures\/tiny-rwkv7-834k\/model\.safetensors broke off .*retry/, k);
    }
    assert.ok(!r.names.includes('dropped'));
  } finally {
    await p.page.close();
  }
});

test('d. a chosen file changed on disk is an IO error saying to choose it again (page, worker, store)', async () => {
  const p = await page();
  try {
    const file = join(tmp, 'model.safetensors');
    copyFileSync(TINY, file);
    await p.page.setInputFiles('#file', file);
    truncateSync(file, 1000); // the file changes after it was chosen
    assert.equal(statSync(file).size, 1000);
    const r = await p.run('changedFile');
    for (const k of ['page', 'worker', 'put']) {
      assert.equal(r[k].error?.code, 'IO', `${k}: ${JSON.stringify(r[k])}`);
      assert.match(r[k].error.message, /model\.safetensors.*choose it again/, k);
    }
  } finally {
    await p.page.close();
  }
});

test('e. the conversion worker is started again after it crashed or was killed', async () => {
  const p = await page();
  try {
    const r = await p.run('convertWorkerRespawn');
    assert.equal(r.first.value, 'int8', JSON.stringify(r.first));
    assert.equal(r.afterCrash.value, 'int8', JSON.stringify(r.afterCrash));
    assert.equal(r.killedMid.error?.code, 'WORKER', JSON.stringify(r.killedMid));
    assert.match(r.killedMid.error.message, /try again/);
    assert.equal(r.afterKill.value, 'int8', JSON.stringify(r.afterKill));
    assert.deepEqual(r.names, ['conv-1', 'conv-2', 'conv-4']);
  } finally {
    await p.page.close();
  }
});

test('f. state names are per model; states of older versions still load', async () => {
  const p = await page();
  try {
    const r = await p.run('statesPerModel');
    assert.deepEqual(r.getErrors, []);
    assert.ok(r.aKept, "model A's state survives model B saving one of the same name");
    assert.ok(r.bKept);
    assert.deepEqual(r.listA, ['intro']);
    assert.deepEqual(r.listB, ['intro']);
    assert.ok(r.oldKept, 'an unscoped state of an older version loads for its model');
    assert.equal(r.oldOther, 'STATE_MISMATCH');
    assert.deepEqual(r.listAWithOld, ['intro', 'old']);
    assert.equal(r.aAfterDelete, null);
    assert.ok(r.bAfterDelete, "deleting A's state leaves B's");
    assert.deepEqual(r.left.filter((n) => n === 'intro' || n === 'old'), []);
  } finally {
    await p.page.close();
  }
});
