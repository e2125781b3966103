// A part of the archive's answer spooled whole is taken into the archive as it is: the ingest renames that file
// into place rather than writing a copy, and reads only its head and tail.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import { Archive } from '../../main/core/store/archive.js';
import { KEPT_HEAD_BYTES, spoolToTempFile, WrittenTempFile } from '../../main/core/store/temp-file.js';
import { makeStudy } from '../support/study.js';

describe('a file written whole in a temp folder', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dicom-edge-written-'));
  });
  after(async () => rm(dir, { recursive: true, force: true }));

  test('is taken as it is: same path, its size, head and tail, hashed when asked', async () => {
    const bytes = Buffer.alloc(KEPT_HEAD_BYTES + 1000);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 31) % 251;
    const path = join(dir, 'whole.spool.part');
    await writeFile(path, bytes);
    const taken = await spoolToTempFile(new WrittenTempFile(path), join(dir, 'unused'), { syncOnce: true });
    assert.equal(taken.path, path, 'no copy');
    assert.equal(taken.sizeBytes, bytes.length);
    assert.ok(Buffer.concat(taken.headChunks).equals(bytes.subarray(0, KEPT_HEAD_BYTES)));
    assert.ok(taken.tail.equals(bytes.subarray(-8)));
    assert.equal(taken.sha256, createHash('sha256').update(bytes).digest('hex'));
    const unhashed = await spoolToTempFile(new WrittenTempFile(path), join(dir, 'unused'), { hash: false });
    assert.equal(unhashed.sha256, '');
  });

  test('an archive ingest of it renames it into place, byte for byte, and leaves no temp file', async () => {
    const data = await mkdtemp(join(tmpdir(), 'dicom-edge-written-archive-'));
    const { archive } = await Archive.open({ dataDir: data, limits: { maxArchiveBytes: 0, minFreeBytes: 0, evictDelivered: false }, logger: pino({ level: 'silent' }) });
    try {
      const [instance] = makeStudy({ series: 1, instancesPerSeries: 1, patientId: 'WRITTEN' });
      const path = archive.paths.spoolFile();
      await writeFile(path, instance!.buffer);
      const result = await archive.ingest(new WrittenTempFile(path), { callingAe: 'ARCHIVE', peer: 'test', origin: 'cloud' });
      assert.equal(result.outcome, 'stored');
      assert.ok((await readFile(archive.paths.absolute(result.relativePath))).equals(instance!.buffer));
      const left = (await Promise.all(archive.paths.tempShards.map((shard) => readdir(shard)))).flat();
      assert.deepEqual(left, [], 'the spool file itself went into place');
    } finally {
      await archive.close();
      await rm(data, { recursive: true, force: true });
    }
  });
});
