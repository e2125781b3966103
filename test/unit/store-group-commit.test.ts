import assert from 'node:assert/strict';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { CommitNotDurableError, GroupCommitter } from '../../main/core/store/group-commit.js';

function setUp() {
  const db = new Database(':memory:');
  db.exec('CREATE TABLE t (v INTEGER PRIMARY KEY)');
  let finishSync!: (error?: Error) => void;
  let syncs = 0;
  const committer = new GroupCommitter(
    (body) => db.transaction(body)(),
    (body) => db.transaction(body)(),
    () => {
      syncs++;
      return new Promise<void>((resolve, reject) => (finishSync = (error) => (error ? reject(error) : resolve())));
    },
  );
  const rows = () => (db.prepare('SELECT v FROM t ORDER BY v').pluck().all() as number[]);
  const insert = (v: number) => () => db.prepare('INSERT INTO t (v) VALUES (?)').run(v).changes;
  // A batch is committed when its sync starts; tests wait for that rather than for a guessed time.
  const untilSyncStarts = async () => {
    while (syncs === 0) await new Promise((resolve) => setTimeout(resolve, 5));
  };
  return { committer, rows, insert, finishSync: (error?: Error) => finishSync(error), syncs: () => syncs, untilSyncStarts };
}

const settled = async (promise: Promise<unknown>) => {
  let state = 'pending';
  promise.then(() => (state = 'resolved'), () => (state = 'rejected'));
  await new Promise((resolve) => setImmediate(resolve));
  await new Promise((resolve) => setImmediate(resolve));
  return state;
};

test('a commit is reported only after the sync that follows it, and one sync serves the whole batch', async () => {
  const { committer, rows, insert, finishSync, syncs, untilSyncStarts } = setUp();
  const first = committer.commit(insert(1));
  const second = committer.commit(insert(2));
  await untilSyncStarts();
  assert.deepEqual(rows(), [1, 2], 'both rows are committed together');
  assert.equal(syncs(), 1);
  assert.equal(await settled(first), 'pending', 'not acknowledged before the sync has finished');
  finishSync();
  assert.deepEqual(await Promise.all([first, second]), [1, 1]);
});

test('a task that throws fails alone; a failed sync fails the others with CommitNotDurableError', async () => {
  const { committer, rows, insert, finishSync, untilSyncStarts } = setUp();
  const good = committer.commit(insert(1));
  const bad = committer.commit(() => {
    insert(2)();
    throw new Error('no such study');
  });
  // Listen at once: the failing task may be answered before the batch's sync, and must not count as unhandled.
  const badRejected = assert.rejects(bad, /no such study/);
  await untilSyncStarts();
  assert.deepEqual(rows(), [1], "the failing task's row is rolled back, its neighbour's is kept");
  finishSync(new Error('EIO'));
  await assert.rejects(good, (error: unknown) => error instanceof CommitNotDurableError && /EIO/.test((error as Error).message));
  await badRejected;
});
