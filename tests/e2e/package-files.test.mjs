// The npm package lists every module it ships: a file missing from package.json `files` would be
// left out of `npm pack` and break imports for users (not for these tests, which serve pkg/).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';

test('package.json `files` lists every module of pkg-template/', () => {
  const dir = new URL('../../pkg-template/', import.meta.url);
  const files = JSON.parse(readFileSync(new URL('package.json', dir), 'utf8')).files;
  for (const f of readdirSync(dir).filter((n) => n.endsWith('.js') || n.endsWith('.d.ts'))) {
    assert.ok(files.includes(f), `${f} is not in package.json files`);
  }
});
