// Eviction by access under pressure (storage.evictDelivered): before an ingest is refused for the archive
// quota or the disk reserve, the least recently used confirmed studies go, as many as the shortfall needs;
// pinned studies stay; undelivered data is never evicted, whatever the pressure.
import { indexDb } from '../support/index-db.js';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, test } from 'node:test';
import pino from 'pino';
import { Archive } from '../../main/core/store/archive.js';
import { OutOfResourcesError } from '../../main/core/store/errors.js';
import { makeInstance } from '../support/instance.js';
import { newUid } from '../support/uid.js';

const local = { callingAe: 'MODALITY', peer: 'test' };

describe('eviction under pressure', () => {
  let dir: string;
  let archive: Archive;
  /** A disk of this many bytes that holds only the archive's files, stored and spooled (the reserve case). */
  let capacity = Number.MAX_SAFE_INTEGER;
  /** Bytes of the temp files being received: the archive measures the free space with them on the disk. */
  const spooledBytes = async () => {
    let total = 0;
    for (const shard of [archive.paths.tempDir, ...archive.paths.tempShards]) {
      for (const entry of await readdir(shard, { withFileTypes: true })) {
        if (entry.isFile()) total += (await stat(join(shard, entry.name))).size;
      }
    }
    return total;
  };

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dicom-edge-evict-'));
    capacity = Number.MAX_SAFE_INTEGER;
    ({ archive } = await Archive.open({
      dataDir: dir, limits: { maxArchiveBytes: 0, minFreeBytes: 0, evictDelivered: true }, logger: pino({ level: 'silent' }), route: () => ['azure'],
      disk: { free: async () => capacity - archive.usedBytes - (await spooledBytes()), maxAgeMs: 0 },
    }));
  });
  afterEach(async () => {
    await archive.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function study(instances: number, options: { deliver?: boolean; accessedAt?: number } = {}) {
    const studyUid = newUid();
    const uids: string[] = [];
    for (let n = 0; n < instances; n++) {
      uids.push((await archive.ingest(Readable.from([makeInstance({ studyUid, rows: 16, columns: 16 })]), local)).header.sopInstanceUid);
    }
    if (options.deliver) {
      indexDb(archive).prepare("UPDATE outbox SET state = 'delivered' WHERE study_uid = ?").run(studyUid);
      archive.cloud.markInCloud(uids);
    }
    if (options.accessedAt !== undefined) indexDb(archive).prepare('UPDATE studies SET last_access_at = ? WHERE study_uid = ?').run(options.accessedAt, studyUid);
    return { studyUid, uids };
  }
  const localCount = (studyUid: string) => archive.cloud.studyLocation(studyUid)?.numLocalInstances ?? 0;
  const filesOf = (uids: string[]) => uids.map((uid) => archive.paths.absolute(String((indexDb(archive).prepare('SELECT path FROM instances WHERE sop_instance_uid = ?').get(uid) as { path: string }).path)));
  const incoming = () => Readable.from([makeInstance({ rows: 16, columns: 16 })]);
  /** Local bytes of a study (instances differ by a few bytes: their UIDs differ in length). */
  const sizeOf = (studyUid: string) => (indexDb(archive).prepare('SELECT size_bytes AS s FROM studies WHERE study_uid = ?').get(studyUid) as { s: number }).s;

  test('quota: a shortfall larger than the incoming instance evicts as many least recently used studies as it takes', async () => {
    const a = await study(2, { deliver: true, accessedAt: 1000 });
    const b = await study(2, { deliver: true, accessedAt: 2000 });
    const c = await study(2, { deliver: true, accessedAt: 3000 });
    const next = makeInstance({ rows: 16, columns: 16 });
    // The quota is lowered below what is stored: two studies must go before anything more fits.
    const quota = sizeOf(c.studyUid) + next.length + 10;
    archive.setLimits({ maxArchiveBytes: quota, minFreeBytes: 0, evictDelivered: true });
    await archive.ingest(Readable.from([next]), local);
    assert.deepEqual([localCount(a.studyUid), localCount(b.studyUid), localCount(c.studyUid)], [0, 0, 2], 'a and b, least recently used, evicted; c kept');
    assert.ok(archive.usedBytes <= quota);
  });

  test('disk reserve: the least recently used studies go until the reserve holds, before the ingest is refused', async () => {
    const a = await study(1, { deliver: true, accessedAt: 1000 });
    const b = await study(1, { deliver: true, accessedAt: 2000 });
    const c = await study(1, { deliver: true, accessedAt: 3000 });
    const next = makeInstance({ rows: 16, columns: 16 });
    // A disk with room for exactly one more instance; the reserve needs a and b gone (a alone is not enough).
    capacity = archive.usedBytes + next.length;
    archive.setLimits({ maxArchiveBytes: 0, minFreeBytes: sizeOf(a.studyUid) + sizeOf(b.studyUid) - 10, evictDelivered: true });
    await archive.ingest(Readable.from([next]), local);
    assert.deepEqual([localCount(a.studyUid), localCount(b.studyUid), localCount(c.studyUid)], [0, 0, 1]);
    assert.equal(archive.cloud.studyLocation(a.studyUid)?.location, 'cloud', 'evicted studies stay findable');
  });

  test('a pinned study stays, whatever its last access; the next least recently used goes instead', async () => {
    const pinned = await study(1, { deliver: true, accessedAt: 1 });
    const a = await study(1, { deliver: true, accessedAt: 1000 });
    const b = await study(1, { deliver: true, accessedAt: 2000 });
    assert.ok(archive.cloud.setPinned(pinned.studyUid, true));
    const next = makeInstance({ rows: 16, columns: 16 });
    // One byte short: one study must go.
    archive.setLimits({ maxArchiveBytes: archive.usedBytes + next.length - 1, minFreeBytes: 0, evictDelivered: true });
    await archive.ingest(Readable.from([next]), local);
    assert.deepEqual([localCount(pinned.studyUid), localCount(a.studyUid), localCount(b.studyUid)], [1, 0, 1]);
  });

  test('undelivered data is never evicted: past the quota, ingest is refused with out-of-resources and nothing is evicted', async () => {
    const undelivered = [await study(2, { accessedAt: 1 }), await study(1, { accessedAt: 2 })];
    const files = undelivered.flatMap((s) => filesOf(s.uids));
    archive.setLimits({ maxArchiveBytes: Math.floor(archive.usedBytes / 2), minFreeBytes: 0, evictDelivered: true });
    const evicted: string[] = [];
    const off = archive.events.on('instance-evicted', (e) => evicted.push(e.sopInstanceUid));
    const deleted: string[] = [];
    const offDeleted = archive.events.on('instance-deleted', (e) => deleted.push(e.sopInstanceUid));
    for (let n = 0; n < 3; n++) {
      await assert.rejects(archive.ingest(incoming(), local), (error: Error) => error instanceof OutOfResourcesError && /archive quota reached/.test(error.message));
    }
    off();
    offDeleted();
    assert.deepEqual([evicted, deleted], [[], []]);
    assert.ok(files.every((f) => existsSync(f)));
    assert.deepEqual(undelivered.map((s) => localCount(s.studyUid)), [2, 1]);
    // Under the reserve too.
    capacity = archive.usedBytes + 10;
    archive.setLimits({ maxArchiveBytes: 0, minFreeBytes: 1000, evictDelivered: true });
    await assert.rejects(archive.ingest(incoming(), local), (error: Error) => error instanceof OutOfResourcesError && /disk reserve reached/.test(error.message));
    assert.ok(files.every((f) => existsSync(f)));
  });

  test('without evictDelivered nothing is evicted: the ingest is refused', async () => {
    const a = await study(1, { deliver: true });
    archive.setLimits({ maxArchiveBytes: archive.usedBytes, minFreeBytes: 0, evictDelivered: false });
    await assert.rejects(archive.ingest(incoming(), local), OutOfResourcesError);
    assert.equal(localCount(a.studyUid), 1);
  });
});
