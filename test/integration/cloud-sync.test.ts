// Background sync with the archive (cloud/cloud-sync.ts) against real peers: the Azure DICOM double's
// documented change feed (create, update, delete; batches; offline), and Orthanc, which has none, polled by
// QIDO-RS by study date.
import { indexDb } from '../support/index-db.js';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { after, before, beforeEach, describe, test } from 'node:test';
import pino from 'pino';
import { ArchiveReader, decodeCursor } from '../../main/core/cloud/archive-reader.js';
import { CloudSync } from '../../main/core/cloud/cloud-sync.js';
import { dicomDate } from '../../main/core/cloud/sync-position.js';
import { createAuthProvider } from '../../main/core/forward/auth.js';
import { Archive } from '../../main/core/store/archive.js';
import { AzureDicomDouble } from '../doubles/azure-dicom.js';
import { startOrthanc, type OrthancPeer } from '../support/peers.js';
import { makeInstance } from '../support/instance.js';
import { makeStudy } from '../support/study.js';
import { newUid } from '../support/uid.js';

const none = createAuthProvider({ kind: 'none' });
const limits = { maxArchiveBytes: 0, minFreeBytes: 0, evictDelivered: false };

/** A pino logger whose lines a test can read. */
function recordingLogger() {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { logger: pino({ level: 'info' }, stream), lines, events: (name: string) => lines.filter((l) => l.event === name) };
}

describe('following the change feed of the Azure DICOM double', () => {
  let azure: AzureDicomDouble;
  let dir: string;
  let archive: Archive;
  let reader: ArchiveReader;
  let sync: CloudSync;
  let log: ReturnType<typeof recordingLogger>;
  const told: string[][] = [];
  const dropped: string[][] = [];
  const feed = { enabled: true, pollIntervalMs: 1000, batchSize: 3 };

  before(async () => {
    azure = await AzureDicomDouble.start();
    dir = await mkdtemp(join(tmpdir(), 'dicom-edge-feed-'));
    ({ archive } = await Archive.open({ dataDir: dir, limits, logger: pino({ level: 'silent' }), route: () => ['azure'] }));
    reader = new ArchiveReader({ baseUrl: azure.baseUrl, auth: none, name: 'azure' });
  });
  beforeEach(() => {
    log = recordingLogger();
    dropped.length = 0;
    sync = new CloudSync({
      archive, reader: () => reader, settings: () => feed, logger: log.logger, onNewStudies: (uids) => told.push(uids),
      onCopiesDropped: (uids) => dropped.push(uids),
    });
  });
  after(async () => {
    await reader?.close();
    await archive?.close();
    await azure?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const cursor = () => decodeCursor(archive.cloud.readCursor('azure')!.cursor);
  const instanceRow = (uid: string) => indexDb(archive).prepare('SELECT local, in_cloud, file_missing FROM instances WHERE sop_instance_uid = ?').get(uid);

  test('nothing is read while no destination is the archive or the setting is off', async () => {
    const idle = new CloudSync({ archive, reader: () => undefined, settings: () => feed, logger: log.logger });
    assert.deepEqual(await idle.syncOnce(), { mode: 'disabled', applied: 0, newStudies: [] });
    const off = new CloudSync({ archive, reader: () => reader, settings: () => ({ ...feed, enabled: false }), logger: log.logger });
    assert.deepEqual(await off.syncOnce(), { mode: 'disabled', applied: 0, newStudies: [] });
    assert.equal(azure.requestsOf('changefeed').length, 0);
    assert.equal(archive.cloud.readCursor('azure'), undefined);
  });

  test('the first round starts at the end of the feed: what the archive held before is not replayed', async () => {
    const before = makeInstance({ patientId: 'BEFORE-1', rows: 8, columns: 8 });
    azure.seedInstance(before);
    const round = await sync.syncOnce();
    assert.deepEqual(round, { mode: 'feed', applied: 0, newStudies: [] });
    assert.equal(cursor().lastSequence, azure.changes().at(-1)!.sequence);
    assert.equal(archive.reads.query({ level: 'STUDY', keys: { PatientID: 'BEFORE-1' } }).length, 0);
    assert.equal(log.events('change-feed-start').length, 1);
  });

  test('a create makes the study findable, with the attributes of the feed\'s metadata, and is handed to prefetch', async () => {
    const study = makeStudy({ series: 1, instancesPerSeries: 2, patientId: 'FEED-NEW', patientName: 'Feed^Created', studyDate: '20240506', modality: 'MR', rows: 8, columns: 8 });
    for (const instance of study) azure.seedInstance(instance.buffer);
    told.length = 0;
    const round = await sync.syncOnce();
    assert.equal(round.applied, 2);
    assert.deepEqual(round.newStudies, [study[0]!.studyUid]);
    assert.deepEqual(told, [[study[0]!.studyUid]]);
    const [match] = archive.reads.query({ level: 'STUDY', keys: { PatientID: 'FEED-NEW' } });
    assert.equal(match?.StudyInstanceUID, study[0]!.studyUid);
    assert.equal(match?.InstanceAvailability, 'NEARLINE');
    assert.equal(match?.PatientName, 'Feed^Created');
    assert.equal(match?.StudyDate, '20240506');
    assert.equal(match?.ModalitiesInStudy, 'MR');
    assert.equal(match?.NumberOfStudyRelatedInstances, 2);
    assert.equal(cursor().lastSequence, azure.changes().at(-1)!.sequence);
    assert.deepEqual(await sync.syncOnce(), { mode: 'feed', applied: 0, newStudies: [] }, 'caught up: nothing applied twice');
  });

  test('an update drops the cached copy, so the next read fetches the new version', async () => {
    const ids = { studyUid: newUid(), seriesUid: newUid(), sopInstanceUid: newUid() };
    const first = makeInstance({ ...ids, patientId: 'FEED-UPD', patientName: 'Version^One', rows: 8, columns: 8 });
    azure.seedInstance(first);
    await sync.syncOnce();
    const cached = await archive.ingest(Readable.from([first]), { callingAe: 'ARCHIVE', peer: 'azure', origin: 'cloud' });
    const path = archive.paths.absolute(cached.relativePath);
    assert.ok(existsSync(path));
    const second = makeInstance({ ...ids, patientId: 'FEED-UPD', patientName: 'Version^Two', rows: 8, columns: 8 });
    azure.seedInstance(second); // replaces it upstream: an update in the feed
    assert.equal(azure.changes().at(-1)!.action, 'update');
    await sync.syncOnce();
    assert.ok(!existsSync(path), 'the stale copy is gone');
    assert.deepEqual(dropped, [[ids.studyUid]], 'told, so a pinned study can be fetched again');
    assert.deepEqual(instanceRow(ids.sopInstanceUid), { local: 0, in_cloud: 1, file_missing: 1 });
    assert.equal(archive.reads.query({ level: 'STUDY', keys: { PatientID: 'FEED-UPD' } })[0]?.PatientName, 'Version^Two');
    for await (const part of reader.retrieve(ids)) await archive.ingest(part.body, { callingAe: 'ARCHIVE', peer: 'azure', origin: 'cloud' });
    assert.ok((await readFile(path)).equals(second), 'the new version is what is cached now');
  });

  test('a delete removes the cached copy and the rows: the study is no longer found', async () => {
    const study = makeStudy({ series: 1, instancesPerSeries: 2, patientId: 'FEED-DEL', rows: 8, columns: 8 });
    for (const instance of study) azure.seedInstance(instance.buffer);
    await sync.syncOnce();
    const cached = await archive.ingest(Readable.from([study[0]!.buffer]), { callingAe: 'ARCHIVE', peer: 'azure', origin: 'cloud' });
    const res = await fetch(`${azure.baseUrl}/studies/${study[0]!.studyUid}`, { method: 'DELETE' });
    assert.equal(res.status, 204);
    const round = await sync.syncOnce();
    assert.equal(round.applied, 2);
    assert.ok(!existsSync(archive.paths.absolute(cached.relativePath)));
    for (const instance of study) assert.equal(instanceRow(instance.sopInstanceUid), undefined);
    assert.equal(archive.reads.query({ level: 'STUDY', keys: { PatientID: 'FEED-DEL' } }).length, 0);
  });

  test('a delete upstream of data this site has not delivered keeps it, and logs the conflict', async () => {
    const bytes = makeInstance({ patientId: 'FEED-MINE', rows: 8, columns: 8 });
    const mine = await archive.ingest(Readable.from([bytes]), { callingAe: 'CT', peer: 'modality' });
    azure.seedInstance(bytes);
    await fetch(`${azure.baseUrl}/studies/${mine.header.studyInstanceUid}`, { method: 'DELETE' });
    await sync.syncOnce();
    assert.ok(existsSync(archive.paths.absolute(mine.relativePath)));
    assert.deepEqual(instanceRow(mine.header.sopInstanceUid), { local: 1, in_cloud: 0, file_missing: 0 });
    assert.deepEqual(archive.outbox.rowsFor(mine.header.sopInstanceUid).map((r) => r.state), ['pending']);
    assert.deepEqual(log.events('change-feed-conflict').map((l) => [l.action, l.sopInstanceUid]), [['delete', mine.header.sopInstanceUid]]);
  });

  test('many entries are read in batches of batchSize, each committed with its cursor, until caught up', async () => {
    const study = makeStudy({ series: 2, instancesPerSeries: 5, patientId: 'FEED-MANY', rows: 8, columns: 8 });
    for (const instance of study) azure.seedInstance(instance.buffer);
    const round = await sync.syncOnce();
    assert.equal(round.applied, 10);
    const batches = log.events('change-feed-applied');
    assert.deepEqual(batches.map((b) => b.entries), [3, 3, 3, 1]);
    assert.equal((indexDb(archive).prepare('SELECT COUNT(*) AS n FROM instances WHERE study_uid = ?').get(study[0]!.studyUid) as { n: number }).n, 10);
    assert.equal(cursor().lastSequence, azure.changes().at(-1)!.sequence);
  });

  test('offline: the round fails, is logged once for the outage with a growing delay, and resumes from its cursor', async () => {
    const at = cursor();
    await azure.setFault({ kind: 'down', mode: 'refuse' });
    try {
      const delays: number[] = [];
      for (let n = 0; n < 3; n++) {
        assert.equal(await sync.tick(), undefined);
        delays.push(sync.nextDelay());
      }
      assert.deepEqual(delays, [1000, 2000, 4000]);
      assert.equal(log.events('cloud-sync-failed').length, 1, 'one line per outage');
      assert.equal(log.events('cloud-sync-failed')[0]!.kind, 'offline');
    } finally {
      await azure.clearFault();
    }
    const study = makeStudy({ series: 1, instancesPerSeries: 1, patientId: 'FEED-AFTER', rows: 8, columns: 8 });
    azure.seedInstance(study[0]!.buffer);
    const round = await sync.tick();
    assert.equal(round?.applied, 1);
    assert.equal(sync.nextDelay(), 1000);
    assert.equal(log.events('cloud-sync-resumed').length, 1);
    assert.ok(cursor().lastSequence > at.lastSequence);
    assert.equal(archive.reads.query({ level: 'STUDY', keys: { PatientID: 'FEED-AFTER' } }).length, 1);
  });
});

describe('Orthanc (no change feed): polled by QIDO-RS by study date', () => {
  let dir: string;
  let orthanc: OrthancPeer;
  let archive: Archive;
  let reader: ArchiveReader;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dicom-edge-poll-'));
    orthanc = await startOrthanc({ dir: join(dir, 'orthanc') });
    ({ archive } = await Archive.open({ dataDir: join(dir, 'edge'), limits, logger: pino({ level: 'silent' }), route: () => ['orthanc'] }));
    reader = new ArchiveReader({ baseUrl: orthanc.dicomWebUrl, auth: none, name: 'orthanc' });
  });
  after(async () => {
    await reader?.close();
    await archive?.close();
    await orthanc?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  async function upload(buffers: Buffer[]) {
    for (const buffer of buffers) {
      const res = await fetch(`${orthanc.httpUrl}/instances`, { method: 'POST', body: buffer as unknown as BodyInit, headers: { 'content-type': 'application/dicom' } });
      assert.equal(res.status, 200, await res.text());
    }
  }

  test('studies dated from the day before the last poll become cloud rows; older ones wait for a query', async () => {
    let today = new Date(2031, 4, 20);
    const log = recordingLogger();
    const told: string[][] = [];
    const sync = new CloudSync({
      archive, reader: () => reader, settings: () => ({ enabled: true, pollIntervalMs: 1000, batchSize: 100 }), logger: log.logger,
      onNewStudies: (uids) => told.push(uids), now: () => today,
    });
    const recent = makeStudy({ series: 1, instancesPerSeries: 2, patientId: 'POLL-1', patientName: 'Poll^Recent', studyDate: '20310519', modality: 'CT', rows: 8, columns: 8 });
    const old = makeStudy({ series: 1, instancesPerSeries: 1, patientId: 'POLL-1', studyDate: '20100101', rows: 8, columns: 8 });
    await upload([...recent, ...old].map((i) => i.buffer));
    const first = await sync.syncOnce();
    assert.equal(first.mode, 'qido-date');
    assert.deepEqual(first.newStudies, [recent[0]!.studyUid]);
    assert.deepEqual(told, [[recent[0]!.studyUid]]);
    assert.equal(log.events('change-feed-unsupported').length, 1);
    const found = archive.reads.query({ level: 'STUDY', keys: { PatientID: 'POLL-1' } });
    assert.deepEqual(found.map((m) => [m.StudyInstanceUID, m.InstanceAvailability, m.PatientName]), [[recent[0]!.studyUid, 'NEARLINE', 'Poll^Recent']]);
    assert.equal(found[0]?.NumberOfStudyRelatedInstances, 2);
    assert.deepEqual(JSON.parse(archive.cloud.readCursor('orthanc')!.cursor), { v: 'qido-date', polledOn: '20310520' });
    // Days later: the poll asks from the day before the last one, so a study of that day is still seen.
    today = new Date(2031, 4, 25);
    const late = makeStudy({ series: 1, instancesPerSeries: 1, patientId: 'POLL-2', studyDate: '20310519', rows: 8, columns: 8 });
    await upload(late.map((i) => i.buffer));
    const second = await sync.syncOnce();
    assert.deepEqual(second.newStudies, [late[0]!.studyUid], 'the known study is not new again');
    assert.equal(JSON.parse(archive.cloud.readCursor('orthanc')!.cursor).polledOn, dicomDate(today));
  });
});
