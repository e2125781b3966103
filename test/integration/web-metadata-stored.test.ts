// WADO-RS /metadata from the DICOM JSON kept in the index at ingest: equal to Orthanc's DICOMweb plugin for
// the same instances (attribute for attribute, except where PS3.18 lets servers differ), answered without the
// DICOM files, backfilled for instances stored without it, and kept or dropped with its instance.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { makeInstance, makeInstanceInSyntax, makeMultiFrame, newUid, SOP_CLASS_UIDS } from '../support/fixtures.js';
import { indexDb } from '../support/index-db.js';
import { startOrthanc, type OrthancPeer } from '../support/peers.js';
import { logLines, startWebAppliance, type WebAppliance } from '../support/web-appliance.js';

type Json = Record<string, { vr: string; Value?: unknown[]; InlineBinary?: string; BulkDataURI?: string }>;

const BOUNDARY = 'metadata-test-boundary';

function multipart(files: Buffer[]): Buffer {
  const chunks: Buffer[] = [];
  for (const bytes of files) chunks.push(Buffer.from(`--${BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n`), bytes, Buffer.from('\r\n'));
  chunks.push(Buffer.from(`--${BOUNDARY}--\r\n`));
  return Buffer.concat(chunks);
}

async function stow(w: WebAppliance, files: Buffer[]): Promise<void> {
  const res = await w.api('/dicom-web/studies', {
    method: 'POST', body: multipart(files),
    headers: { 'content-type': `multipart/related; type="application/dicom"; boundary=${BOUNDARY}`, accept: 'application/dicom+json' },
  });
  assert.equal(res.status, 200, await res.text());
}

async function metadataOf(w: WebAppliance, path: string): Promise<Json[]> {
  const res = await w.api(`/dicom-web/${path}/metadata`, { headers: { accept: 'application/dicom+json' } });
  const text = await res.text();
  assert.equal(res.status, 200, text);
  return JSON.parse(text) as Json[];
}

function sop(json: Json): string {
  return json['00080018']!.Value![0] as string;
}

const BINARY_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'UN']);

/**
 * Where PS3.18 lets two servers describe the same instance differently, and nothing else:
 * - the order of instances and of attributes (F.2: a JSON object; the order of a study's instances is not defined);
 * - BulkDataURI values: each server's own URIs (F.2.6);
 * - a binary value (OB, OD, OF, OL, OV, OW, UN) inline or by reference: the origin server chooses (F.2.7), so only
 *   its VR and presence are compared;
 * - File Meta Information (group 0002) is not part of the data set (PS3.10 7.1); a server may add the
 *   Transfer Syntax UID (0002,0010) to say what the bulk data is encoded in (PS3.18 8.7.3.5 leaves it open);
 * - group length (gggg,0000) elements are retired (PS3.5 7.2) and may be left out.
 * And one where the reference departs from the standard: Orthanc's plugin leaves Pixel Data (7FE0,0010) out of
 * its metadata, where PS3.18 10.4.1.1.2 replaces bulk data by a BulkDataURI; ours is checked on its own.
 */
function comparable(json: Json): Json {
  const out: Json = {};
  for (const tag of Object.keys(json).sort()) {
    const element = json[tag]!;
    if (tag.startsWith('0002') || tag.endsWith('0000') || tag === '7FE00010') continue;
    if (BINARY_VRS.has(element.vr)) {
      out[tag] = { vr: element.vr, ...(element.InlineBinary !== undefined || element.BulkDataURI !== undefined ? { Value: ['<binary>'] } : {}) };
    } else if (element.vr === 'SQ') {
      out[tag] = { vr: 'SQ', ...(element.Value ? { Value: (element.Value as Json[]).map(comparable) } : {}) };
    } else {
      out[tag] = element;
    }
  }
  return out;
}

describe('WADO-RS metadata from the DICOM JSON kept at ingest', () => {
  let dir: string;
  let orthanc: OrthancPeer;
  let w: WebAppliance;
  const studyUid = newUid();
  const seriesUid = newUid();
  const files: Buffer[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dicom-edge-metadata-'));
    const common = { studyUid, patientName: 'Meta^Data^^Dr', patientId: 'META-1', studyDate: '20240517', accession: 'ACC-META' };
    files.push(makeInstance({
      ...common, seriesUid, instanceNumber: 1, rows: 16, columns: 16,
      extra: {
        ImageType: ['ORIGINAL', 'PRIMARY', 'AXIAL'],
        PixelSpacing: [0.5, 0.25],
        ImagePositionPatient: [-12.5, 3, 100.25],
        WindowCenter: [40, 400], WindowWidth: [350, 1500],
        ReferencedImageSequence: [{ ReferencedSOPClassUID: SOP_CLASS_UIDS.ctImage, ReferencedSOPInstanceUID: newUid() }],
        ImageComments: 'kept as text',
        '00091010': { vr: 'LO', Value: ['PRIVATE VALUE'] },
        '00090010': { vr: 'LO', Value: ['DICOMEDGE TEST'] },
      },
    }));
    files.push(makeInstance({ ...common, seriesUid, instanceNumber: 2, rows: 16, columns: 16, transferSyntax: '1.2.840.10008.1.2' }));
    files.push(makeInstance({ ...common, seriesUid, instanceNumber: 3, rows: 16, columns: 16, transferSyntax: '1.2.840.10008.1.2.2' }));
    files.push(makeMultiFrame({ ...common, seriesUid: newUid(), frames: 3, rows: 8, columns: 8 }));
    const jpeg = await makeInstanceInSyntax(join(dir, 'fixtures'), 'jpeg-baseline', { ...common, seriesUid: newUid(), rows: 16, columns: 16 });
    files.push(await readFile(jpeg.path));
    const rle = await makeInstanceInSyntax(join(dir, 'fixtures'), 'rle', { ...common, seriesUid: newUid(), rows: 16, columns: 16 });
    files.push(await readFile(rle.path));

    orthanc = await startOrthanc({ dir: join(dir, 'orthanc') });
    for (const bytes of files) {
      const res = await fetch(`${orthanc.httpUrl}/instances`, { method: 'POST', body: bytes as unknown as BodyInit, headers: { 'content-type': 'application/dicom' } });
      assert.equal(res.status, 200, await res.text());
    }
    w = await startWebAppliance();
    await stow(w, files);
  });
  after(async () => {
    await w?.stop();
    await orthanc?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test('study metadata equals Orthanc\'s, attribute for attribute, but for the differences PS3.18 allows', async () => {
    const ours = await metadataOf(w, `studies/${studyUid}`);
    const res = await fetch(`${orthanc.dicomWebUrl}/studies/${studyUid}/metadata`, { headers: { accept: 'application/dicom+json' } });
    assert.equal(res.status, 200);
    const theirs = (await res.json()) as Json[];
    assert.equal(ours.length, files.length);
    assert.deepEqual(ours.map(sop).sort(), theirs.map(sop).sort());
    const reference = new Map(theirs.map((json) => [sop(json), json]));
    for (const json of ours) {
      assert.deepEqual(comparable(json), comparable(reference.get(sop(json))!), `instance ${sop(json)}`);
      // Our BulkDataURIs point at this server's bulkdata resource of the instance.
      const pixelData = json['7FE00010']!;
      assert.match(pixelData.BulkDataURI!, new RegExp(`^${w.dicomWebUrl}/studies/${studyUid}/series/[0-9.]+/instances/${sop(json)}/bulkdata/7FE00010$`));
    }
  });

  test('QIDO-RS at instance level returns any attribute from the kept DICOM JSON: includefield=all, a keyword, a tag', async () => {
    const search = async (query: string) => {
      const res = await w.api(`/dicom-web/studies/${studyUid}/series/${seriesUid}/instances?${query}`, { headers: { accept: 'application/dicom+json' } });
      const text = await res.text();
      assert.equal(res.status, 200, text);
      const results = JSON.parse(text) as Json[];
      const first = results.find((r) => r['00200013']?.Value?.[0] === 1);
      assert.ok(first, text);
      return first;
    };
    const all = await search('includefield=all');
    const metadata = (await metadataOf(w, `studies/${studyUid}/series/${seriesUid}`)).find((j) => j['00200013']!.Value![0] === 1)!;
    for (const tag of ['00204000', '00280030', '00200032', '00081140', '00091010', '00281050']) {
      assert.deepEqual(all[tag], metadata[tag], `attribute ${tag}`);
    }
    assert.equal(all['7FE00010']!.BulkDataURI, metadata['7FE00010']!.BulkDataURI);
    const some = await search('includefield=ImageComments&includefield=00280030');
    assert.deepEqual(some['00204000'], { vr: 'LT', Value: ['kept as text'] });
    assert.deepEqual(some['00280030'], metadata['00280030']);
    assert.equal(some['00200032'], undefined, 'only what was asked for');
  });

  test('each instance is described once at ingest, gzipped in the index', async () => {
    const rows = indexDb(w.appliance.archive).prepare(`
      SELECT m.encoding, i.sop_instance_uid FROM instances i JOIN instance_metadata m ON m.sop_instance_uid = i.sop_instance_uid AND m.sha256 = i.sha256
      WHERE i.study_uid = ?`).all(studyUid) as Array<{ encoding: string }>;
    assert.equal(rows.length, files.length);
    assert.ok(rows.every((r) => r.encoding === 'gzip'), JSON.stringify(rows));
  });

  test('metadata is answered with the DICOM files gone, at study, series and instance level', async () => {
    const before = await metadataOf(w, `studies/${studyUid}`);
    const paths = indexDb(w.appliance.archive).prepare('SELECT path FROM instances WHERE study_uid = ?').pluck().all(studyUid) as string[];
    const moved = join(dir, 'moved-away');
    const { mkdir, rename } = await import('node:fs/promises');
    await mkdir(moved, { recursive: true });
    for (const path of paths) await rename(w.appliance.archive.paths.absolute(path), join(moved, path.replaceAll('/', '_')));
    try {
      assert.deepEqual(await metadataOf(w, `studies/${studyUid}`), before);
      const series = await metadataOf(w, `studies/${studyUid}/series/${seriesUid}`);
      assert.deepEqual(series.map(sop), before.filter((j) => j['0020000E']!.Value![0] === seriesUid).map(sop));
      const one = before[0]!;
      const instance = await metadataOf(w, `studies/${studyUid}/series/${one['0020000E']!.Value![0]}/instances/${sop(one)}`);
      assert.deepEqual(instance, [one]);
    } finally {
      for (const path of paths) await rename(join(moved, path.replaceAll('/', '_')), w.appliance.archive.paths.absolute(path));
    }
  });

  test('an instance stored without its DICOM JSON is described from its file when asked, and kept', async () => {
    const db = indexDb(w.appliance.archive);
    const expected = await metadataOf(w, `studies/${studyUid}`);
    db.prepare('DELETE FROM instance_metadata WHERE sop_instance_uid IN (SELECT sop_instance_uid FROM instances WHERE study_uid = ?)').run(studyUid);
    assert.deepEqual(await metadataOf(w, `studies/${studyUid}`), expected);
    const kept = db.prepare('SELECT COUNT(*) FROM instance_metadata m JOIN instances i USING (sop_instance_uid) WHERE i.study_uid = ?').pluck().get(studyUid);
    assert.equal(kept, files.length);
  });

  test('a description of other bytes than the instance\'s is not used', async () => {
    const db = indexDb(w.appliance.archive);
    const expected = await metadataOf(w, `studies/${studyUid}`);
    // As an older version would leave it after replacing the file: the row describes bytes the instance no longer has.
    db.prepare(`UPDATE instance_metadata SET sha256 = 'stale', encoding = 'identity', json = CAST('{"00100010":{"vr":"PN","Value":[{"Alphabetic":"Stale"}]}}' AS BLOB)
      WHERE sop_instance_uid IN (SELECT sop_instance_uid FROM instances WHERE study_uid = ?)`).run(studyUid);
    assert.deepEqual(await metadataOf(w, `studies/${studyUid}`), expected);
  });
});

describe('DICOM JSON of instances stored before it was kept', () => {
  test('a start describes every local instance in the background and logs once, with counts', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'dicom-edge-metadata-backfill-'));
    try {
      const studyUid = newUid();
      let w = await startWebAppliance({ dataDir });
      const files = Array.from({ length: 5 }, (_, n) => makeInstance({ studyUid, seriesUid: studyUid + '.1', instanceNumber: n + 1, rows: 8, columns: 8 }));
      await stow(w, files);
      indexDb(w.appliance.archive).prepare('DELETE FROM instance_metadata').run();
      await w.stop();
      w = await startWebAppliance({ dataDir });
      try {
        const db = indexDb(w.appliance.archive);
        const deadline = Date.now() + 60_000;
        while ((db.prepare('SELECT COUNT(*) FROM instance_metadata').pluck().get() as number) < files.length) {
          assert.ok(Date.now() < deadline, 'the backfill did not finish');
          await sleep(50);
        }
        let lines: Record<string, unknown>[] = [];
        while (!(lines = (await logLines(w)).filter((l) => l.event === 'metadata-backfill')).length) {
          assert.ok(Date.now() < deadline, 'the backfill did not log');
          await sleep(50);
        }
        assert.equal(lines.length, 1);
        assert.equal(lines[0]!.described, files.length);
        assert.equal(lines[0]!.unreadable, 0);
      } finally {
        await w.stop();
      }
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
