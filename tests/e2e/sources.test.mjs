// The package's byte-range sources (pkg-template/sources.js, no wasm) against tools/serve.mjs in
// Node: a file replaced on the server while it is read by range requests is an IO error that
// says so (a store or a load must never mix two versions), and an unchanged file reads right.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer } from '../../tools/serve.mjs';
import { rangeSource } from '../../pkg-template/sources.js';

test('a file replaced on the server mid-read is an IO error, not a mix of versions', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'gander-sources-'));
  const server = await startServer({ root: dir });
  try {
    const file = join(dir, 'model.bin');
    const v1 = new Uint8Array(4096).map((_, i) => i % 251);
    writeFileSync(file, v1);
    const src = await rangeSource(`${server.url}model.bin`);
    assert.equal(src.size, 4096);
    assert.deepEqual(await src.read(100, 200), v1.subarray(100, 200));
    // The same size, other bytes, a later modification time: another version.
    writeFileSync(file, v1.map((x) => 255 - x));
    const later = new Date(Date.now() + 5000);
    utimesSync(file, later, later);
    await assert.rejects(src.read(200, 300), (e) => e.code === 'IO' && /changed on the server/.test(e.message));
  } finally {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
