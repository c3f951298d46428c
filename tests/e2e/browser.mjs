// Headless Chromium for the browser tests (playwright-core driving Debian's /usr/bin/chromium;
// no browser download). WebGPU runs on SwiftShader with --enable-unsafe-webgpu.

import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

/** A browser context on a fresh profile (or `profile`, to keep IndexedDB across launches). */
export async function launch({ webgpu = true, profile, gc = false } = {}) {
  const dir = profile || mkdtempSync(join(tmpdir(), 'gander-chromium-'));
  const args = ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];
  if (gc) args.push('--js-flags=--expose-gc'); // reclaim tests force a collection
  if (webgpu) args.push('--enable-unsafe-webgpu');
  else args.push('--disable-webgpu', '--disable-features=WebGPU');
  // Extra flags, e.g. to reach a real GPU from headless Chromium (bench/webgpu.mjs).
  if (process.env.GANDER_CHROMIUM_ARGS) args.push(...process.env.GANDER_CHROMIUM_ARGS.split(' ').filter(Boolean));
  const ctx = await chromium.launchPersistentContext(dir, { executablePath: CHROMIUM, headless: true, args });
  return {
    ctx,
    dir,
    close: async () => { await ctx.close(); if (!profile) rmSync(dir, { recursive: true, force: true }); },
  };
}

/** Open `url`, collecting console errors and page errors, and wait for `document.title === 'ready'`-style readiness. */
export async function openPage(ctx, url, { ready = () => document.title === 'ready', timeout = 120000 } = {}) {
  const page = await ctx.newPage();
  const errors = [];
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(url);
  await page.waitForFunction(ready, null, { timeout });
  return { page, errors };
}
