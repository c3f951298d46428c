// pkg-template/locks.js's own fallback (Node has no Web Locks, like a browser without them): a
// wait given up by an abort leaves the queue, and the waiters behind it are still served.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { acquire, withLock, heldLocks } from '../../pkg-template/locks.js';

test('an aborted wait rejects with ABORTED and leaves the queue; later waiters still get the lock', async () => {
  const release = await acquire('l');
  const ac = new AbortController();
  const order = [];
  const aborted = withLock('l', { signal: ac.signal }, async () => { order.push('aborted one ran'); });
  const later = withLock('l', {}, async () => { order.push('later'); });
  ac.abort(new Error('the user left'));
  await assert.rejects(aborted, (e) => e.code === 'ABORTED' && /the user left/.test(e.message));
  assert.deepEqual(order, [], 'nothing ran while the lock was held');
  release();
  await later;
  assert.deepEqual(order, ['later']);
  await new Promise((r) => setTimeout(r, 0)); // the holder's release runs just after its result
  assert.equal((await heldLocks()).size, 0, 'no lock left behind');
});

test('an already aborted signal never takes the lock', async () => {
  const ac = new AbortController();
  ac.abort();
  let ran = false;
  await assert.rejects(withLock('m', { signal: ac.signal }, async () => { ran = true; }), (e) => e.code === 'ABORTED');
  assert.equal(ran, false);
});

test('an abort after the lock was granted does not cut the holder short', async () => {
  const ac = new AbortController();
  const r = await withLock('n', { signal: ac.signal }, async () => { ac.abort(); return 'finished'; });
  assert.equal(r, 'finished');
});
