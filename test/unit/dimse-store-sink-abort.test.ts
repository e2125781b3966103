// A C-STORE whose sender vanishes before the archive reads its first byte: the association fails the
// StoreSink while the archive is still checking room or opening the temp file. The process must not
// see an unhandled 'error'; the ingest must see the abort when it does start reading.
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import { buildFileMeta } from '../../main/core/dicom/file-meta.js';
import { StoreSink } from '../../main/core/dimse/store-sink.js';
import { Archive, type IngestSource } from '../../main/core/store/archive.js';
import { IngestAbortedError } from '../../main/core/store/errors.js';
import { dataSetOf, EXPLICIT_LITTLE_ENDIAN } from '../support/dicom-ul.js';
import { makeInstance, SOP_CLASS_UIDS } from '../support/instance.js';
import { newUid } from '../support/uid.js';
import { indexDb } from '../support/index-db.js';

const noFlowControl = { pause: () => undefined, resume: () => undefined };
const context = { callingAe: 'VANISHING', peer: '127.0.0.1:40001' };

/** Access to the archive's steps, so a test can land the abort while one of them is pending. */
type ArchiveSteps = { ensureRoom(incomingBytes: number): Promise<void>; spool(source: IngestSource): Promise<unknown> };

function sinkFor(sopInstanceUid: string): StoreSink {
  const prefix = buildFileMeta({ sopClassUid: SOP_CLASS_UIDS.ctImage, sopInstanceUid, transferSyntaxUid: EXPLICIT_LITTLE_ENDIAN, sourceAeTitle: context.callingAe });
  return new StoreSink(prefix, noFlowControl);
}

describe('a StoreSink failed before the archive reads it', () => {
  let dir: string;
  let archive: Archive;
  let steps: ArchiveSteps;
  const original: Partial<ArchiveSteps> = {};
  const uncaught: Error[] = [];
  const onUncaught = (error: Error) => uncaught.push(error);

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dicom-edge-sink-abort-'));
    archive = (await Archive.open({ dataDir: dir, limits: { maxArchiveBytes: 0, minFreeBytes: 0, evictDelivered: false }, logger: pino({ level: 'silent' }) })).archive;
    steps = archive as unknown as ArchiveSteps;
    original.ensureRoom = steps.ensureRoom;
    original.spool = steps.spool;
    process.on('uncaughtException', onUncaught);
  });
  after(async () => {
    process.off('uncaughtException', onUncaught);
    await archive.close();
    await rm(dir, { recursive: true, force: true });
  });

  const tempFiles = async () => (await readdir(archive.paths.tempDir, { recursive: true, withFileTypes: true })).filter((e) => e.isFile());
  const rows = () => (indexDb(archive).prepare('SELECT COUNT(*) AS n FROM instances').get() as { n: number }).n;

  /** Starts an ingest of a half-sent data set, and fails its sink while `step` is under way. */
  async function vanishWhile(step: keyof ArchiveSteps): Promise<void> {
    const sopInstanceUid = newUid();
    const dataSet = dataSetOf(makeInstance({ sopInstanceUid, rows: 256, columns: 256 }));
    const sink = sinkFor(sopInstanceUid);
    const vanish = () => sink.fail(new IngestAbortedError('the connection closed before the data set was complete'));
    let landed = false;
    steps[step] = function (this: Archive, argument: never) {
      const pending = (original[step] as (a: never) => Promise<never>).call(this, argument);
      if (!landed) {
        landed = true;
        vanish(); // while `pending` (the statfs, or the temp file's open) is still under way
      }
      return pending;
    } as never;
    try {
      sink.write(dataSet.subarray(0, dataSet.length / 2));
      const work = archive.ingest(sink.out, { ...context, expect: { sopClassUid: SOP_CLASS_UIDS.ctImage, sopInstanceUid } });
      await assert.rejects(work, IngestAbortedError);
    } finally {
      steps[step] = original[step] as never;
    }
    assert.ok(landed, `the abort landed during ${step}`);
    // Give an 'error' emitted on the next tick the chance to surface as uncaught.
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(uncaught.map((e) => e.message), [], 'no unhandled error');
    assert.deepEqual(await tempFiles(), [], 'no temp file is left');
    assert.equal(rows(), 0, 'no index row is written');
  }

  test('while the archive checks for room', async () => {
    await vanishWhile('ensureRoom');
  });

  test('while the archive opens the temp file', async () => {
    await vanishWhile('spool');
  });

  test('the archive then stores the next instance as usual', async () => {
    const sopInstanceUid = newUid();
    const sink = sinkFor(sopInstanceUid);
    const work = archive.ingest(sink.out, { ...context, expect: { sopInstanceUid } });
    sink.end(dataSetOf(makeInstance({ sopInstanceUid })));
    assert.equal((await work).outcome, 'stored');
    assert.equal(rows(), 1);
  });
});
