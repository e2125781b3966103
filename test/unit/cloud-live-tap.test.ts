import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LiveTap } from '../../main/core/cloud/live-tap.js';

const EXPLICIT_LE = '1.2.840.10008.1.2.1';

/** Whether `promise` has settled once everything already queued has run. */
async function settled(promise: Promise<unknown>): Promise<boolean> {
  let done = false;
  void promise.then(() => (done = true));
  await new Promise((resolve) => setImmediate(resolve));
  return done;
}

test('the fetch runs ahead of the live reader by at most 1 MiB over all parts, and waits for room after that', async () => {
  const tap = new LiveTap(() => true);
  const first = tap.offer(EXPLICIT_LE)!;
  assert.ok(await settled(first.write(Buffer.alloc(600 * 1024))), 'a chunk within the read-ahead does not wait for the reader');
  first.end();
  // The next part shares the read-ahead: 1.2 MiB would be untaken.
  const second = tap.offer(EXPLICIT_LE)!;
  const full = second.write(Buffer.alloc(600 * 1024));
  assert.equal(await settled(full), false, 'past the read-ahead the fetch waits for the reader');
  const allTaken = tap.allTaken();

  const part = await tap.next();
  assert.ok('part' in part);
  const body = part.part.body[Symbol.asyncIterator]();
  assert.equal((await body.next()).value?.length, 600 * 1024);
  assert.equal(await settled(full), false, 'a chunk counts until the reader asks for the next');
  assert.equal((await body.next()).done, true);
  assert.ok(await settled(full), 'room again once the reader took the first part');
  assert.equal(await settled(allTaken), false, 'the second part is not taken yet');

  second.end();
  tap.finish();
  const next = await tap.next();
  assert.ok('part' in next);
  for await (const chunk of next.part.body) assert.equal(chunk.length, 600 * 1024);
  assert.ok(await settled(allTaken), 'everything handed over has been taken');
  assert.deepEqual(await tap.next(), { end: 'complete' });
});

test('a reader that leaves frees the fetch from waiting for room', async () => {
  const tap = new LiveTap(() => true);
  const lane = tap.offer(EXPLICIT_LE)!;
  await lane.write(Buffer.alloc(1024 * 1024));
  const waiting = lane.write(Buffer.alloc(1024));
  const allTaken = tap.allTaken();
  assert.equal(await settled(waiting), false);
  tap.leave();
  assert.ok(await settled(waiting), 'the write no longer waits');
  assert.ok(await settled(allTaken), 'nobody is left to take the rest');
  assert.ok(await settled(lane.write(Buffer.alloc(2 * 1024 * 1024))), 'later writes are dropped at once');
});

test('a part the reader declines releases its untaken bytes', async () => {
  const tap = new LiveTap(() => true);
  const lane = tap.offer(EXPLICIT_LE)!;
  await lane.write(Buffer.alloc(1024 * 1024));
  const waiting = lane.write(Buffer.alloc(1024));
  assert.equal(await settled(waiting), false);
  const part = await tap.next();
  assert.ok('part' in part);
  part.part.decline();
  assert.ok(await settled(waiting), 'the declined part holds the fetch no longer');
  assert.ok(await settled(tap.allTaken()), 'nothing of it counts as untaken');
});
