// Rendered thumbnails are cached on disk, keyed by instance and parameters, and evicted with the study
// (issue 14, "Heavy work in a worker pool"; main/core/web/thumbnail-cache.ts).
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import { evictDelivered } from '../../main/core/store/eviction.js';
import type { WebService } from '../../main/core/web/web-service.js';
import { buildMultipartRelated } from '../doubles/multipart-related.js';
import { indexDb } from '../support/index-db.js';
import { makeInstance } from '../support/instance.js';
import { makeStudy } from '../support/study.js';
import { startWebAppliance, type WebAppliance } from '../support/web-appliance.js';

async function until(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs / 1000} s`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function stow(w: WebAppliance, instances: Buffer[]): Promise<void> {
  const { body, contentType } = buildMultipartRelated(instances);
  const response = await w.api('/dicom-web/studies', { method: 'POST', body, headers: { 'content-type': contentType, accept: 'application/dicom+json' } });
  assert.equal(response.status, 200, await response.text());
}

async function get(w: WebAppliance, path: string, accept = 'image/jpeg'): Promise<Buffer> {
  const response = await w.api(path, { headers: { accept } });
  const body = Buffer.from(await response.arrayBuffer());
  assert.equal(response.status, 200, `${path}: ${response.status} ${body.toString()}`);
  return body;
}

/** The cache files of an instance (none when its folder is gone). */
async function cacheFiles(w: WebAppliance, sopInstanceUid: string): Promise<string[]> {
  const dir = join(w.dataDir, 'cache', 'thumbnails', sopInstanceUid);
  return (await readdir(dir).catch(() => [] as string[])).map((name) => join(dir, name));
}

async function allCacheFiles(w: WebAppliance): Promise<string[]> {
  const root = join(w.dataDir, 'cache', 'thumbnails');
  const sops = await readdir(root).catch(() => [] as string[]);
  return (await Promise.all(sops.map((sop) => cacheFiles(w, sop)))).flat();
}

describe('the thumbnail cache', () => {
  let w: WebAppliance;
  let web: WebService;
  const study = makeStudy({ series: 1, instancesPerSeries: 3, rows: 64, columns: 64 });
  const [first, second, third] = study as [typeof study[0], typeof study[0], typeof study[0]];
  const instanceUrl = (i: typeof first) => `/dicom-web/studies/${i.studyUid}/series/${i.seriesUid}/instances/${i.sopInstanceUid}`;
  const renders = () => web.imageLoad.finished;

  before(async () => {
    w = await startWebAppliance();
    web = w.appliance.services.find((s) => s.name === 'http') as WebService;
    await stow(w, study.map((i) => i.buffer));
  });
  after(async () => {
    await w?.stop();
  });

  test('a second thumbnail request is served from disk: the image workers are not asked again, and the bytes are equal', async () => {
    const before = renders();
    const cold = await get(w, `${instanceUrl(first)}/thumbnail`);
    assert.equal(renders(), before + 1);
    assert.equal((await cacheFiles(w, first.sopInstanceUid)).length, 1, 'one file kept');
    const warm = await get(w, `${instanceUrl(first)}/thumbnail`);
    assert.equal(renders(), before + 1, 'the second request rendered nothing');
    assert.deepEqual(warm, cold);

    // Another parameter is another image; a thumbnail-sized /rendered is cached too, a full-size one is not.
    await get(w, `${instanceUrl(first)}/thumbnail`, 'image/png');
    assert.equal(renders(), before + 2, 'PNG is its own entry');
    const small = await get(w, `${instanceUrl(first)}/rendered?viewport=64,64&window=100,200`);
    assert.deepEqual(await get(w, `${instanceUrl(first)}/rendered?viewport=64,64&window=100,200`), small);
    assert.equal(renders(), before + 3, 'a thumbnail-sized /rendered is served from disk the second time');
    await get(w, `${instanceUrl(first)}/rendered?window=100,200`);
    await get(w, `${instanceUrl(first)}/rendered?window=100,200`);
    assert.equal(renders(), before + 5, 'a full-size /rendered is rendered every time');
    // The series thumbnail (the middle instance) shares the instance's file: same parameters, same image.
    await get(w, `/dicom-web/studies/${first.studyUid}/series/${first.seriesUid}/thumbnail`);
    await get(w, `/dicom-web/studies/${first.studyUid}/series/${first.seriesUid}/thumbnail`);
    assert.equal(renders(), before + 6);
  });

  test('the same cold thumbnail asked for 8 times at once is rendered once', async () => {
    const other = makeStudy({ series: 1, instancesPerSeries: 1, rows: 64, columns: 64 })[0]!;
    await stow(w, [other.buffer]);
    const before = renders();
    const images = await Promise.all(Array.from({ length: 8 }, () => get(w, `${instanceUrl(other)}/thumbnail`)));
    assert.equal(renders(), before + 1);
    for (const image of images) assert.deepEqual(image, images[0]);
  });

  test('a truncated or corrupted cache file is not served: it is rendered again and rewritten', async () => {
    const good = await get(w, `${instanceUrl(second)}/thumbnail`);
    const [file] = await cacheFiles(w, second.sopInstanceUid);
    assert.ok(file);
    const whole = await readFile(file);

    await writeFile(file, whole.subarray(0, whole.length - 10));
    let before = renders();
    assert.deepEqual(await get(w, `${instanceUrl(second)}/thumbnail`), good, 'truncated: rendered again');
    assert.equal(renders(), before + 1);
    assert.deepEqual(await readFile(file), whole, 'and written again whole');

    const flipped = Buffer.from(whole);
    flipped[flipped.length - 20]! ^= 0xff;
    await writeFile(file, flipped);
    before = renders();
    assert.deepEqual(await get(w, `${instanceUrl(second)}/thumbnail`), good, 'same length, other bytes: rendered again');
    assert.equal(renders(), before + 1);
  });

  test('a replaced instance gets a fresh thumbnail, and its old files go', async () => {
    const old = await get(w, `${instanceUrl(third)}/thumbnail`);
    const oldFiles = await cacheFiles(w, third.sopInstanceUid);
    assert.equal(oldFiles.length, 1);
    // The same SOP Instance UID with other pixels: 32 x 32 instead of 64 x 64.
    await stow(w, [makeInstance({ studyUid: third.studyUid, seriesUid: third.seriesUid, sopInstanceUid: third.sopInstanceUid, rows: 32, columns: 32 })]);
    await until('the old thumbnail removed', async () => !(await cacheFiles(w, third.sopInstanceUid)).includes(oldFiles[0]!));
    const before = renders();
    const fresh = await get(w, `${instanceUrl(third)}/thumbnail`);
    assert.equal(renders(), before + 1, 'rendered from the new file');
    assert.notDeepEqual(fresh, old);
  });

  test('evicting the study (delivered, least recently used) removes its cached thumbnails', async () => {
    for (const instance of study) await get(w, `${instanceUrl(instance)}/thumbnail`);
    for (const instance of study) assert.ok((await cacheFiles(w, instance.sopInstanceUid)).length > 0);
    // Delivered, and the archive destination holds it (as the forwarder and the cloud service would leave it):
    // eviction keeps its rows as cloud-only and drops the files.
    const { archive } = w.appliance;
    indexDb(archive).prepare('DELETE FROM outbox WHERE study_uid = ?').run(first.studyUid);
    archive.cloud.markInCloud(study.map((i) => i.sopInstanceUid));
    await evictDelivered(archive, Number.MAX_SAFE_INTEGER, pino({ level: 'silent' }));
    assert.equal(archive.reads.storedInstances({ study: first.studyUid }).length, 0, 'the study was evicted');
    await until('the evicted study\'s thumbnails removed',
      async () => (await Promise.all(study.map((i) => cacheFiles(w, i.sopInstanceUid)))).every((files) => files.length === 0));
  });

  test('deleting a study removes its cached thumbnails', async () => {
    const doomed = makeStudy({ series: 1, instancesPerSeries: 2, rows: 64, columns: 64 });
    await stow(w, doomed.map((i) => i.buffer));
    for (const instance of doomed) await get(w, `${instanceUrl(instance)}/thumbnail`);
    for (const instance of doomed) assert.ok((await cacheFiles(w, instance.sopInstanceUid)).length > 0);
    const response = await w.api(`/dicom-web/studies/${doomed[0]!.studyUid}?force=true`, { method: 'DELETE' });
    assert.ok(response.status < 300, `DELETE: ${response.status} ${await response.text()}`);
    await until('the deleted study\'s thumbnails removed',
      async () => (await Promise.all(doomed.map((i) => cacheFiles(w, i.sopInstanceUid)))).every((files) => files.length === 0));
  });

  test('a disk error in the cache never fails the request', async () => {
    const other = makeStudy({ series: 1, instancesPerSeries: 1, rows: 64, columns: 64 })[0]!;
    await stow(w, [other.buffer]);
    const root = join(w.dataDir, 'cache', 'thumbnails');
    await rm(root, { recursive: true, force: true });
    await writeFile(root, 'not a folder');
    try {
      const before = renders();
      const image = await get(w, `${instanceUrl(other)}/thumbnail`);
      assert.deepEqual([...image.subarray(0, 2)], [0xff, 0xd8], 'a JPEG');
      await get(w, `${instanceUrl(other)}/thumbnail`);
      assert.equal(renders(), before + 2, 'nothing cached, both rendered');
    } finally {
      await rm(root, { force: true });
    }
  });
});

test('the thumbnail cache stays within http.thumbnailCacheBytes, least recently used out first', async () => {
  const bound = 6000;
  const w = await startWebAppliance({ settings: { http: { thumbnailCacheBytes: bound } } });
  try {
    const study = makeStudy({ series: 1, instancesPerSeries: 12, rows: 64, columns: 64 });
    await stow(w, study.map((i) => i.buffer));
    const url = (i: typeof study[0]) => `/dicom-web/studies/${i.studyUid}/series/${i.seriesUid}/instances/${i.sopInstanceUid}/thumbnail`;
    let largest = 0;
    for (const instance of study) {
      largest = Math.max(largest, (await get(w, url(instance))).length);
      const files = await allCacheFiles(w);
      const sizes = await Promise.all(files.map(async (f) => (await stat(f)).size));
      assert.ok(sizes.reduce((a, b) => a + b, 0) <= bound, `${sizes.reduce((a, b) => a + b, 0)} bytes on disk, over ${bound}`);
      assert.equal((await cacheFiles(w, instance.sopInstanceUid)).length, 1, 'the newest is kept');
    }
    assert.ok(largest * 12 > bound, 'the test renders more than the bound holds');
    assert.equal((await cacheFiles(w, study[0]!.sopInstanceUid)).length, 0, 'the oldest went');
  } finally {
    await w.stop();
    await rm(w.dataDir, { recursive: true, force: true });
  }
});

test('thumbnails cached before a restart are served after it, and a write cut short is cleared away', async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'dicom-edge-thumbnail-restart-'));
  const instance = makeStudy({ series: 1, instancesPerSeries: 1, rows: 64, columns: 64 })[0]!;
  const url = `/dicom-web/studies/${instance.studyUid}/series/${instance.seriesUid}/instances/${instance.sopInstanceUid}/thumbnail`;
  let w = await startWebAppliance({ dataDir });
  let first: Buffer;
  try {
    await stow(w, [instance.buffer]);
    first = await get(w, url);
  } finally {
    await w.stop();
  }
  const [file] = await cacheFiles({ dataDir } as WebAppliance, instance.sopInstanceUid);
  assert.ok(file);
  const leftover = `${file}.0000.tmp`;
  await writeFile(leftover, 'half a thumbnail');
  await utimes(leftover, new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));
  w = await startWebAppliance({ dataDir });
  try {
    const web = w.appliance.services.find((s) => s.name === 'http') as WebService;
    // Counted at start (toward http.thumbnailCacheBytes) before anyone asks for it.
    const size = (await stat(file)).size;
    await until('the earlier run\'s file counted', () => web.thumbnailCache?.sizeBytes === size);
    assert.deepEqual(await cacheFiles(w, instance.sopInstanceUid), [file], 'the temp file of a cut-short write removed');
    const before = web.imageLoad.finished;
    assert.deepEqual(await get(w, url), first);
    assert.equal(web.imageLoad.finished, before, 'served from the file of the earlier run');
  } finally {
    await w.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
});

test('http.thumbnailCacheBytes is a validated setting, named when wrong', async () => {
  const { SettingsFile } = await import('../../main/core/settings/settings-file.js');
  const dir = await mkdtemp(join(tmpdir(), 'dicom-edge-thumbnail-settings-'));
  try {
    for (const value of [-1, 2.5, 'lots']) {
      await writeFile(join(dir, 'settings.json'), JSON.stringify({ http: { thumbnailCacheBytes: value } }));
      await assert.rejects(SettingsFile.open(dir), /field "http\.thumbnailCacheBytes" has value .*: must be a whole number of at least 0/);
    }
    await writeFile(join(dir, 'settings.json'), '{}');
    const { settings } = await SettingsFile.open(dir);
    assert.equal(settings.http.thumbnailCacheBytes, 256 * 1024 ** 2);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
