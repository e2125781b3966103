// The index rows of instances fetched from the archive (store/index-writer.ts): an instance the archive listed
// first (a cloud-only row) that becomes local is counted by increments, so the cost of committing a study
// does not grow with the square of its size, and the counts stay those a full recount gives.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parseInstanceHeader } from '../../main/core/dicom/header.js';
import { toDicomJson } from '../../main/core/dicom/dicom-json.js';
import { CloudIndex } from '../../main/core/store/cloud-index.js';
import { openDatabase, type Db } from '../../main/core/store/database.js';
import { IndexWriter } from '../../main/core/store/index-writer.js';
import { ArchivePaths } from '../../main/core/store/paths.js';
import { makeInstance } from '../support/instance.js';
import { newUid } from '../support/uid.js';

/** The database, with every statement it runs recorded (its SQL, once per run). */
function recording(db: Db): { db: Db; ran: string[] } {
  const ran: string[] = [];
  const wrap = (statement: object, sql: string) => new Proxy(statement, {
    get(target, name, receiver) {
      const value = Reflect.get(target, name, receiver) as unknown;
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        if (name === 'run' || name === 'get' || name === 'all') ran.push(sql);
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  const proxy = new Proxy(db, {
    get(target, name, receiver) {
      const value = Reflect.get(target, name, receiver) as unknown;
      if (name === 'prepare') return (sql: string) => wrap(target.prepare(sql), sql);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
  return { db: proxy, ran };
}

function headerOf(bytes: Uint8Array) {
  const parsed = parseInstanceHeader(bytes, bytes.length, bytes.subarray(-8));
  assert.equal(parsed.kind, 'parsed');
  return (parsed as { header: Parameters<IndexWriter['write']>[0] }).header;
}

describe('index rows of instances the archive listed first', () => {
  let dir: string;
  let db: Db;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dicom-edge-index-writer-'));
    db = openDatabase(join(dir, 'index.sqlite'), () => undefined);
  });
  after(async () => {
    db?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('each one made local is counted by increments (no recount of its series or study), and the counts stay right', () => {
    const paths = new ArchivePaths(dir);
    const studyUid = newUid();
    const seriesUids = [newUid(), newUid()];
    const instances = seriesUids.flatMap((seriesUid, s) => Array.from({ length: 3 }, (_, n) => makeInstance({
      studyUid, seriesUid, instanceNumber: n + 1, seriesNumber: s + 1, modality: s === 0 ? 'CT' : 'MR', rows: 8, columns: 8,
    })));
    const headers = instances.map(headerOf);
    // The archive lists the study: cloud-only rows, counted as known and not local.
    new CloudIndex(db, paths).upsert('instance', headers.map((h) => toDicomJson({
      StudyInstanceUID: h.studyInstanceUid, SeriesInstanceUID: h.seriesInstanceUid, SOPInstanceUID: h.sopInstanceUid, Modality: h.modality,
    })));
    const { db: watched, ran } = recording(db);
    const writer = new IndexWriter(watched);
    const made = [0, 1, 3, 4]; // two of each series
    for (const i of made) {
      const header = headers[i]!;
      ran.length = 0;
      const counts = db.transaction(() => writer.write(header, {
        relativePath: paths.relativeInstancePath(header.studyInstanceUid, header.seriesInstanceUid, header.sopInstanceUid),
        sizeBytes: instances[i]!.length, sha256: 'x', callingAe: 'ARCHIVE', receivedAt: Date.now(),
      }, writer.existing(header.sopInstanceUid), 'cloud'))();
      assert.deepEqual(counts, { numSeries: 2, numInstances: 6 });
      const recounts = ran.filter((sql) => /COUNT\(|SUM\(/.test(sql));
      assert.deepEqual(recounts, [], `instance ${i} recounted its series or study`);
    }
    const bytes = (indices: number[]) => indices.reduce((sum, i) => sum + instances[i]!.length, 0);
    const series = (uid: string) => db.prepare('SELECT num_instances, num_local_instances, size_bytes FROM series WHERE series_uid = ?').get(uid);
    assert.deepEqual(series(seriesUids[0]!), { num_instances: 3, num_local_instances: 2, size_bytes: bytes([0, 1]) });
    assert.deepEqual(series(seriesUids[1]!), { num_instances: 3, num_local_instances: 2, size_bytes: bytes([3, 4]) });
    const study = db.prepare('SELECT num_series, num_instances, num_local_instances, size_bytes, modalities_in_study FROM studies WHERE study_uid = ?');
    assert.deepEqual(study.get(studyUid), { num_series: 2, num_instances: 6, num_local_instances: 4, size_bytes: bytes(made), modalities_in_study: 'CT\\MR' });
    // A full recount agrees with the increments.
    new IndexWriter(db).recount(seriesUids[0]!, studyUid, Date.now());
    new IndexWriter(db).recountSeries(seriesUids[1]!);
    assert.deepEqual(study.get(studyUid), { num_series: 2, num_instances: 6, num_local_instances: 4, size_bytes: bytes(made), modalities_in_study: 'CT\\MR' });
    assert.deepEqual(series(seriesUids[0]!), { num_instances: 3, num_local_instances: 2, size_bytes: bytes([0, 1]) });
    assert.deepEqual(series(seriesUids[1]!), { num_instances: 3, num_local_instances: 2, size_bytes: bytes([3, 4]) });
    assert.deepEqual(db.prepare('SELECT local, in_cloud, file_missing FROM instances WHERE sop_instance_uid = ?').get(headers[0]!.sopInstanceUid),
      { local: 1, in_cloud: 1, file_missing: 0 });
  });
});
