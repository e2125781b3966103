// The counts of a C-MOVE/C-GET (dimse/sub-operations.ts Progress) when the instances to send are known only
// once the archive has listed them: no number remaining before, then the right one, whatever was sent first.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Progress } from '../../main/core/dimse/sub-operations.js';

test('remaining is unknown until the list is in, then counts what is still to send', () => {
  const progress = new Progress();
  assert.equal(progress.remaining, undefined);
  progress.add({ sopInstanceUid: '1.1' }, 'completed');
  progress.add({ sopInstanceUid: '1.2' }, 'warning');
  assert.equal(progress.remaining, undefined);
  progress.expect(['1.1', '1.2', '1.3', '1.4']);
  assert.equal(progress.remaining, 2);
  progress.add({ sopInstanceUid: '1.3' }, 'failed');
  progress.add({ sopInstanceUid: '9.9' }, 'completed'); // sent, though the list did not name it
  assert.equal(progress.remaining, 1);
  progress.add({ sopInstanceUid: '1.4' }, 'completed');
  assert.deepEqual([progress.remaining, progress.completed, progress.warnings, progress.failed], [0, 3, 1, ['1.3']]);
  assert.ok(progress.has('9.9') && !progress.has('2.2'));
});

test('known from the start: one fewer remaining per sub-operation', () => {
  const progress = new Progress(['a', 'b']);
  assert.equal(progress.remaining, 2);
  progress.add({ sopInstanceUid: 'a' }, 'completed');
  assert.equal(progress.remaining, 1);
});
