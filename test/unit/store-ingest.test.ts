import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import { Archive } from '../../main/core/store/archive.js';
import { CannotUnderstandError, MismatchError, OutOfResourcesError } from '../../main/core/store/errors.js';
import { ArchivePaths } from '../../main/core/store/paths.js';
import { InvalidUidError } from '../../main/core/dicom/uid.js';
import { readDicom } from '../../main/core/dicom/dcmjs.js';
import { datasetToJson } from '../../main/core/dicom/metadata-json.js';
import { makeInstance } from '../support/instance.js';
import { newUid } from '../support/uid.js';
import { indexDb } from '../support/index-db.js';
import { mountTmpfs, tmpfsUnavailable } from '../support/tmpfs.js';

const silent = pino({ level: 'silent' });
const tmpfsSkip = await tmpfsUnavailable();
const noLimits = { maxArchiveBytes: 0, minFreeBytes: 0, evictDelivered: false };

function chunked(bytes: Buffer, size = 4096): Readable {
  const parts: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += size) parts.push(bytes.subarray(i, i + size));
  return Readable.from(parts);
}

async function openArchive(dir: string, limits = noLimits, route?: () => string[]) {
  return (await Archive.open({ dataDir: dir, limits, logger: silent, route })).archive;
}

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) out.push(join(entry.parentPath ?? (entry as unknown as { path: string }).path, entry.name));
  }
  return out;
}

/** Rewrites (0008,0018) of an explicit-LE instance; dcmjs itself truncates UIDs longer than 64 characters. */
function withSopInstanceUid(bytes: Buffer, uid: string): Buffer {
  const tag = Buffer.from([0x08, 0x00, 0x18, 0x00, 0x55, 0x49]);
  const at = bytes.indexOf(tag, 132 + 12);
  assert.ok(at > 0, 'SOP Instance UID element found');
  const oldLength = bytes.readUInt16LE(at + 6);
  const value = Buffer.from(uid.length % 2 ? `${uid}\0` : uid, 'latin1');
  const header = Buffer.from(bytes.subarray(at, at + 8));
  header.writeUInt16LE(value.length, 6);
  return Buffer.concat([bytes.subarray(0, at), header, value, bytes.subarray(at + 8 + oldLength)]);
}

const ctx = { callingAe: 'MODALITY1', peer: '127.0.0.1:40000' };

describe('archive ingest', () => {
  let dir: string;
  let archive: Archive;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dicom-edge-ingest-'));
    archive = await openArchive(dir);
  });
  after(async () => {
    await archive.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('stores the exact bytes, indexes all four levels and queues the instance', async () => {
    const studyUid = newUid();
    const seriesUid = newUid();
    const sopInstanceUid = newUid();
    const bytes = makeInstance({
      studyUid, seriesUid, sopInstanceUid, patientName: 'Müller^Jürgen', patientId: 'PID-1', patientBirthDate: '19700102',
      patientSex: 'M', studyDate: '20260101', studyTime: '101500', accession: 'ACC1', studyDescription: 'CT Head',
      seriesDescription: 'Axial', modality: 'CT', seriesNumber: 3, instanceNumber: 7, rows: 32, columns: 48,
      extra: { BodyPartExamined: 'HEAD', ReferringPhysicianName: 'Who^Doctor', StudyID: 'S1' },
    });
    const result = await archive.ingest(chunked(bytes), ctx);
    assert.equal(result.outcome, 'stored');
    const stored = await readFile(join(dir, 'archive', studyUid, seriesUid, `${sopInstanceUid}.dcm`));
    assert.ok(stored.equals(bytes), 'file on disk is byte-identical');

    const study = indexDb(archive).prepare('SELECT * FROM studies WHERE study_uid = ?').get(studyUid) as Record<string, unknown>;
    assert.equal(study.patient_name, 'Müller^Jürgen');
    assert.equal(study.patient_id, 'PID-1');
    assert.equal(study.patient_birth_date, '19700102');
    assert.equal(study.patient_sex, 'M');
    assert.equal(study.study_date, '20260101');
    assert.equal(study.study_time, '101500');
    assert.equal(study.accession_number, 'ACC1');
    assert.equal(study.study_id, 'S1');
    assert.equal(study.study_description, 'CT Head');
    assert.equal(study.referring_physician_name, 'Who^Doctor');
    assert.equal(study.modalities_in_study, 'CT');
    assert.equal(study.num_series, 1);
    assert.equal(study.num_instances, 1);
    const series = indexDb(archive).prepare('SELECT * FROM series WHERE series_uid = ?').get(seriesUid) as Record<string, unknown>;
    assert.equal(series.modality, 'CT');
    assert.equal(series.series_number, 3);
    assert.equal(series.series_description, 'Axial');
    assert.equal(series.body_part_examined, 'HEAD');
    assert.equal(series.num_instances, 1);
    const instance = indexDb(archive).prepare('SELECT * FROM instances WHERE sop_instance_uid = ?').get(sopInstanceUid) as Record<string, unknown>;
    assert.equal(instance.sop_class_uid, '1.2.840.10008.5.1.4.1.1.2');
    assert.equal(instance.instance_number, 7);
    assert.equal(instance.transfer_syntax_uid, '1.2.840.10008.1.2.1');
    assert.equal(instance.rows, 32);
    assert.equal(instance.columns, 48);
    assert.equal(instance.size_bytes, bytes.length);
    assert.equal(instance.calling_ae, 'MODALITY1');
    assert.match(String(instance.sha256), /^[0-9a-f]{64}$/);

    const outbox = archive.outbox.rowsFor(sopInstanceUid);
    assert.equal(outbox.length, 1);
    assert.equal(outbox[0]!.state, 'pending');
    assert.equal(outbox[0]!.destination, '*');
    assert.equal(outbox[0]!.replaces_earlier, 0);
  });

  test('decodes names with the dataset SpecificCharacterSet (ISO_IR 100)', async () => {
    const sopInstanceUid = newUid();
    const bytes = makeInstance({ sopInstanceUid, patientName: 'Ascii^Only', specificCharacterSet: 'ISO_IR 100' });
    // Replace the ASCII name with Latin-1 bytes of the same length: 'Ä' is 0xC4 in ISO-8859-1.
    const at = bytes.indexOf(Buffer.from('Ascii^Only'));
    Buffer.from([0xc4]).copy(bytes, at);
    await archive.ingest(chunked(bytes), ctx);
    const row = indexDb(archive).prepare('SELECT patient_name FROM studies s JOIN instances i ON i.study_uid = s.study_uid WHERE i.sop_instance_uid = ?')
      .get(sopInstanceUid) as { patient_name: string };
    assert.equal(row.patient_name, 'Äscii^Only');
  });

  test('a duplicate with identical bytes succeeds, changes nothing and is not queued again', async () => {
    const bytes = makeInstance();
    const first = await archive.ingest(chunked(bytes), ctx);
    const uid = first.header.sopInstanceUid;
    indexDb(archive).prepare("UPDATE outbox SET state = 'delivered' WHERE sop_instance_uid = ?").run(uid);
    const before = indexDb(archive).prepare('SELECT * FROM instances WHERE sop_instance_uid = ?').get(uid);
    const second = await archive.ingest(chunked(bytes), ctx);
    assert.equal(second.outcome, 'duplicate');
    assert.deepEqual(indexDb(archive).prepare('SELECT * FROM instances WHERE sop_instance_uid = ?').get(uid), before);
    assert.deepEqual(archive.outbox.rowsFor(uid).map((r) => r.state), ['delivered']);
  });

  test('a duplicate with different bytes replaces the file and is queued again, marked as replacing', async () => {
    const sopInstanceUid = newUid();
    const studyUid = newUid();
    const seriesUid = newUid();
    const v1 = makeInstance({ sopInstanceUid, studyUid, seriesUid, patientName: 'First^Version' });
    const v2 = makeInstance({ sopInstanceUid, studyUid, seriesUid, patientName: 'Second^Version' });
    await archive.ingest(chunked(v1), ctx);
    indexDb(archive).prepare("UPDATE outbox SET state = 'delivered' WHERE sop_instance_uid = ?").run(sopInstanceUid);
    const result = await archive.ingest(chunked(v2), ctx);
    assert.equal(result.outcome, 'replaced');
    const onDisk = await readFile(join(dir, 'archive', studyUid, seriesUid, `${sopInstanceUid}.dcm`));
    assert.ok(onDisk.equals(v2));
    const study = indexDb(archive).prepare('SELECT patient_name, num_instances FROM studies WHERE study_uid = ?').get(studyUid) as Record<string, unknown>;
    assert.deepEqual(study, { patient_name: 'Second^Version', num_instances: 1 });
    const [row] = archive.outbox.rowsFor(sopInstanceUid);
    assert.equal(row!.state, 'pending');
    assert.equal(row!.replaces_earlier, 1);
  });

  test('ingestOrHold holds a replacement: nothing changes until commit, and drop keeps the stored instance', async () => {
    const ids = { sopInstanceUid: newUid(), studyUid: newUid(), seriesUid: newUid() };
    const v1 = makeInstance({ ...ids, patientName: 'Kept^Version' });
    const v2 = makeInstance({ ...ids, patientName: 'Held^Version' });
    const path = join(dir, 'archive', ids.studyUid, ids.seriesUid, `${ids.sopInstanceUid}.dcm`);
    const rows = () => ({
      instance: indexDb(archive).prepare('SELECT * FROM instances WHERE sop_instance_uid = ?').get(ids.sopInstanceUid),
      study: indexDb(archive).prepare('SELECT * FROM studies WHERE study_uid = ?').get(ids.studyUid),
      outbox: archive.outbox.rowsFor(ids.sopInstanceUid),
    });
    assert.equal((await archive.ingestOrHold(chunked(v1), ctx)).outcome, 'stored', 'a new instance is stored at once');
    assert.equal((await archive.ingestOrHold(chunked(v1), ctx)).outcome, 'duplicate', 'the same bytes again are a duplicate');
    const before = rows();

    const dropped = await archive.ingestOrHold(chunked(v2), ctx);
    assert.ok(dropped.outcome === 'held');
    assert.deepEqual(rows(), before);
    assert.ok((await readFile(path)).equals(v1));
    await dropped.drop();
    assert.deepEqual(rows(), before);
    assert.ok((await readFile(path)).equals(v1));
    await assert.rejects(dropped.commit(), /already committed or dropped/);

    const committed = await archive.ingestOrHold(chunked(v2), ctx);
    assert.ok(committed.outcome === 'held');
    assert.equal((await committed.commit()).outcome, 'replaced');
    assert.ok((await readFile(path)).equals(v2));
    assert.equal((indexDb(archive).prepare('SELECT patient_name FROM studies WHERE study_uid = ?').get(ids.studyUid) as { patient_name: string }).patient_name,
      'Held^Version');
    assert.deepEqual((await filesUnder(archive.paths.tempDir)), [], 'no held file is left');
  });

  test('a later instance of a known series updates the study and series attributes it changes, and only those', async () => {
    const studyUid = newUid();
    const seriesUid = newUid();
    const same = { studyUid, seriesUid, patientId: 'PID-7', studyDescription: 'CT Chest', modality: 'CT' };
    await archive.ingest(chunked(makeInstance({ ...same, patientName: 'Before^Name', seriesDescription: 'Axial', instanceNumber: 1 })), ctx);
    await archive.ingest(chunked(makeInstance({ ...same, patientName: 'Before^Name', seriesDescription: 'Axial', instanceNumber: 2 })), ctx);
    await archive.ingest(chunked(makeInstance({ ...same, patientName: 'After^Name', seriesDescription: 'Coronal', instanceNumber: 3 })), ctx);
    const study = indexDb(archive).prepare('SELECT patient_name, patient_id, study_description, num_series, num_instances FROM studies WHERE study_uid = ?')
      .get(studyUid) as Record<string, unknown>;
    assert.deepEqual(study, { patient_name: 'After^Name', patient_id: 'PID-7', study_description: 'CT Chest', num_series: 1, num_instances: 3 });
    const series = indexDb(archive).prepare('SELECT series_description, modality, num_instances FROM series WHERE series_uid = ?').get(seriesUid);
    assert.deepEqual(series, { series_description: 'Coronal', modality: 'CT', num_instances: 3 });
  });

  test('study and series counts, sizes and modalities follow each new instance', async () => {
    const studyUid = newUid();
    const ct = newUid();
    const mr = newUid();
    const items = [
      makeInstance({ studyUid, seriesUid: ct, modality: 'CT' }),
      makeInstance({ studyUid, seriesUid: ct, modality: 'CT' }),
      makeInstance({ studyUid, seriesUid: mr, modality: 'MR', sopClassUid: '1.2.840.10008.5.1.4.1.1.4' }),
    ];
    for (const bytes of items) await archive.ingest(chunked(bytes), ctx);
    const study = indexDb(archive).prepare('SELECT num_series, num_instances, size_bytes, modalities_in_study FROM studies WHERE study_uid = ?').get(studyUid);
    assert.deepEqual(study, {
      num_series: 2, num_instances: 3, size_bytes: items.reduce((n, b) => n + b.length, 0), modalities_in_study: 'CT\\MR',
    });
    const series = indexDb(archive).prepare('SELECT num_instances, size_bytes FROM series WHERE series_uid = ?').get(ct);
    assert.deepEqual(series, { num_instances: 2, size_bytes: items[0]!.length + items[1]!.length });
  });

  test('emits instance-stored, study-updated and outbox-changed events', async () => {
    const seen: string[] = [];
    const off = archive.events.onAny((name) => seen.push(name));
    await archive.ingest(chunked(makeInstance()), ctx);
    off();
    assert.deepEqual(seen, ['instance-stored', 'study-updated', 'outbox-changed']);
  });
});

describe('archive refuses bad input and writes nothing', () => {
  let dir: string;
  let archive: Archive;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dicom-edge-bad-'));
    archive = await openArchive(dir);
  });
  after(async () => {
    await archive.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function assertNothingStored() {
    const counts = indexDb(archive).prepare(`SELECT (SELECT COUNT(*) FROM instances) i, (SELECT COUNT(*) FROM studies) s, (SELECT COUNT(*) FROM outbox) o,
      (SELECT COUNT(*) FROM instance_metadata) m`).get();
    assert.deepEqual(counts, { i: 0, s: 0, o: 0, m: 0 });
    assert.deepEqual(await filesUnder(join(dir, 'archive')), []);
  }

  for (const [label, uid, pattern] of [
    ['a path-traversal UID', '../../x', /characters other than digits and dots/],
    ['a 70-character UID', '1.' + '2'.repeat(68), /70 characters long/],
    ['an empty UID', '', /missing SOP Instance UID|is empty/],
  ] as const) {
    test(`SOP Instance UID: ${label}`, async () => {
      const bytes = withSopInstanceUid(makeInstance(), uid);
      await assert.rejects(archive.ingest(chunked(bytes), ctx), (error: Error) => {
        assert.ok(error instanceof CannotUnderstandError, `${error.name}: ${error.message}`);
        assert.match(error.message, pattern);
        return true;
      });
      await assertNothingStored();
    });
  }

  test('a Study Instance UID with path traversal', async () => {
    const bytes = makeInstance({ studyUid: '../../etc' });
    await assert.rejects(archive.ingest(chunked(bytes), ctx), CannotUnderstandError);
    await assertNothingStored();
  });

  test('the path builder itself refuses traversal', () => {
    const paths = new ArchivePaths(dir);
    assert.throws(() => paths.relativeInstancePath('1.2', '1.3', '../x'), InvalidUidError);
    assert.throws(() => paths.relativeInstancePath('1.2/..', '1.3', '1.4'), InvalidUidError);
  });

  test('a truncated file', async () => {
    const bytes = makeInstance({ rows: 64, columns: 64 });
    await assert.rejects(archive.ingest(chunked(bytes.subarray(0, bytes.length - 100)), ctx), (error: Error) => {
      assert.ok(error instanceof CannotUnderstandError);
      assert.match(error.message, /truncated/);
      return true;
    });
    await assertNothingStored();
  });

  test('a file truncated inside the header', async () => {
    const bytes = makeInstance();
    await assert.rejects(archive.ingest(chunked(bytes.subarray(0, 400)), ctx), CannotUnderstandError);
    await assertNothingStored();
  });

  test('random bytes', async () => {
    const bytes = Buffer.alloc(5000);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7919 + 13) % 251;
    await assert.rejects(archive.ingest(chunked(bytes), ctx), (error: Error) => {
      assert.ok(error instanceof CannotUnderstandError);
      assert.match(error.message, /not a DICOM Part 10 file/);
      return true;
    });
    await assertNothingStored();
  });

  test('a file without SOP Instance UID', async () => {
    const bytes = makeInstance({ omitSopInstanceUid: true });
    await assert.rejects(archive.ingest(chunked(bytes), ctx), /missing SOP Instance UID/);
    await assertNothingStored();
  });

  test('a dataset whose SOP Class differs from the declared one', async () => {
    const bytes = makeInstance();
    await assert.rejects(
      archive.ingest(chunked(bytes), { ...ctx, expect: { sopClassUid: '1.2.840.10008.5.1.4.1.1.7' } }),
      (error: Error) => error instanceof MismatchError && error.dimseStatus === 0xa900,
    );
    await assertNothingStored();
  });

  test('a sender that aborts mid-stream leaves nothing', async () => {
    const bytes = makeInstance();
    async function* aborting() {
      yield bytes.subarray(0, 1000);
      throw new Error('connection reset');
    }
    await assert.rejects(archive.ingest(aborting(), ctx));
    await assertNothingStored();
  });
});

describe('disk reserve and quota', () => {
  test('a reserve larger than the free space gives out-of-resources and writes nothing', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'dicom-edge-quota-'));
    const archive = await openArchive(dir, { maxArchiveBytes: 0, minFreeBytes: Number.MAX_SAFE_INTEGER, evictDelivered: false });
    try {
      await assert.rejects(archive.ingest(chunked(makeInstance()), ctx), (error: Error) => {
        assert.ok(error instanceof OutOfResourcesError);
        assert.equal((error as OutOfResourcesError).dimseStatus, 0xa700);
        assert.match(error.message, /disk reserve/);
        return true;
      });
      assert.deepEqual(await filesUnder(join(dir, 'archive')), []);
      assert.equal((indexDb(archive).prepare('SELECT COUNT(*) AS n FROM instances').get() as { n: number }).n, 0);
    } finally {
      await archive.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('archive quota refuses, and eviction frees only delivered studies, oldest first', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'dicom-edge-evict-'));
    const one = makeInstance().length;
    const archive = await openArchive(dir, { maxArchiveBytes: one * 2 + 10, minFreeBytes: 0, evictDelivered: false }, () => ['cloud']);
    try {
      const a = await archive.ingest(chunked(makeInstance()), ctx);
      const b = await archive.ingest(chunked(makeInstance()), ctx);
      await assert.rejects(archive.ingest(chunked(makeInstance()), ctx), /archive quota/);
      archive.setLimits({ maxArchiveBytes: one * 2 + 10, minFreeBytes: 0, evictDelivered: true });
      // Nothing delivered yet: eviction must not touch pending instances.
      await assert.rejects(archive.ingest(chunked(makeInstance()), ctx), OutOfResourcesError);
      indexDb(archive).prepare("UPDATE outbox SET state = 'delivered' WHERE sop_instance_uid = ?").run(a.header.sopInstanceUid);
      const c = await archive.ingest(chunked(makeInstance()), ctx);
      const left = (indexDb(archive).prepare('SELECT sop_instance_uid FROM instances ORDER BY sop_instance_uid').all() as Array<{ sop_instance_uid: string }>)
        .map((r) => r.sop_instance_uid).sort();
      assert.deepEqual(left, [b.header.sopInstanceUid, c.header.sopInstanceUid].sort());
    } finally {
      await archive.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('disk reserve: an instance is counted once, and a re-sent one needs no room', () => {
  test('below the reserve, an identical re-send of a stored instance is a duplicate; a new one is refused', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'dicom-edge-reserve-'));
    const archive = await openArchive(dir);
    try {
      const bytes = makeInstance();
      const first = await archive.ingest(chunked(bytes), ctx);
      assert.equal(first.outcome, 'stored');
      archive.setLimits({ maxArchiveBytes: 0, minFreeBytes: Number.MAX_SAFE_INTEGER, evictDelivered: false });
      const again = await archive.ingest(chunked(bytes), ctx);
      assert.equal(again.outcome, 'duplicate');
      assert.equal(again.sha256, first.sha256);
      await assert.rejects(archive.ingest(chunked(makeInstance()), ctx), /disk reserve reached/);
      const changed = makeInstance({ sopInstanceUid: first.header.sopInstanceUid, studyUid: first.header.studyInstanceUid,
        seriesUid: first.header.seriesInstanceUid, patientName: 'CHANGED^BYTES' });
      await assert.rejects(archive.ingest(chunked(changed), ctx), OutOfResourcesError, 'different bytes under the same UID need room');
      assert.equal((indexDb(archive).prepare('SELECT COUNT(*) AS n FROM instances').get() as { n: number }).n, 1);
      assert.deepEqual((await filesUnder(archive.paths.root)).map((f) => f.slice(archive.paths.root.length + 1)), [first.relativePath]);
    } finally {
      await archive.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  describe('on a real small file system', { skip: tmpfsSkip }, () => {
    // About 2 MB: large enough that counting it twice is the difference between room and none.
    const big = () => makeInstance({ rows: 1024, columns: 1024 });
    const margin = 512 * 1024; // room for the index's write-ahead log

    // The archive trusts a free-space measurement for a moment; it is reopened after each fill so that
    // it measures the disk as filled.
    test('with no reserve, an instance is stored when the free space holds it once, not twice', async () => {
      const disk = await mountTmpfs(16 * 1024 * 1024);
      try {
        const first = await openArchive(disk.dir);
        await first.ingest(chunked(makeInstance()), ctx);
        await first.close();
        const bytes = big();
        await disk.fill(bytes.length + margin);
        const archive = await openArchive(disk.dir);
        try {
          const free = await disk.free();
          assert.ok(free >= bytes.length && free < 2 * bytes.length, `free ${free} holds the instance once (${bytes.length}), not twice`);
          const result = await archive.ingest(chunked(bytes, 64 * 1024), ctx);
          assert.equal(result.outcome, 'stored');
        } finally {
          await archive.close();
        }
      } finally {
        await disk.unmount();
      }
    });

    test('an identical re-send of a stored instance is a duplicate when it would not fit again, and on a full disk', async () => {
      const disk = await mountTmpfs(16 * 1024 * 1024);
      try {
        const bytes = big();
        let archive = await openArchive(disk.dir);
        const stored = await archive.ingest(chunked(bytes, 64 * 1024), ctx);
        assert.equal(stored.outcome, 'stored');
        await archive.close();

        await disk.fill(bytes.length + margin);
        archive = await openArchive(disk.dir);
        try {
          assert.ok((await disk.free()) < 2 * bytes.length);
          assert.equal((await archive.ingest(chunked(bytes, 64 * 1024), ctx)).outcome, 'duplicate', 'fits once more, not twice');
        } finally {
          await archive.close();
        }

        await disk.unfill();
        await disk.fill();
        assert.equal(await disk.free(), 0);
        archive = await openArchive(disk.dir);
        try {
          const resent = await archive.ingest(chunked(bytes, 64 * 1024), ctx);
          assert.equal(resent.outcome, 'duplicate', 'a full disk still acknowledges what it holds');
          assert.equal(resent.relativePath, stored.relativePath);

          await assert.rejects(archive.ingest(chunked(makeInstance()), ctx), (error: Error) => {
            assert.ok(error instanceof OutOfResourcesError, `${error.name}: ${error.message}`);
            assert.equal(error.dimseStatus, 0xa700);
            return true;
          });
          const files = (await filesUnder(archive.paths.root)).map((f) => f.slice(archive.paths.root.length + 1));
          assert.deepEqual(files, [stored.relativePath], 'no temp file and no second instance');
          // Through the archive's own connection: an index opened on a full disk admits no other.
          assert.equal(archive.reads.indexCounts().instances, 1);
        } finally {
          await archive.close();
        }
      } finally {
        await disk.unmount();
      }
    });
  });
});

describe('recovery at start', () => {
  /** An archive whose index commit can be made to fail, as a crash between the rename and the commit would leave it. */
  async function archiveThatCanFail(dir: string) {
    const failing = { now: false };
    const archive = await openArchive(dir, noLimits, () => {
      if (failing.now) throw new Error('the process died here');
      return ['cloud'];
    });
    return { archive, failing };
  }

  const sha = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

  test('a replacement of the same size cut short after its rename is re-hashed and re-indexed at the next start', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'dicom-edge-replace-'));
    try {
      // Every UID fixed: a Frame of Reference UID drawn per instance could differ in length.
      const ids = { sopInstanceUid: newUid(), studyUid: newUid(), seriesUid: newUid(), frameOfReferenceUid: newUid() };
      const v1 = makeInstance({ ...ids, patientName: 'First^Version' });
      const v2 = makeInstance({ ...ids, patientName: 'Other^Version' });
      assert.equal(v1.length, v2.length, 'the new bytes have the same size');
      const { archive, failing } = await archiveThatCanFail(dir);
      const stored = await archive.ingest(chunked(v1), ctx);
      failing.now = true;
      await assert.rejects(archive.ingest(chunked(v2), ctx));
      const file = archive.paths.absolute(stored.relativePath);
      assert.ok((await readFile(file)).equals(v2), 'the new bytes were renamed into place');
      assert.equal((indexDb(archive).prepare('SELECT sha256 FROM instances').get() as { sha256: string }).sha256, sha(v1), 'the index still describes the old ones');
      indexDb(archive).close();
      await archive.close();

      const { archive: again, recovery } = await Archive.open({ dataDir: dir, limits: noLimits, logger: silent, route: () => ['cloud'] });
      try {
        assert.equal(recovery.filesReindexed, 1);
        const row = indexDb(again).prepare('SELECT sha256, size_bytes FROM instances WHERE sop_instance_uid = ?').get(ids.sopInstanceUid);
        assert.deepEqual(row, { sha256: sha(v2), size_bytes: v2.length }, 'the index describes the file in place');
        const study = indexDb(again).prepare('SELECT patient_name FROM studies WHERE study_uid = ?').get(ids.studyUid);
        assert.deepEqual(study, { patient_name: 'Other^Version' }, "and holds the file's attributes");
        assert.deepEqual(again.outbox.rowsFor(ids.sopInstanceUid).map((r) => [r.state, r.replaces_earlier]), [['pending', 1]]);
        assert.deepEqual(indexDb(again).prepare('SELECT * FROM replacements').all(), [], 'the replacement is finished');
        const described = again.reads.instanceMetadata(ids.sopInstanceUid, sha(v2));
        assert.ok(described, 'the DICOM JSON describes the file in place');
        assert.deepEqual(JSON.parse(described)['00100010'], { vr: 'PN', Value: [{ Alphabetic: 'Other^Version' }] });
      } finally {
        indexDb(again).close();
        await again.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('a replacement that moves an instance to another series, cut short, leaves only the new file, indexed', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'dicom-edge-replace-'));
    try {
      const sopInstanceUid = newUid();
      const studyUid = newUid();
      const v1 = makeInstance({ sopInstanceUid, studyUid, seriesUid: newUid(), patientName: 'First^Version' });
      const v2 = makeInstance({ sopInstanceUid, studyUid, seriesUid: newUid(), patientName: 'Other^Version' });
      const { archive, failing } = await archiveThatCanFail(dir);
      const old = await archive.ingest(chunked(v1), ctx);
      failing.now = true;
      await assert.rejects(archive.ingest(chunked(v2), ctx));
      const root = archive.paths.root;
      assert.equal((await filesUnder(root)).length, 2, 'the new file is in place next to the old one');
      await archive.close();

      const { archive: again } = await Archive.open({ dataDir: dir, limits: noLimits, logger: silent, route: () => ['cloud'] });
      try {
        const row = indexDb(again).prepare('SELECT path, sha256 FROM instances WHERE sop_instance_uid = ?').get(sopInstanceUid) as { path: string; sha256: string };
        assert.equal(row.sha256, sha(v2));
        assert.notEqual(row.path, old.relativePath);
        assert.deepEqual((await filesUnder(root)).map((f) => f.slice(root.length + 1)), [row.path], 'the old file is gone');
      } finally {
        indexDb(again).close();
        await again.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('removes temp files left by a crash, from every temp folder, and keeps the stored instances', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'dicom-edge-recover-'));
    try {
      const first = await openArchive(dir);
      const stored = await first.ingest(chunked(makeInstance({})), ctx);
      const paths = first.paths;
      await first.close();
      assert.ok(paths.tempShards.length > 1, 'incoming files are spread over several folders');
      // A crash mid-spool leaves .part files: in a shard, and (from before the shards) in the top folder.
      const leftovers = [join(paths.tempShards[0]!, 'a.part'), join(paths.tempShards.at(-1)!, 'b.part'), join(paths.tempDir, 'c.part')];
      for (const file of leftovers) await writeFile(file, 'half an instance');

      const { archive, recovery } = await Archive.open({ dataDir: dir, limits: noLimits, logger: silent });
      try {
        assert.equal(recovery.tempFilesRemoved, 3);
        const files = (await filesUnder(paths.root)).map((f) => f.slice(paths.root.length + 1));
        assert.deepEqual(files, [stored.relativePath]);
        assert.equal(recovery.filesIndexed + recovery.rowsMissingFile, 0);
      } finally {
        await archive.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('DICOM JSON kept with each instance', () => {
  let dir: string;
  let archive: Archive;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dicom-edge-metadata-'));
    archive = await openArchive(dir);
  });
  after(async () => {
    await archive.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('is written in the ingest\'s transaction, as the whole file describes it, even when the header runs past the bytes kept', async () => {
    // A 300 kB text before Pixel Data: more than the 256 kB kept while receiving, so the file is read for the rest.
    const long = 'x'.repeat(300_000);
    for (const bytes of [makeInstance({ rows: 16, columns: 16 }), makeInstance({ rows: 16, columns: 16, extra: { '00291010': { vr: 'UT', Value: [long] } } })]) {
      const result = await archive.ingest(chunked(bytes), ctx);
      const kept = archive.reads.instanceMetadata(result.header.sopInstanceUid, result.sha256);
      assert.ok(kept, 'described');
      const whole = readDicom(bytes);
      assert.equal(kept, JSON.stringify(datasetToJson(whole.dict, '', whole.meta)));
      const row = indexDb(archive).prepare('SELECT encoding, length(json) AS size FROM instance_metadata WHERE sop_instance_uid = ?')
        .get(result.header.sopInstanceUid) as { encoding: string; size: number };
      assert.equal(row.encoding, 'gzip');
      assert.ok(row.size < Buffer.byteLength(kept) / 2, `gzipped to ${row.size} of ${Buffer.byteLength(kept)} bytes`);
    }
  });

  test('goes with its instance: removed with it, dropped when its copy is evicted', async () => {
    const removed = await archive.ingest(chunked(makeInstance()), ctx);
    const evicted = await archive.ingest(chunked(makeInstance()), ctx);
    const db = indexDb(archive);
    const described = (uid: string) => db.prepare('SELECT COUNT(*) FROM instance_metadata WHERE sop_instance_uid = ?').pluck().get(uid);
    assert.equal(described(removed.header.sopInstanceUid), 1);
    assert.equal(await archive.removeInstance(removed.header.sopInstanceUid), true);
    assert.equal(described(removed.header.sopInstanceUid), 0);
    db.prepare('UPDATE instances SET in_cloud = 1 WHERE sop_instance_uid = ?').run(evicted.header.sopInstanceUid);
    assert.ok((await archive.evictInstance(evicted.header.sopInstanceUid)) > 0);
    assert.equal(described(evicted.header.sopInstanceUid), 0);
  });
});
