// The package inside a Vite production build (the other bundler-less case is pkg.test.mjs):
// build tests/e2e/vite-app against pkg/, serve dist/, and generate on the page and in the worker.
// The expected text is the greedy continuation the native CLI gives for the same model.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, rmSync, symlinkSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer } from '../../tools/serve.mjs';
import { launch, openPage } from './browser.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

test('a Vite build of an app importing gander-rwkv runs on the page and in the worker', async () => {
  const app = join(ROOT, 'target', 'vite-app');
  rmSync(app, { recursive: true, force: true });
  cpSync(join(ROOT, 'tests', 'e2e', 'vite-app'), app, { recursive: true });
  mkdirSync(join(app, 'node_modules'), { recursive: true });
  symlinkSync(join(ROOT, 'pkg'), join(app, 'node_modules', 'gander-rwkv'));
  mkdirSync(join(app, 'public'));
  cpSync(join(ROOT, '..', 'shared', 'fixtures', 'tiny-rwkv7-834k', 'model.safetensors'), join(app, 'public', 'model.safetensors'));
  execFileSync(join(ROOT, 'node_modules', '.bin', 'vite'), ['build'], { cwd: app, stdio: 'inherit' });
  const cli = execFileSync(join(ROOT, 'target', 'release', 'gander'), ['generate', '--model', join(app, 'public', 'model.safetensors'), '--prompt', 'The ', '--max-tokens', '12', '--temperature', '0'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  const srv = await startServer({ root: join(app, 'dist') });
  const b = await launch();
  try {
    const { page, errors } = await openPage(b.ctx, srv.url, { ready: () => document.title === 'done' });
    const r = JSON.parse(await page.textContent('#out'));
    assert.deepEqual(errors, []);
    assert.equal(r.page.text, cli);
    assert.equal(r.worker.text, cli);
  } finally {
    await b.close();
    await srv.close();
  }
});
