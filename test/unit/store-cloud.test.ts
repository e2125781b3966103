// Location in the index (schema 2): the migration from schema 1, cloud rows from QIDO answers, instances
// fetched from the archive (never queued), eviction that keeps rows, access times, pins and feed cursors.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import pino from 'pino';
import { toDicomJson, type KeywordValue } from '../../main/core/dicom/dicom-json.js';
import { Archive } from '../../main/core/store/archive.js';
import { openDatabase, SchemaTooNewError, schemaVersion, SCHEMA_VERSION } from '../../main/core/store/database.js';
import { makeInstance } from '../support/instance.js';
import { newUid } from '../support/uid.js';
import { indexDb } from '../support/index-db.js';

const silent = pino({ level: 'silent' });
const noLimits = { maxArchiveBytes: 0, minFreeBytes: 0, evictDelivered: false };
const local = { callingAe: 'MODALITY', peer: 'test' };
const fromCloud = { callingAe: 'ARCHIVE', peer: 'archive', origin: 'cloud' as const };

async function openArchive(dir: string, route: () => string[] = () => ['azure'], limits = noLimits) {
  return Archive.open({ dataDir: dir, limits, logger: silent, route });
}

const json = (values: Record<string, KeywordValue>) => toDicomJson(values);
const row = (archive: Archive, sql: string, ...params: unknown[]) => indexDb(archive).prepare(sql).get(...params) as Record<string, unknown>;
const outboxRows = (archive: Archive, uid: string) => archive.outbox.rowsFor(uid).length;

interface V1Fixture {
  schema: string[];
  tables: Record<string, Array<Record<string, unknown>>>;
  files: Record<string, string>;
}

/** A data dir exactly as the schema-1 store left it (test/fixtures/index-v1.json was written by that code). */
async function v1DataDir(): Promise<{ dir: string; fixture: V1Fixture }> {
  const fixture = JSON.parse(await readFile(new URL('../fixtures/index-v1.json', import.meta.url), 'utf8')) as V1Fixture;
  const dir = await mkdtemp(join(tmpdir(), 'dicom-edge-v1-'));
  const db = new Database(join(dir, 'index.sqlite'));
  db.pragma('journal_mode = WAL');
  for (const sql of fixture.schema) db.exec(sql);
  for (const [table, rows] of Object.entries(fixture.tables)) {
    for (const r of rows) {
      const columns = Object.keys(r);
      db.prepare(`INSERT INTO ${table} (${columns.join(', ')}) VALUES (${columns.map(() => '?').join(', ')})`).run(...columns.map((c) => r[c]));
    }
  }
  db.close();
  for (const [relativePath, base64] of Object.entries(fixture.files)) {
    const path = join(dir, 'archive', ...relativePath.split('/'));
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, Buffer.from(base64, 'base64'));
  }
  return { dir, fixture };
}

describe('index schema 2: migration from schema 1', () => {
  test('a schema-1 data dir opens: every instance local, local counts and access times filled, files all found', async () => {
    const { dir, fixture } = await v1DataDir();
    try {
      const { archive, recovery } = await openArchive(dir);
      try {
        assert.equal(schemaVersion(indexDb(archive)), SCHEMA_VERSION);
        assert.equal(recovery.rowsMissingFile, 0);
        assert.equal(recovery.filesIndexed + recovery.filesReindexed, 0, 'no file looked new or changed');
        for (const before of fixture.tables.studies!) {
          const after = row(archive, 'SELECT * FROM studies WHERE study_uid = ?', before.study_uid);
          assert.equal(after.num_instances, before.num_instances);
          assert.equal(after.num_local_instances, before.num_instances);
          assert.equal(after.size_bytes, before.size_bytes);
          assert.equal(after.last_access_at, before.updated_at);
          assert.equal(after.pinned, 0);
          assert.equal(after.cloud_modalities, '[]');
        }
        for (const before of fixture.tables.series!) {
          assert.equal(row(archive, 'SELECT num_local_instances FROM series WHERE series_uid = ?', before.series_uid).num_local_instances, before.num_instances);
        }
        assert.deepEqual(row(archive, 'SELECT MIN(local) AS l, MAX(in_cloud) AS c, MAX(file_missing) AS m FROM instances'), { l: 1, c: 0, m: 0 });
        assert.equal(archive.usedBytes, fixture.tables.instances!.reduce((n, i) => n + Number(i.size_bytes), 0));
        // The old rows work with today's code: queries, and a new instance of a migrated series.
        const studies = archive.reads.query({ level: 'STUDY', keys: { PatientID: 'MIG-1' } });
        assert.deepEqual(studies.map((s) => [s.StudyInstanceUID, s.InstanceAvailability]), [['2.25.1002', 'ONLINE'], ['2.25.1001', 'ONLINE']]);
        await archive.ingest(Readable.from([makeInstance({ studyUid: '2.25.1001', seriesUid: '2.25.1001.1', patientId: 'MIG-1', rows: 8, columns: 8 })]), local);
        assert.deepEqual(row(archive, 'SELECT num_instances, num_local_instances FROM studies WHERE study_uid = ?', '2.25.1001'), { num_instances: 4, num_local_instances: 4 });
        // Forwarded before the archive was named: its delivered rows say what the cloud holds.
        assert.equal(archive.cloud.markDeliveredInCloud('azure'), 3);
        assert.equal(archive.cloud.studyLocation('2.25.1001')?.location, 'both');
        assert.equal(archive.cloud.studyLocation('2.25.1002')?.location, 'local');
      } finally {
        await archive.close();
      }
      // Opening again changes nothing further.
      const again = openDatabase(join(dir, 'index.sqlite'));
      assert.equal(schemaVersion(again), SCHEMA_VERSION);
      again.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('an index from a newer appliance is refused and left unchanged', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'dicom-edge-v9-'));
    try {
      const file = join(dir, 'index.sqlite');
      openDatabase(file).close();
      const db = new Database(file);
      db.prepare("UPDATE meta SET value = '9' WHERE key = 'schema_version'").run();
      db.close();
      assert.throws(() => openDatabase(file), (error: Error) => error instanceof SchemaTooNewError && new RegExp(`schema version 9, newer than this appliance's ${SCHEMA_VERSION}`).test(error.message));
      const check = new Database(file, { readonly: true });
      assert.equal((check.prepare("SELECT value FROM meta WHERE key = 'schema_version'").get() as { value: string }).value, '9');
      check.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('cloud rows and instances from the archive', () => {
  let dir: string;
  let archive: Archive;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dicom-edge-cloud-'));
    ({ archive } = await openArchive(dir));
  });
  after(async () => {
    await archive.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('a study known only from a QIDO answer is a cloud-only row: found as NEARLINE with the archive\'s counts and modalities', () => {
    const study = newUid();
    const result = archive.cloud.upsert('study', [json({
      StudyInstanceUID: study, PatientName: 'Cloud^Only', PatientID: 'PRIOR-1', StudyDate: '20190304', ModalitiesInStudy: 'CT\\PT',
      NumberOfStudyRelatedSeries: 3, NumberOfStudyRelatedInstances: 120,
    })]);
    assert.deepEqual(result, { studies: 1, series: 0, instances: 0, skipped: [] });
    const [match] = archive.reads.query({ level: 'STUDY', keys: { PatientID: 'PRIOR-1' } });
    assert.equal(match?.StudyInstanceUID, study);
    assert.equal(match?.InstanceAvailability, 'NEARLINE');
    assert.equal(match?.NumberOfStudyRelatedInstances, 120);
    assert.equal(match?.NumberOfStudyRelatedSeries, 3);
    assert.equal(match?.ModalitiesInStudy, 'CT\\PT');
    assert.equal(archive.reads.query({ level: 'STUDY', keys: { PatientID: 'PRIOR-1', ModalitiesInStudy: 'PT' } }).length, 1, 'matched on the reported modalities');
    assert.equal(archive.reads.query({ level: 'STUDY', keys: { PatientID: 'PRIOR-1', ModalitiesInStudy: 'MR' } }).length, 0);
    assert.equal(archive.reads.query({ level: 'STUDY', keys: { PatientID: 'PRIOR-1' }, location: 'local' }).length, 0);
    assert.equal(archive.cloud.studyLocation(study)?.location, 'cloud');
  });

  test('a study or series the archive reported without counts is NEARLINE all the same (nothing of it is here)', () => {
    const study = newUid();
    const series = newUid();
    archive.cloud.upsert('series', [json({ StudyInstanceUID: study, SeriesInstanceUID: series, PatientID: 'PRIOR-NO-COUNTS', Modality: 'CT' })]);
    const [found] = archive.reads.query({ level: 'STUDY', keys: { PatientID: 'PRIOR-NO-COUNTS' } });
    assert.equal(found?.InstanceAvailability, 'NEARLINE');
    const [seriesMatch] = archive.reads.query({ level: 'SERIES', keys: { StudyInstanceUID: study } });
    assert.equal(seriesMatch?.InstanceAvailability, 'NEARLINE');
  });

  test('series and instances from QIDO become cloud-only rows, never queued, and count as known but not local', () => {
    const study = newUid();
    const series = newUid();
    const sops = [newUid(), newUid()];
    const result = archive.cloud.upsert('instance', sops.map((sop, n) => json({
      StudyInstanceUID: study, SeriesInstanceUID: series, SOPInstanceUID: sop, SOPClassUID: '1.2.840.10008.5.1.4.1.1.2',
      PatientID: 'PRIOR-2', Modality: 'MR', SeriesNumber: 4, InstanceNumber: n + 1, Rows: 256, Columns: 256,
    })));
    assert.deepEqual(result, { studies: 2, series: 2, instances: 2, skipped: [] });
    for (const sop of sops) {
      assert.deepEqual(row(archive, 'SELECT local, in_cloud, file_missing, size_bytes, rows FROM instances WHERE sop_instance_uid = ?', sop),
        { local: 0, in_cloud: 1, file_missing: 1, size_bytes: 0, rows: 256 });
      assert.equal(outboxRows(archive, sop), 0);
    }
    assert.deepEqual(row(archive, 'SELECT num_series, num_instances, num_local_instances, size_bytes, modalities_in_study FROM studies WHERE study_uid = ?', study),
      { num_series: 1, num_instances: 2, num_local_instances: 0, size_bytes: 0, modalities_in_study: 'MR' });
    const images = archive.reads.query({ level: 'IMAGE', keys: { StudyInstanceUID: study } });
    assert.deepEqual(images.map((m) => m.InstanceAvailability), ['NEARLINE', 'NEARLINE']);
    assert.equal(archive.usedBytes, 0);
  });

  test('datasets without valid UIDs are skipped, with the reason, and write nothing', () => {
    const before = row(archive, 'SELECT COUNT(*) AS n FROM studies').n;
    const result = archive.cloud.upsert('series', [
      json({ StudyInstanceUID: newUid() }),
      json({ StudyInstanceUID: '1.2.x', SeriesInstanceUID: newUid() }),
    ]);
    assert.equal(result.studies, 0);
    assert.deepEqual(result.skipped.map((s) => s.index), [0, 1]);
    assert.match(result.skipped[0]!.reason, /no SeriesInstanceUID/);
    assert.match(result.skipped[1]!.reason, /StudyInstanceUID "1\.2\.x"/);
    assert.equal(row(archive, 'SELECT COUNT(*) AS n FROM studies').n, before);
  });

  test('a QIDO answer never overwrites what local files say, and never blanks a known value', async () => {
    const studyUid = newUid();
    const seriesUid = newUid();
    const bytes = makeInstance({ studyUid, seriesUid, patientName: 'Local^Name', patientId: 'LOC-1', studyDescription: 'CT Head', modality: 'CT', rows: 8, columns: 8 });
    const stored = await archive.ingest(Readable.from([bytes]), local);
    archive.cloud.upsert('instance', [json({
      StudyInstanceUID: studyUid, SeriesInstanceUID: seriesUid, SOPInstanceUID: stored.header.sopInstanceUid,
      PatientName: 'LOCAL^NAME', PatientID: '', StudyDescription: 'Other', Modality: 'OT', Rows: 512, AccessionNumber: 'FROM-CLOUD',
    })]);
    const study = row(archive, 'SELECT patient_name, patient_id, study_description, accession_number FROM studies WHERE study_uid = ?', studyUid);
    assert.equal(study.patient_name, 'Local^Name');
    assert.equal(study.patient_id, 'LOC-1');
    assert.equal(study.study_description, 'CT Head');
    assert.equal(row(archive, 'SELECT modality FROM series WHERE series_uid = ?', seriesUid).modality, 'CT');
    assert.deepEqual(row(archive, 'SELECT local, in_cloud, rows, file_missing FROM instances WHERE sop_instance_uid = ?', stored.header.sopInstanceUid),
      { local: 1, in_cloud: 1, rows: 8, file_missing: 0 });
    assert.equal(outboxRows(archive, stored.header.sopInstanceUid), 1, 'its own outbox row only');
    // A cloud-only row takes the archive's newer values, but not empty ones.
    const prior = newUid();
    archive.cloud.upsert('study', [json({ StudyInstanceUID: prior, PatientName: 'Old^Name', StudyDescription: 'MR Knee' })]);
    archive.cloud.upsert('study', [json({ StudyInstanceUID: prior, PatientName: 'New^Name', StudyDescription: '' })]);
    assert.deepEqual(row(archive, 'SELECT patient_name, study_description FROM studies WHERE study_uid = ?', prior), { patient_name: 'New^Name', study_description: 'MR Knee' });
  });

  test('an instance fetched from the archive is stored locally, marked as in the cloud, and never queued', async () => {
    const events: string[] = [];
    const off = archive.events.onAny((name) => events.push(name));
    const bytes = makeInstance({ patientId: 'FETCH-1', rows: 8, columns: 8 });
    const result = await archive.ingest(Readable.from([bytes]), fromCloud);
    off();
    assert.equal(result.outcome, 'stored');
    const uid = result.header.sopInstanceUid;
    assert.deepEqual(row(archive, 'SELECT local, in_cloud, file_missing FROM instances WHERE sop_instance_uid = ?', uid), { local: 1, in_cloud: 1, file_missing: 0 });
    assert.equal(outboxRows(archive, uid), 0);
    assert.ok(!events.includes('outbox-changed'));
    assert.equal(archive.cloud.studyLocation(result.header.studyInstanceUid)?.location, 'both');
  });

  test('a cloud-only row that gets its file is a first local copy; a fetch never replaces a local copy', async () => {
    const studyUid = newUid();
    const seriesUid = newUid();
    const sop = newUid();
    const bytes = makeInstance({ studyUid, seriesUid, sopInstanceUid: sop, rows: 8, columns: 8 });
    archive.cloud.upsert('instance', [json({ StudyInstanceUID: studyUid, SeriesInstanceUID: seriesUid, SOPInstanceUID: sop })]);
    const used = archive.usedBytes;
    const fetched = await archive.ingest(Readable.from([bytes]), fromCloud);
    assert.equal(fetched.outcome, 'stored');
    assert.equal(archive.usedBytes, used + bytes.length);
    assert.deepEqual(row(archive, 'SELECT local, in_cloud, file_missing, replaced_count FROM instances WHERE sop_instance_uid = ?', sop),
      { local: 1, in_cloud: 1, file_missing: 0, replaced_count: 0 });
    assert.deepEqual(row(archive, 'SELECT num_instances, num_local_instances FROM studies WHERE study_uid = ?', studyUid), { num_instances: 1, num_local_instances: 1 });
    // Other bytes for the same instance from the archive: the local copy stays.
    const other = makeInstance({ studyUid, seriesUid, sopInstanceUid: sop, rows: 8, columns: 8, patientName: 'Changed^Upstream' });
    const again = await archive.ingest(Readable.from([other]), fromCloud);
    assert.equal(again.outcome, 'duplicate');
    assert.ok((await readFile(archive.paths.absolute(fetched.relativePath))).equals(bytes));
    assert.equal(archive.usedBytes, used + bytes.length);
  });
});

describe('eviction by access', () => {
  let dir: string;
  let archive: Archive;
  let route: string[] = ['azure'];
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dicom-edge-lru-'));
    ({ archive } = await openArchive(dir, () => route));
  });
  after(async () => {
    await archive.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function study(instances: number, options: { origin?: 'cloud'; deliver?: boolean } = {}) {
    const studyUid = newUid();
    const seriesUid = newUid();
    const uids: string[] = [];
    for (let n = 0; n < instances; n++) {
      const result = await archive.ingest(Readable.from([makeInstance({ studyUid, seriesUid, rows: 8, columns: 8 })]),
        options.origin ? fromCloud : local);
      uids.push(result.header.sopInstanceUid);
    }
    if (options.deliver) {
      indexDb(archive).prepare("UPDATE outbox SET state = 'delivered' WHERE study_uid = ?").run(studyUid);
      archive.cloud.markInCloud(uids);
    }
    return { studyUid, uids };
  }
  const candidates = () => archive.cloud.evictionCandidates().map((c) => c.studyUid);

  test('candidates: confirmed studies only, least recently used first; pinned and undelivered never', async () => {
    const old = await study(2, { deliver: true });
    const pending = await study(1);
    const fetched = await study(1, { origin: 'cloud' });
    const pinned = await study(1, { deliver: true });
    route = [];
    const unrouted = await study(1); // waits under '*': no destination has it
    route = ['azure'];
    const partly = await study(2, { deliver: true });
    indexDb(archive).prepare("UPDATE outbox SET state = 'failed' WHERE sop_instance_uid = ?").run(partly.uids[1]);
    assert.ok(archive.cloud.setPinned(pinned.studyUid, true));
    assert.equal(archive.cloud.setPinned(newUid(), true), false, 'an unknown study');
    const base = Date.now() + 1000;
    archive.cloud.touch([fetched.studyUid], base + 1);
    archive.cloud.touch([old.studyUid], base + 2);
    const found = candidates();
    assert.deepEqual(found.filter((uid) => [old, pending, fetched, pinned, unrouted, partly].some((s) => s.studyUid === uid)), [fetched.studyUid, old.studyUid]);
    archive.cloud.touch([old.studyUid], base - 5000); // an earlier access never moves it back
    assert.equal(archive.cloud.studyLocation(old.studyUid)?.lastAccessAt, base + 2);
    assert.ok(archive.cloud.setPinned(pinned.studyUid, false));
    assert.ok(candidates().includes(pinned.studyUid));
  });

  test('an evicted study held by the archive keeps its rows as cloud-only: findable as NEARLINE, file gone, bytes freed', async () => {
    const s = await study(2, { deliver: true });
    const used = archive.usedBytes;
    const paths = s.uids.map((uid) => archive.paths.absolute(String(row(archive, 'SELECT path FROM instances WHERE sop_instance_uid = ?', uid).path)));
    const sizes = s.uids.map((uid) => Number(row(archive, 'SELECT size_bytes FROM instances WHERE sop_instance_uid = ?', uid).size_bytes));
    const evicted: string[] = [];
    const off = archive.events.on('instance-evicted', (e) => evicted.push(e.sopInstanceUid));
    for (const uid of s.uids) assert.equal(await archive.evictInstance(uid), sizes[s.uids.indexOf(uid)]);
    off();
    assert.deepEqual(evicted, s.uids);
    assert.equal(archive.usedBytes, used - sizes[0]! - sizes[1]!);
    assert.ok(paths.every((p) => !existsSync(p)));
    assert.deepEqual(row(archive, 'SELECT num_instances, num_local_instances, size_bytes FROM studies WHERE study_uid = ?', s.studyUid),
      { num_instances: 2, num_local_instances: 0, size_bytes: 0 });
    const [match] = archive.reads.query({ level: 'STUDY', keys: { StudyInstanceUID: s.studyUid } });
    assert.equal(match?.InstanceAvailability, 'NEARLINE');
    assert.equal(archive.cloud.studyLocation(s.studyUid)?.location, 'cloud');
    assert.equal(await archive.evictInstance(s.uids[0]!), 0, 'already evicted');
    assert.ok(!candidates().includes(s.studyUid));
  });

  test('a delivered instance the archive does not hold is removed on eviction, as before', async () => {
    const s = await study(1);
    indexDb(archive).prepare("UPDATE outbox SET state = 'delivered' WHERE study_uid = ?").run(s.studyUid);
    assert.ok((await archive.evictInstance(s.uids[0]!)) > 0);
    assert.equal(indexDb(archive).prepare('SELECT 1 FROM instances WHERE sop_instance_uid = ?').get(s.uids[0]), undefined);
    assert.equal(indexDb(archive).prepare('SELECT 1 FROM studies WHERE study_uid = ?').get(s.studyUid), undefined);
  });
});

describe('eviction under pressure', () => {
  test('the least recently used confirmed study goes whole; an undelivered study is never evicted, whatever the pressure', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'dicom-edge-pressure-'));
    const { archive } = await openArchive(dir, () => ['azure']);
    try {
      const ingestStudy = async (n: number) => {
        const studyUid = newUid();
        const uids: string[] = [];
        for (let i = 0; i < n; i++) uids.push((await archive.ingest(Readable.from([makeInstance({ studyUid, rows: 8, columns: 8 })]), local)).header.sopInstanceUid);
        return { studyUid, uids };
      };
      const a = await ingestStudy(2);
      const b = await ingestStudy(1);
      const undelivered = await ingestStudy(1);
      for (const s of [a, b]) {
        indexDb(archive).prepare("UPDATE outbox SET state = 'delivered' WHERE study_uid = ?").run(s.studyUid);
        archive.cloud.markInCloud(s.uids);
      }
      archive.cloud.touch([a.studyUid], Date.now() + 10_000); // a was read after b
      // Full: the next instance needs room, which only eviction can make.
      archive.setLimits({ maxArchiveBytes: archive.usedBytes + 100, minFreeBytes: 0, evictDelivered: true });
      await archive.ingest(Readable.from([makeInstance({ rows: 8, columns: 8 })]), local);
      assert.equal(archive.cloud.studyLocation(b.studyUid)?.location, 'cloud', 'b, least recently used, evicted');
      assert.equal(archive.cloud.studyLocation(a.studyUid)?.location, 'both');
      for (let i = 0; i < 3; i++) await archive.ingest(Readable.from([makeInstance({ rows: 8, columns: 8 })]), local).catch(() => undefined);
      assert.equal(archive.cloud.studyLocation(undelivered.studyUid)?.numLocalInstances, 1, 'the undelivered study stays');
      assert.ok(existsSync(archive.paths.absolute(String(row(archive, 'SELECT path FROM instances WHERE sop_instance_uid = ?', undelivered.uids[0]).path))));
    } finally {
      await archive.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('recovery with cloud rows', () => {
  test('a file left for a cloud-only row (a fetch or an eviction cut short) is adopted as a cached copy, not queued', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'dicom-edge-cloud-recovery-'));
    try {
      const studyUid = newUid();
      const seriesUid = newUid();
      const sop = newUid();
      const bytes = makeInstance({ studyUid, seriesUid, sopInstanceUid: sop, rows: 8, columns: 8 });
      const { archive } = await openArchive(dir);
      archive.cloud.upsert('instance', [json({ StudyInstanceUID: studyUid, SeriesInstanceUID: seriesUid, SOPInstanceUID: sop })]);
      const evictedLater = await archive.ingest(Readable.from([makeInstance({ rows: 8, columns: 8 })]), local);
      indexDb(archive).prepare("UPDATE outbox SET state = 'delivered'").run();
      archive.cloud.markInCloud([evictedLater.header.sopInstanceUid]);
      const path = archive.paths.absolute(archive.paths.relativeInstancePath(studyUid, seriesUid, sop));
      const evictedBytes = await readFile(archive.paths.absolute(evictedLater.relativePath));
      await archive.evictInstance(evictedLater.header.sopInstanceUid);
      await archive.close();
      // As a crash would leave them: a fetched file renamed into place before its rows; an evicted file not yet removed.
      await mkdir(dirname(path), { recursive: true });
      await writeFile(path, bytes);
      await writeFile(join(dir, 'archive', evictedLater.relativePath), evictedBytes);
      const reopened = await openArchive(dir);
      try {
        assert.equal(reopened.recovery.filesIndexed, 2);
        assert.equal(reopened.recovery.rowsMissingFile, 0);
        for (const uid of [sop, evictedLater.header.sopInstanceUid]) {
          assert.deepEqual(row(reopened.archive, 'SELECT local, in_cloud, file_missing FROM instances WHERE sop_instance_uid = ?', uid), { local: 1, in_cloud: 1, file_missing: 0 });
        }
        assert.equal(outboxRows(reopened.archive, sop), 0, 'the fetched instance is not queued');
        assert.equal(reopened.archive.usedBytes, bytes.length + evictedBytes.length);
      } finally {
        await reopened.archive.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('a cloud-only row without a file is not flagged as missing', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'dicom-edge-cloud-recovery-'));
    try {
      const first = await openArchive(dir);
      const ids = { StudyInstanceUID: newUid(), SeriesInstanceUID: newUid(), SOPInstanceUID: newUid() };
      first.archive.cloud.upsert('instance', [json(ids)]);
      await first.archive.close();
      const again = await openArchive(dir);
      assert.equal(again.recovery.rowsMissingFile, 0);
      assert.equal(again.archive.reads.query({ level: 'IMAGE', keys: { SOPInstanceUID: ids.SOPInstanceUID } })[0]?.InstanceAvailability, 'NEARLINE');
      await again.archive.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('change-feed cursors', () => {
  test('a saved cursor survives a restart; one saved in a failed transaction is not saved', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'dicom-edge-cursor-'));
    try {
      const first = await openArchive(dir);
      assert.equal(first.archive.cloud.readCursor('azure'), undefined);
      first.archive.cloud.saveCursor('azure', '{"offset":42}', 1000);
      const studyUid = newUid();
      assert.throws(() => first.archive.cloud.transaction(() => {
        first.archive.cloud.upsert('study', [json({ StudyInstanceUID: studyUid })]);
        first.archive.cloud.saveCursor('azure', '{"offset":43}', 2000);
        throw new Error('feed batch failed');
      }), /feed batch failed/);
      assert.equal(indexDb(first.archive).prepare('SELECT 1 FROM studies WHERE study_uid = ?').get(studyUid), undefined);
      await first.archive.close();
      const again = await openArchive(dir);
      assert.deepEqual(again.archive.cloud.readCursor('azure'), { cursor: '{"offset":42}', updatedAt: 1000 });
      again.archive.cloud.clearCursor('azure');
      assert.equal(again.archive.cloud.readCursor('azure'), undefined);
      await again.archive.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
