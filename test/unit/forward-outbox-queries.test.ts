import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { Archive } from '../../main/core/store/archive.js';
import { REPLACES_EARLIER, type OutboxWorkerQueries } from '../../main/core/store/outbox-worker-queries.js';
import { makeInstance } from '../support/instance.js';
import { newUid } from '../support/uid.js';
import { indexDb } from '../support/index-db.js';

describe('forward outbox queries', () => {
  let dir = '';
  let archive: Archive;
  let q: OutboxWorkerQueries;
  const studyA = newUid();
  const studyB = newUid();
  const uidsA: string[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fwd-q-'));
    ({ archive } = await Archive.open({ dataDir: dir, limits: { maxArchiveBytes: 0, minFreeBytes: 0, evictDelivered: false }, logger: pino({ level: 'silent' }) }));
    q = archive.outboxWork;
    const series = newUid();
    for (let i = 0; i < 5; i++) {
      const sop = newUid();
      uidsA.push(sop);
      await archive.ingest(Readable.from([makeInstance({ studyUid: studyA, seriesUid: series, sopInstanceUid: sop, instanceNumber: i + 1, rows: 8, columns: 8 })]), { callingAe: 'CT1', peer: 'test' });
    }
    archive.setRoute(() => ['d1']);
    await archive.ingest(Readable.from([makeInstance({ studyUid: studyB, rows: 8, columns: 8 })]), { callingAe: 'CT1', peer: 'test' });
  });
  after(async () => {
    await archive.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('assigns rows queued without a destination', () => {
    const rows = q.unrouted();
    assert.equal(rows.length, 5);
    assert.equal(rows[0]!.modality, 'CT');
    assert.equal(rows[0]!.callingAe, 'CT1');
    q.assign(rows.map((r) => ({ ...r, destinations: ['d1'] })), Date.now());
    assert.equal(q.unrouted().length, 0);
    assert.equal(q.counts('d1').counts.pending, 6);
  });

  it('picks the oldest and the newest study, and claims batches within limits', () => {
    const now = Date.now();
    assert.equal(q.pickStudy('d1', now, false), studyA);
    assert.equal(q.pickStudy('d1', now, true), studyB);
    const batch = q.claim('d1', studyA, now, 3, 1e12);
    assert.equal(batch.length, 3);
    assert.ok(batch.every((r) => r.path && r.attempts === 1));
    const oneByBytes = q.claim('d1', studyA, now, 10, 1);
    assert.equal(oneByBytes.length, 1, 'a single row larger than maxBytes still goes alone');
    assert.equal(q.counts('d1').counts.sending, 4);
    assert.equal(q.resetInterrupted(), 4);
    assert.equal(q.counts('d1').counts.pending, 6);
  });

  it('records outcomes only for rows still in flight', () => {
    const now = Date.now();
    const [first, second, third] = q.claim('d1', studyA, now, 3, 1e12);
    assert.ok(q.delivered(first!.id, null, now));
    assert.ok(q.failed(second!.id, 43264, 'invalid', now));
    assert.ok(q.conflict(third!.id, 'conflict', now));
    assert.equal(q.delivered(first!.id, null, now), false, 'already settled');
    const c = q.counts('d1').counts;
    assert.deepEqual([c.delivered, c.failed, c.conflict], [1, 1, 1]);
  });

  it('retry, overwrite and cancel by filter', () => {
    const now = Date.now();
    assert.equal(q.overwrite({ destination: 'd1' }, now).length, 1);
    const row = indexDb(archive).prepare("SELECT replaces_earlier FROM outbox WHERE destination = 'd1' AND failure_reason IS NULL AND state = 'pending' AND replaces_earlier = ?").get(REPLACES_EARLIER.overwrite);
    assert.ok(row, 'overwrite asks for a PUT');
    assert.equal(q.retry({ studyUid: studyA }, now).length, 1);
    assert.equal(q.cancel({ sopInstanceUid: uidsA[4] }, now).length, 1);
    assert.equal(q.counts('d1').counts.cancelled, 1);
    const progress = q.progress({ destination: 'd1', studyUid: studyA });
    assert.equal(progress.length, 1);
    assert.equal(Object.values(progress[0]!.counts).reduce((n, count) => n + count, 0), 5);
  });

  it('postpones a destination and makes it due again', () => {
    const now = Date.now();
    q.postponeAll('d1', now + 60_000);
    assert.equal(q.pickStudy('d1', now, false), undefined);
    assert.equal(q.nextDue('d1'), now + 60_000);
    q.makeDueNow('d1', now);
    assert.ok(q.pickStudy('d1', now, false));
  });
});
