// Background sync in the index (schema 3): the issuer of a patient's ID, and changes reported by the archive
// (create, update, delete) applied with the feed's cursor in one transaction, never dropping undelivered data.
import { indexDb } from '../support/index-db.js';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import pino from 'pino';
import { toDicomJson, type KeywordValue } from '../../main/core/dicom/dicom-json.js';
import { Archive, type CloudChange } from '../../main/core/store/archive.js';
import { openDatabase, schemaVersion, SCHEMA_VERSION } from '../../main/core/store/database.js';
import { makeInstance } from '../support/instance.js';
import { newUid } from '../support/uid.js';

const silent = pino({ level: 'silent' });
const noLimits = { maxArchiveBytes: 0, minFreeBytes: 0, evictDelivered: false };
const local = { callingAe: 'MODALITY', peer: 'test' };
const fromCloud = { callingAe: 'ARCHIVE', peer: 'archive', origin: 'cloud' as const };
const json = (values: Record<string, KeywordValue>) => toDicomJson(values);
const row = (archive: Archive, sql: string, ...params: unknown[]) => indexDb(archive).prepare(sql).get(...params) as Record<string, unknown> | undefined;

async function openArchive(dir: string) {
  return (await Archive.open({ dataDir: dir, limits: noLimits, logger: silent, route: () => ['azure'] })).archive;
}

async function tempFiles(archive: Archive): Promise<string[]> {
  const found: string[] = [];
  for (const shard of archive.paths.tempShards) found.push(...(await readdir(shard)));
  return found;
}

describe('index schema 3', () => {
  test('a schema-2 index gains the issuer column and the prefetch table; old studies have no issuer', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'dicom-edge-v2-'));
    try {
      const file = join(dir, 'index.sqlite');
      // A schema-2 index as that version left it: today's schema without what schema 3 added.
      openDatabase(file).close();
      const db = new Database(file);
      db.exec(`DROP INDEX studies_patient_issuer; DROP INDEX prefetch_jobs_work; DROP TABLE prefetch_jobs;
        ALTER TABLE studies DROP COLUMN issuer_of_patient_id; UPDATE meta SET value = '2' WHERE key = 'schema_version'`);
      db.prepare("INSERT INTO studies (study_uid, patient_id, received_at, updated_at) VALUES ('2.25.77', 'OLD-1', 1, 1)").run();
      db.close();
      const migrated = openDatabase(file);
      try {
        assert.equal(schemaVersion(migrated), SCHEMA_VERSION);
        assert.equal(SCHEMA_VERSION, 4);
        assert.deepEqual(migrated.prepare("SELECT patient_id, issuer_of_patient_id FROM studies WHERE study_uid = '2.25.77'").get(),
          { patient_id: 'OLD-1', issuer_of_patient_id: '' });
        assert.equal((migrated.prepare('SELECT COUNT(*) AS n FROM prefetch_jobs').get() as { n: number }).n, 0);
      } finally {
        migrated.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('the issuer of the patient ID is kept from the stored file and from the archive\'s answers', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'dicom-edge-issuer-'));
    const archive = await openArchive(dir);
    try {
      const stored = await archive.ingest(Readable.from([makeInstance({ patientId: 'P-1', rows: 8, columns: 8, extra: { IssuerOfPatientID: 'HOSP-A' } })]), local);
      assert.equal(row(archive, 'SELECT issuer_of_patient_id AS i FROM studies WHERE study_uid = ?', stored.header.studyInstanceUid)?.i, 'HOSP-A');
      assert.equal(stored.header.issuerOfPatientId, 'HOSP-A');
      const cloudStudy = newUid();
      archive.cloud.upsert('study', [{ ...json({ StudyInstanceUID: cloudStudy, PatientID: 'P-1' }), '00100021': { vr: 'LO', Value: ['HOSP-B'] } }]);
      assert.equal(row(archive, 'SELECT issuer_of_patient_id AS i FROM studies WHERE study_uid = ?', cloudStudy)?.i, 'HOSP-B');
    } finally {
      await archive.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('changes reported by the archive', () => {
  let dir: string;
  let archive: Archive;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dicom-edge-changes-'));
    archive = await openArchive(dir);
  });
  after(async () => {
    await archive.close();
    await rm(dir, { recursive: true, force: true });
  });

  const change = (action: CloudChange['action'], ids: { studyUid: string; seriesUid: string; sopInstanceUid: string }, metadata?: Record<string, KeywordValue>): CloudChange =>
    ({ action, ...ids, ...(metadata ? { metadata: json(metadata) } : {}) });
  const cursorOf = () => archive.cloud.readCursor('azure')?.cursor;
  const save = (cursor: string) => () => archive.cloud.saveCursor('azure', cursor);
  const instanceRow = (uid: string) => row(archive, 'SELECT local, in_cloud, file_missing FROM instances WHERE sop_instance_uid = ?', uid);
  const fileOf = (uid: string) => archive.paths.absolute(String(row(archive, 'SELECT path FROM instances WHERE sop_instance_uid = ?', uid)?.path));

  async function localInstance(options: { origin?: 'cloud'; deliver?: boolean; patientName?: string } = {}) {
    const ids = { studyUid: newUid(), seriesUid: newUid(), sopInstanceUid: newUid() };
    const bytes = makeInstance({ ...ids, rows: 8, columns: 8, patientName: options.patientName ?? 'Local^Copy' });
    await archive.ingest(Readable.from([bytes]), options.origin ? fromCloud : local);
    if (options.deliver) {
      indexDb(archive).prepare("UPDATE outbox SET state = 'delivered' WHERE sop_instance_uid = ?").run(ids.sopInstanceUid);
      archive.cloud.markInCloud([ids.sopInstanceUid]);
    }
    return { ids, bytes };
  }

  test('a create makes a cloud study findable (NEARLINE) with the attributes sent, and is reported as new', async () => {
    const ids = { studyUid: newUid(), seriesUid: newUid(), sopInstanceUid: newUid() };
    const applied = await archive.applyCloudChanges([change('create', ids, { PatientID: 'FEED-1', PatientName: 'Feed^New', Modality: 'MR', StudyDate: '20240102' })], save('c1'));
    assert.deepEqual(applied.newStudies, [ids.studyUid]);
    assert.deepEqual(applied.changes.map((c) => c.outcome), ['indexed']);
    assert.equal(cursorOf(), 'c1');
    const [match] = archive.reads.query({ level: 'STUDY', keys: { PatientID: 'FEED-1' } });
    assert.equal(match?.StudyInstanceUID, ids.studyUid);
    assert.equal(match?.InstanceAvailability, 'NEARLINE');
    assert.equal(match?.PatientName, 'Feed^New');
    assert.deepEqual(instanceRow(ids.sopInstanceUid), { local: 0, in_cloud: 1, file_missing: 1 });
    // Known now: a second create of another instance of it is not new.
    const again = await archive.applyCloudChanges([change('create', { ...ids, sopInstanceUid: newUid() })], save('c2'));
    assert.deepEqual(again.newStudies, []);
  });

  test('an update drops a cached copy (file gone, rows kept with the new attributes); the next fetch stores the new version', async () => {
    const { ids } = await localInstance({ origin: 'cloud' });
    const path = fileOf(ids.sopInstanceUid);
    const used = archive.usedBytes;
    const size = Number(row(archive, 'SELECT size_bytes AS s FROM instances WHERE sop_instance_uid = ?', ids.sopInstanceUid)?.s);
    const evicted: string[] = [];
    const off = archive.events.on('instance-evicted', (e) => evicted.push(e.sopInstanceUid));
    const applied = await archive.applyCloudChanges([change('update', ids, { PatientName: 'Changed^Upstream', PatientID: 'UPD-1' })], save('u1'));
    off();
    assert.deepEqual(applied.changes.map((c) => c.outcome), ['refreshed']);
    assert.deepEqual(evicted, [ids.sopInstanceUid]);
    assert.ok(!existsSync(path), 'the stale copy is gone');
    assert.deepEqual(await tempFiles(archive), [], 'and not left aside');
    assert.deepEqual(instanceRow(ids.sopInstanceUid), { local: 0, in_cloud: 1, file_missing: 1 });
    assert.equal(row(archive, 'SELECT patient_name AS n FROM studies WHERE study_uid = ?', ids.studyUid)?.n, 'Changed^Upstream');
    assert.equal(archive.usedBytes, used - size);
    assert.equal(archive.usedBytes, archive.totalBytes());
    const newer = makeInstance({ ...ids, rows: 8, columns: 8, patientName: 'Changed^Upstream' });
    assert.equal((await archive.ingest(Readable.from([newer]), fromCloud)).outcome, 'stored');
  });

  test('an update of delivered local data refreshes it like a cached copy', async () => {
    const { ids } = await localInstance({ deliver: true });
    const applied = await archive.applyCloudChanges([change('update', ids)], save('u2'));
    assert.deepEqual(applied.changes.map((c) => c.outcome), ['refreshed']);
    assert.deepEqual(instanceRow(ids.sopInstanceUid), { local: 0, in_cloud: 1, file_missing: 1 });
  });

  test('an update or delete of undelivered local data is a conflict: the copy and its outbox row stay', async () => {
    const { ids, bytes } = await localInstance();
    const path = fileOf(ids.sopInstanceUid);
    const updated = await archive.applyCloudChanges([change('update', ids, { PatientName: 'Other^Name' })], save('x1'));
    assert.deepEqual(updated.changes.map((c) => c.outcome), ['conflict']);
    assert.deepEqual(instanceRow(ids.sopInstanceUid), { local: 1, in_cloud: 1, file_missing: 0 });
    assert.equal(row(archive, 'SELECT patient_name AS n FROM studies WHERE study_uid = ?', ids.studyUid)?.n, 'Local^Copy', 'local attributes kept');
    const deleted = await archive.applyCloudChanges([change('delete', ids)], save('x2'));
    assert.deepEqual(deleted.changes.map((c) => c.outcome), ['conflict']);
    assert.deepEqual(instanceRow(ids.sopInstanceUid), { local: 1, in_cloud: 0, file_missing: 0 }, 'no longer held by the archive');
    assert.ok(existsSync(path));
    assert.deepEqual(archive.outbox.rowsFor(ids.sopInstanceUid).map((r) => r.state), ['pending'], 'still to be forwarded');
    assert.equal(cursorOf(), 'x2', 'the cursor moves on');
    // Delivered to one destination but not another: still not confirmed.
    const partly = await localInstance();
    indexDb(archive).prepare("INSERT INTO outbox (sop_instance_uid, study_uid, destination, state, size_bytes, created_at, updated_at) VALUES (?, ?, 'lan', 'delivered', 1, 0, 0)")
      .run(partly.ids.sopInstanceUid, partly.ids.studyUid);
    const refused = await archive.applyCloudChanges([change('delete', partly.ids)], save('x3'));
    assert.deepEqual(refused.changes.map((c) => c.outcome), ['conflict']);
    assert.ok(bytes.length > 0);
  });

  test('a delete removes a cloud-only row, a cached copy and a delivered local copy, files and outbox rows included', async () => {
    const cloudOnly = { studyUid: newUid(), seriesUid: newUid(), sopInstanceUid: newUid() };
    await archive.applyCloudChanges([change('create', cloudOnly)], save('d0'));
    const cached = await localInstance({ origin: 'cloud' });
    const delivered = await localInstance({ deliver: true });
    const paths = [fileOf(cached.ids.sopInstanceUid), fileOf(delivered.ids.sopInstanceUid)];
    const deletedEvents: string[] = [];
    const off = archive.events.on('instance-deleted', (e) => deletedEvents.push(e.sopInstanceUid));
    const unknown = { studyUid: newUid(), seriesUid: newUid(), sopInstanceUid: newUid() };
    const applied = await archive.applyCloudChanges([cloudOnly, cached.ids, delivered.ids, unknown].map((ids) => change('delete', ids)), save('d1'));
    off();
    assert.deepEqual(applied.changes.map((c) => c.outcome), ['removed', 'removed', 'removed', 'unknown']);
    assert.deepEqual(deletedEvents, [cloudOnly, cached.ids, delivered.ids].map((i) => i.sopInstanceUid));
    for (const ids of [cloudOnly, cached.ids, delivered.ids]) {
      assert.equal(instanceRow(ids.sopInstanceUid), undefined);
      assert.equal(row(archive, 'SELECT 1 AS x FROM studies WHERE study_uid = ?', ids.studyUid), undefined, 'the empty study goes');
      assert.deepEqual(archive.outbox.rowsFor(ids.sopInstanceUid), []);
    }
    assert.ok(paths.every((p) => !existsSync(p)));
    assert.equal(archive.usedBytes, archive.totalBytes());
    assert.equal(archive.reads.query({ level: 'STUDY', keys: { StudyInstanceUID: cloudOnly.studyUid } }).length, 0);
  });

  test('changes of one instance apply in order within a batch: created, updated, deleted, created again', async () => {
    const cached = await localInstance({ origin: 'cloud' });
    const applied = await archive.applyCloudChanges([
      change('update', cached.ids, { PatientName: 'V^Two' }), change('delete', cached.ids), change('create', cached.ids, { PatientName: 'V^Three' }),
    ], save('o1'));
    assert.deepEqual(applied.changes.map((c) => c.outcome), ['refreshed', 'removed', 'indexed']);
    assert.deepEqual(instanceRow(cached.ids.sopInstanceUid), { local: 0, in_cloud: 1, file_missing: 1 });
    assert.equal(row(archive, 'SELECT patient_name AS n FROM studies WHERE study_uid = ?', cached.ids.studyUid)?.n, 'V^Three');
    assert.equal(archive.usedBytes, archive.totalBytes());
  });

  test('a batch whose cursor cannot be saved changes nothing: rows as they were, moved files put back', async () => {
    const cached = await localInstance({ origin: 'cloud' });
    const fresh = { studyUid: newUid(), seriesUid: newUid(), sopInstanceUid: newUid() };
    const path = fileOf(cached.ids.sopInstanceUid);
    const before = cursorOf();
    await assert.rejects(archive.applyCloudChanges([change('create', fresh), change('delete', cached.ids)], () => {
      throw new Error('disk I/O error');
    }), /disk I\/O error/);
    assert.equal(cursorOf(), before);
    assert.equal(instanceRow(fresh.sopInstanceUid), undefined);
    assert.deepEqual(instanceRow(cached.ids.sopInstanceUid), { local: 1, in_cloud: 1, file_missing: 0 });
    assert.ok(existsSync(path), 'the file is back in place');
    assert.deepEqual(await tempFiles(archive), []);
  });

  test('a copy already moved aside by an interrupted batch (row local, file missing) is dropped when the batch runs again', async () => {
    const cached = await localInstance({ origin: 'cloud' });
    await rm(fileOf(cached.ids.sopInstanceUid));
    indexDb(archive).prepare('UPDATE instances SET file_missing = 1 WHERE sop_instance_uid = ?').run(cached.ids.sopInstanceUid); // as recovery flags it
    const applied = await archive.applyCloudChanges([change('delete', cached.ids)], save('r1'));
    assert.deepEqual(applied.changes.map((c) => c.outcome), ['removed']);
    assert.equal(instanceRow(cached.ids.sopInstanceUid), undefined);
    assert.equal(archive.usedBytes, archive.totalBytes());
  });
});
