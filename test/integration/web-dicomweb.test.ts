import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import { api as dwc } from 'dicomweb-client';
import { makeInstance, makeMultiFrame, makeStudy } from '../support/fixtures.js';
import { newUid } from '../support/uid.js';
import { startWebAppliance, type WebAppliance } from '../support/web-appliance.js';
import { installXMLHttpRequest } from '../support/xhr.js';
import { indexDb } from '../support/index-db.js';

installXMLHttpRequest();

const BOUNDARY = 'test-boundary-0123456789';

function multipart(parts: Array<{ type?: string; bytes: Buffer }>, boundary = BOUNDARY): Buffer {
  const chunks: Buffer[] = [];
  for (const part of parts) {
    chunks.push(Buffer.from(`--${boundary}\r\nContent-Type: ${part.type ?? 'application/dicom'}\r\n\r\n`), part.bytes, Buffer.from('\r\n'));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return Buffer.concat(chunks);
}

/** Splits a multipart/related response into its part bodies. */
function splitMultipart(body: Buffer, contentType: string): Array<{ headers: string; bytes: Buffer }> {
  const boundary = /boundary=("?)([^";]+)\1/.exec(contentType)?.[2];
  assert.ok(boundary, `no boundary in ${contentType}`);
  const delimiter = Buffer.from(`--${boundary}`);
  const parts: Array<{ headers: string; bytes: Buffer }> = [];
  let at = body.indexOf(delimiter);
  for (;;) {
    const start = at + delimiter.length;
    if (body.subarray(start, start + 2).toString() === '--') break;
    const headerEnd = body.indexOf('\r\n\r\n', start);
    const next = body.indexOf(Buffer.concat([Buffer.from('\r\n'), delimiter]), headerEnd);
    parts.push({ headers: body.subarray(start + 2, headerEnd).toString(), bytes: body.subarray(headerEnd + 4, next) });
    at = next + 2;
  }
  return parts;
}

async function countInstances(w: WebAppliance): Promise<number> {
  return (indexDb(w.appliance.archive).prepare('SELECT COUNT(*) AS n FROM instances').get() as { n: number }).n;
}

describe('DICOMweb service driven by dicomweb-client', () => {
  let w: WebAppliance;
  // dicomweb-client's declarations mark optional options as required; calls are checked by the assertions.
  let client: Record<string, (options: Record<string, unknown>) => Promise<unknown>>;
  const study = makeStudy({ series: 2, instancesPerSeries: 3, patientName: 'Webtest^Alice', patientId: 'WEB001', studyDate: '20240301', accession: 'ACCWEB1' });

  before(async () => {
    w = await startWebAppliance();
    client = new dwc.DICOMwebClient({ url: w.dicomWebUrl, headers: { Authorization: `Bearer ${w.token}` }, verbose: false } as never) as unknown as typeof client;
  });
  after(async () => {
    await w.stop();
  });

  test('STOW-RS with dicomweb-client stores every instance and answers with RetrieveURLs', async () => {
    const datasets = study.map((i) => i.buffer.buffer.slice(i.buffer.byteOffset, i.buffer.byteOffset + i.buffer.byteLength));
    const response = await client.storeInstances({ datasets });
    // dicomweb-client hands back the STOW-RS response body as text.
    const parsed = typeof response === 'string' ? JSON.parse(response) : response;
    const referenced = (parsed as Record<string, { Value: Array<Record<string, { Value: string[] }>> }>)['00081199']!.Value;
    assert.equal(referenced.length, study.length);
    for (const item of referenced) assert.match(item['00081190']!.Value[0]!, new RegExp(`/dicom-web/studies/${study[0]!.studyUid}/series/`));
    assert.equal(await countInstances(w), study.length);
  });

  test('QIDO-RS finds the study by prefix, lists its series and instances', async () => {
    const studies = (await client.searchForStudies({ queryParams: { PatientName: 'Webtest*' } })) as Array<Record<string, { Value?: unknown[] }>>;
    assert.equal(studies.length, 1);
    assert.equal(studies[0]!['0020000D']!.Value![0], study[0]!.studyUid);
    assert.deepEqual(studies[0]!['00100010']!.Value![0], { Alphabetic: 'Webtest^Alice' });
    assert.equal(studies[0]!['00201208']!.Value![0], 6);
    const series = (await client.searchForSeries({ studyInstanceUID: study[0]!.studyUid })) as unknown[];
    assert.equal(series.length, 2);
    const instances = (await client.searchForInstances({ studyInstanceUID: study[0]!.studyUid, seriesInstanceUID: study[0]!.seriesUid })) as unknown[];
    assert.equal(instances.length, 3);
    const fuzzy = (await client.searchForStudies({ queryParams: { PatientName: 'ali', fuzzymatching: 'true' } })) as unknown[];
    assert.equal(fuzzy.length, 1);
    const none = (await client.searchForStudies({ queryParams: { PatientID: 'NOSUCH' } })) as unknown[];
    assert.deepEqual(none, []);
  });

  test('QIDO-RS status codes, includefield, limit and offset', async () => {
    const empty = await w.api('/dicom-web/studies?PatientID=NOSUCH');
    assert.equal(empty.status, 204);
    const page = await w.api('/dicom-web/studies/' + study[0]!.studyUid + '/instances?limit=2&offset=1&includefield=00280010');
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') ?? '', /application\/dicom\+json/);
    const rows = (await page.json()) as Array<Record<string, unknown>>;
    assert.equal(rows.length, 2);
    assert.ok(rows[0]!['00280010'], 'includefield Rows is returned');
    const all = (await (await w.api('/dicom-web/studies?includefield=all')).json()) as Array<Record<string, unknown>>;
    assert.ok(all[0]!['00201200'], 'includefield=all returns NumberOfPatientRelatedStudies');
    assert.equal((await w.api('/dicom-web/studies?NoSuchAttribute=1')).status, 400);
    assert.equal((await w.api('/dicom-web/studies?StudyDate=2024-01')).status, 400);
    assert.equal((await w.api('/dicom-web/studies?limit=-1')).status, 400);
    assert.equal((await w.api('/dicom-web/studies/1.2.abc/series')).status, 400);
  });

  test('WADO-RS returns the stored bytes for transfer-syntax=* and metadata with an ETag', async () => {
    const first = study[0]!;
    const parts = (await client.retrieveInstance({
      studyInstanceUID: first.studyUid, seriesInstanceUID: first.seriesUid, sopInstanceUID: first.sopInstanceUid,
    })) as ArrayBuffer | ArrayBuffer[];
    const bytes = Buffer.from(Array.isArray(parts) ? parts[0]! : parts);
    assert.ok(bytes.equals(first.buffer), 'retrieved instance equals what was stored');

    const series = (await client.retrieveSeries({ studyInstanceUID: first.studyUid, seriesInstanceUID: first.seriesUid })) as ArrayBuffer[];
    assert.equal(series.length, 3);

    const metadata = (await client.retrieveSeriesMetadata({ studyInstanceUID: first.studyUid, seriesInstanceUID: first.seriesUid })) as Array<Record<string, { vr: string; Value?: unknown[]; BulkDataURI?: string }>>;
    assert.equal(metadata.length, 3);
    assert.equal(metadata[0]!['00100020']!.Value![0], 'WEB001');
    assert.match(metadata[0]!['7FE00010']!.BulkDataURI!, /\/bulkdata\/7FE00010$/);
    const url = `/dicom-web/studies/${first.studyUid}/series/${first.seriesUid}/metadata`;
    const response = await w.api(url);
    const etag = response.headers.get('etag');
    assert.ok(etag);
    await response.arrayBuffer();
    assert.equal((await w.api(url, { headers: { 'if-none-match': etag } })).status, 304);

    const bulk = await w.api(metadata[0]!['7FE00010']!.BulkDataURI!.replace(w.baseUrl, ''));
    assert.equal(bulk.status, 200);
    const bulkParts = splitMultipart(Buffer.from(await bulk.arrayBuffer()), bulk.headers.get('content-type')!);
    assert.equal(bulkParts[0]!.bytes.length, 64 * 64 * 2);
  });

  test('WADO-RS converts implicit and big endian to Explicit VR Little Endian, and answers 406 when it cannot', async () => {
    const studyUid = newUid();
    const seriesUid = newUid();
    const big = makeInstance({ studyUid, seriesUid, transferSyntax: '1.2.840.10008.1.2.2' });
    const little = makeInstance({ studyUid, seriesUid, transferSyntax: '1.2.840.10008.1.2.1' });
    const stow = await w.api('/dicom-web/studies', {
      method: 'POST', body: multipart([{ bytes: big }]), headers: { 'content-type': `multipart/related; type="application/dicom"; boundary=${BOUNDARY}` },
    });
    assert.equal(stow.status, 200);
    const bigUid = ((await stow.json()) as any)['00081199'].Value[0]['00081155'].Value[0] as string;
    const converted = await w.api(`/dicom-web/studies/${studyUid}/series/${seriesUid}/instances/${bigUid}`, {
      headers: { accept: 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.1' },
    });
    assert.equal(converted.status, 200);
    const [part] = splitMultipart(Buffer.from(await converted.arrayBuffer()), converted.headers.get('content-type')!);
    assert.match(part!.headers, /transfer-syntax=1\.2\.840\.10008\.1\.2\.1/);
    // Same pixels as the little endian original: compare the frames both serve.
    const framesOf = async (uid: string) => {
      const r = await w.api(`/dicom-web/studies/${studyUid}/series/${seriesUid}/instances/${uid}/frames/1`);
      assert.equal(r.status, 200);
      return splitMultipart(Buffer.from(await r.arrayBuffer()), r.headers.get('content-type')!)[0]!.bytes;
    };
    const stow2 = await w.api('/dicom-web/studies', {
      method: 'POST', body: multipart([{ bytes: little }]), headers: { 'content-type': `multipart/related; type="application/dicom"; boundary=${BOUNDARY}` },
    });
    const littleUid = ((await stow2.json()) as any)['00081199'].Value[0]['00081155'].Value[0] as string;
    assert.ok((await framesOf(bigUid)).equals(await framesOf(littleUid)), 'big endian frame served in little endian order');
    const refused = await w.api(`/dicom-web/studies/${studyUid}/series/${seriesUid}/instances/${bigUid}`, {
      headers: { accept: 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.50' },
    });
    assert.equal(refused.status, 406);
  });

  test('frames of a multi-frame instance, rendered and thumbnail images', async () => {
    const instance = makeMultiFrame({ frames: 4 });
    const stow = await w.api('/dicom-web/studies', {
      method: 'POST', body: multipart([{ bytes: instance }]), headers: { 'content-type': `multipart/related; type="application/dicom"; boundary=${BOUNDARY}` },
    });
    const url = ((await stow.json()) as any)['00081199'].Value[0]['00081190'].Value[0] as string;
    const path = url.replace(w.baseUrl, '');
    const frames = await w.api(`${path}/frames/2,4`, { headers: { accept: 'multipart/related; type="application/octet-stream"' } });
    assert.equal(frames.status, 200);
    const parts = splitMultipart(Buffer.from(await frames.arrayBuffer()), frames.headers.get('content-type')!);
    assert.equal(parts.length, 2);
    assert.equal(parts[0]!.bytes.length, 64 * 64 * 2);
    assert.equal((await w.api(`${path}/frames/5`)).status, 404);
    assert.equal((await w.api(`${path}/frames/0`)).status, 400);
    const jpeg = await w.api(`${path}/frames/3/rendered`);
    assert.equal(jpeg.headers.get('content-type'), 'image/jpeg');
    const jpegBytes = Buffer.from(await jpeg.arrayBuffer());
    assert.deepEqual([...jpegBytes.subarray(0, 2)], [0xff, 0xd8]);
    const png = await w.api(`${path}/thumbnail?viewport=32,32`, { headers: { accept: 'image/png' } });
    assert.equal(png.headers.get('content-type'), 'image/png');
    const { PNG } = await import('pngjs');
    const decoded = PNG.sync.read(Buffer.from(await png.arrayBuffer()));
    assert.equal(decoded.width, 32);
    const rendered = await client.retrieveInstanceRendered({
      studyInstanceUID: study[0]!.studyUid, seriesInstanceUID: study[0]!.seriesUid, sopInstanceUID: study[0]!.sopInstanceUid, mediaTypes: [{ mediaType: 'image/jpeg' }],
    });
    const renderedBytes = Array.isArray(rendered) ? (rendered[0] as ArrayBuffer) : (rendered as ArrayBuffer);
    assert.deepEqual([...new Uint8Array(renderedBytes).subarray(0, 2)], [0xff, 0xd8]);
    const seriesThumb = await w.api(`/dicom-web/studies/${study[0]!.studyUid}/series/${study[0]!.seriesUid}/thumbnail`);
    assert.equal(seriesThumb.status, 200);
  });
});

describe('DICOMweb path and query parameters', () => {
  let w: WebAppliance;
  const [ok] = makeStudy({ series: 1, instancesPerSeries: 1 });
  before(async () => {
    w = await startWebAppliance();
    const stow = await w.api('/dicom-web/studies', {
      method: 'POST', body: multipart([{ bytes: ok!.buffer }]), headers: { 'content-type': `multipart/related; type="application/dicom"; boundary=${BOUNDARY}` },
    });
    assert.equal(stow.status, 200);
  });
  after(async () => {
    await w.stop();
  });

  test('a bad UID in any DICOMweb path is refused with 400 naming it, and STOW still drains the body', async () => {
    const bad = '1.02';
    const why = 'is not a dotted sequence of numbers without leading zeros';
    const instance = `/dicom-web/studies/${ok!.studyUid}/series/${ok!.seriesUid}/instances`;
    const cases: Array<[string, string, string]> = [
      ['GET', `/dicom-web/studies/${bad}/series`, 'StudyInstanceUID'],
      ['GET', `/dicom-web/studies/${ok!.studyUid}/series/${bad}/instances`, 'SeriesInstanceUID'],
      ['GET', `/dicom-web/studies/${bad}`, 'StudyInstanceUID'],
      ['GET', `${instance}/${bad}`, 'SOPInstanceUID'],
      ['GET', `/dicom-web/studies/${ok!.studyUid}/series/${bad}/metadata`, 'SeriesInstanceUID'],
      ['GET', `${instance}/${bad}/frames/1`, 'SOPInstanceUID'],
      ['GET', `${instance}/${bad}/bulkdata/7FE00010`, 'SOPInstanceUID'],
      ['GET', `${instance}/${bad}/rendered`, 'SOPInstanceUID'],
      ['GET', `/dicom-web/studies/${bad}/thumbnail`, 'StudyInstanceUID'],
      ['DELETE', `/dicom-web/studies/${bad}?force=true`, 'StudyInstanceUID'],
      ['POST', `/dicom-web/studies/${bad}`, 'StudyInstanceUID'],
    ];
    for (const [method, path, attribute] of cases) {
      const response = await w.api(path, method === 'POST'
        ? { method, body: multipart([{ bytes: makeInstance() }]), headers: { 'content-type': `multipart/related; type="application/dicom"; boundary=${BOUNDARY}` } }
        : { method });
      assert.equal(response.status, 400, `${method} ${path}`);
      assert.deepEqual(await response.json(), { status: 400, error: `${attribute} "${bad}" in the path ${why}` }, `${method} ${path}`);
    }
    assert.equal(await countInstances(w), 1, 'nothing stored, nothing deleted');
    assert.equal((await w.api(`${instance}/${ok!.sopInstanceUid}/metadata`)).status, 200);
  });

  test('a rendered parameter given twice is refused with 400, not a server error', async () => {
    const rendered = `/dicom-web/studies/${ok!.studyUid}/series/${ok!.seriesUid}/instances/${ok!.sopInstanceUid}/rendered`;
    assert.equal((await w.api(`${rendered}?viewport=32,32`)).status, 200);
    const twice = await w.api(`${rendered}?viewport=32,32&viewport=64,64`);
    assert.equal(twice.status, 400);
    assert.deepEqual(await twice.json(), { status: 400, error: 'viewport must be given once' });
    assert.equal((await w.api(`${rendered}?quality=0`)).status, 400);
  });
});

describe('STOW-RS with bad input', () => {
  let w: WebAppliance;
  before(async () => {
    w = await startWebAppliance();
  });
  after(async () => {
    await w.stop();
  });
  const post = (path: string, body: Buffer, contentType: string) => w.api(path, { method: 'POST', body, headers: { 'content-type': contentType } });
  const related = `multipart/related; type="application/dicom"; boundary=${BOUNDARY}`;

  test('a wrong content type gets 415 and stores nothing', async () => {
    const response = await post('/dicom-web/studies', makeInstance(), 'application/dicom');
    assert.equal(response.status, 415);
    // Metadata types (application/dicom+json, +xml) are taken since PS3.18 10.5.1.4 support; others are not.
    const pdf = await post('/dicom-web/studies', makeInstance(), 'multipart/related; type="application/pdf"; boundary=x');
    assert.equal(pdf.status, 415);
    assert.equal(await countInstances(w), 0);
  });

  test('broken multipart gets 400 and stores nothing, not even the parts before the break', async () => {
    const good = multipart([{ bytes: makeInstance() }]);
    const truncated = Buffer.concat([good.subarray(0, good.length - `--${BOUNDARY}--\r\n`.length), Buffer.from(`--${BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n`), makeInstance().subarray(0, 500)]);
    assert.equal((await post('/dicom-web/studies', truncated, related)).status, 400);
    assert.equal((await post('/dicom-web/studies', Buffer.from('no boundary here at all'), related)).status, 400);
    assert.equal((await post('/dicom-web/studies', good, 'multipart/related; type="application/dicom"')).status, 400);
    assert.equal(await countInstances(w), 0);
  });

  test('a study UID differing from the URL fails with 43265 and 409', async () => {
    const urlStudy = newUid();
    const instance = makeInstance();
    const response = await post(`/dicom-web/studies/${urlStudy}`, multipart([{ bytes: instance }]), related);
    assert.equal(response.status, 409);
    const body = (await response.json()) as any;
    assert.equal(body['00081198'].Value[0]['00081197'].Value[0], 43265);
    assert.ok(body['00081198'].Value[0]['00081155'].Value[0], 'failed item names the SOP Instance UID');
    assert.equal(await countInstances(w), 0);
  });

  test('a garbage part next to a good one: the good one is stored, the response shows both (202)', async () => {
    const good = makeInstance();
    const response = await post('/dicom-web/studies', multipart([{ bytes: Buffer.from('this is not DICOM at all'.repeat(20)) }, { bytes: good }]), related);
    assert.equal(response.status, 202);
    const body = (await response.json()) as any;
    assert.equal(body['00081198'].Value.length, 1);
    assert.equal(body['00081198'].Value[0]['00081197'].Value[0], 0xc000);
    assert.equal(body['00081199'].Value.length, 1);
    assert.equal(await countInstances(w), 1);
  });

  test('a refused request leaves an instance it would have replaced exactly as it was', async () => {
    const ids = { studyUid: newUid(), seriesUid: newUid(), sopInstanceUid: newUid() };
    const original = makeInstance({ ...ids, patientName: 'Original^Anna' });
    const replacement = makeInstance({ ...ids, patientName: 'Replacement^Bert' });
    assert.equal((await post('/dicom-web/studies', multipart([{ bytes: original }]), related)).status, 200);
    const db = indexDb(w.appliance.archive);
    const rowsOf = () => ({
      instance: db.prepare('SELECT * FROM instances WHERE sop_instance_uid = ?').all(ids.sopInstanceUid),
      study: db.prepare('SELECT * FROM studies WHERE study_uid = ?').all(ids.studyUid),
      outbox: db.prepare('SELECT * FROM outbox WHERE sop_instance_uid = ?').all(ids.sopInstanceUid),
    });
    const before = rowsOf();
    const newcomer = newUid();
    // The replacement and a new instance in whole parts, then a part the body ends inside of.
    const whole = multipart([{ bytes: replacement }, { bytes: makeInstance({ sopInstanceUid: newcomer }) }]);
    const broken = Buffer.concat([whole.subarray(0, whole.length - `--${BOUNDARY}--\r\n`.length),
      Buffer.from(`--${BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n`), makeInstance().subarray(0, 500)]);
    assert.equal((await post('/dicom-web/studies', broken, related)).status, 400);

    assert.deepEqual(rowsOf(), before, 'index, study and outbox rows are unchanged');
    assert.equal(db.prepare('SELECT COUNT(*) AS n FROM instances WHERE sop_instance_uid = ?').pluck().get(newcomer), 0);
    const served = await w.api(`/dicom-web/studies/${ids.studyUid}/series/${ids.seriesUid}/instances/${ids.sopInstanceUid}`,
      { headers: { accept: 'multipart/related; type="application/dicom"; transfer-syntax=*' } });
    assert.equal(served.status, 200);
    const parts = splitMultipart(Buffer.from(await served.arrayBuffer()), served.headers.get('content-type') ?? '');
    assert.equal(parts.length, 1);
    assert.ok(parts[0]!.bytes.equals(original), 'the original bytes are served');
    const incoming = await readdir(w.appliance.archive.paths.tempDir, { recursive: true, withFileTypes: true });
    assert.deepEqual(incoming.filter((e) => e.isFile()).map((e) => e.name), [], 'no held file is left');

    // The same replacement in a whole request does replace it.
    assert.equal((await post('/dicom-web/studies', multipart([{ bytes: replacement }]), related)).status, 200);
    const again = await w.api(`/dicom-web/studies/${ids.studyUid}/series/${ids.seriesUid}/instances/${ids.sopInstanceUid}`,
      { headers: { accept: 'multipart/related; type="application/dicom"; transfer-syntax=*' } });
    assert.ok(splitMultipart(Buffer.from(await again.arrayBuffer()), again.headers.get('content-type') ?? '')[0]!.bytes.equals(replacement));
  });

  test('a part that is not application/dicom is refused with 0xC000', async () => {
    const instance = makeInstance();
    const response = await post('/dicom-web/studies', multipart([{ bytes: instance, type: 'application/octet-stream' }]), related);
    assert.equal(response.status, 409);
    assert.equal(((await response.json()) as any)['00081198'].Value[0]['00081197'].Value[0], 0xc000);
  });
});

describe('DELETE and the status API', () => {
  let w: WebAppliance;
  before(async () => {
    w = await startWebAppliance();
  });
  after(async () => {
    await w.stop();
  });

  test('DELETE refuses while uploads wait, deletes with force, then 404', async () => {
    const items = makeStudy({ series: 1, instancesPerSeries: 2 });
    const body = multipart(items.map((i) => ({ bytes: i.buffer })));
    const stow = await w.api('/dicom-web/studies', { method: 'POST', body, headers: { 'content-type': `multipart/related; type="application/dicom"; boundary=${BOUNDARY}` } });
    assert.equal(stow.status, 200);
    const studyPath = `/dicom-web/studies/${items[0]!.studyUid}`;
    const sync = (await (await w.api(`/api/studies/${items[0]!.studyUid}/sync`)).json()) as any;
    assert.equal(sync.state, 'pending');
    assert.equal((await w.api(studyPath, { method: 'DELETE' })).status, 409);
    const one = `${studyPath}/series/${items[0]!.seriesUid}/instances/${items[0]!.sopInstanceUid}`;
    assert.equal((await w.api(`${one}?force=true`, { method: 'DELETE' })).status, 204);
    assert.equal((await w.api(one)).status, 404);
    assert.equal((await w.api(`${studyPath}?force=true`, { method: 'DELETE' })).status, 204);
    assert.equal((await w.api(`${studyPath}?force=true`, { method: 'DELETE' })).status, 404);
    assert.equal(await countInstances(w), 0);
  });

  test('health, readiness, info, outbox, failures', async () => {
    assert.deepEqual(((await (await w.api('/api/health')).json()) as any).status, 'ok');
    assert.equal((await w.api('/api/ready')).status, 200);
    const info = (await (await w.api('/api/info')).json()) as any;
    assert.equal(info.aeTitle, 'DICOMEDGE');
    assert.equal(info.version, '0.1.0');
    assert.equal(info.dataDir, w.dataDir);
    assert.equal(typeof info.storage.usedBytes, 'number');
    const outbox = (await (await w.api('/api/outbox')).json()) as any;
    assert.ok('totals' in outbox && Array.isArray(outbox.destinations));
    const failures = (await (await w.api('/api/failures')).json()) as any;
    assert.equal(failures.total, 0);
    assert.equal((await w.api('/api/failures/999')).status, 404);
    assert.equal((await w.api('/api/destinations/nosuch/pause', { method: 'POST' })).status, 404);
  });

  test('settings are read with secrets masked, written validated, and the mask keeps the stored secret', async () => {
    const current = (await (await w.api('/api/settings')).json()) as any;
    assert.equal(current.http.apiToken, '********');
    const next = { ...current, destinations: [{ name: 'cloud', baseUrl: 'http://127.0.0.1:9/dicom-web', enabled: false, auth: { kind: 'bearer', token: 's3cret-token' } }] };
    const put = await w.api('/api/settings', { method: 'PUT', body: JSON.stringify(next), headers: { 'content-type': 'application/json' } });
    assert.equal(put.status, 200);
    const written = (await put.json()) as any;
    assert.equal(written.settings.destinations[0].auth.token, '********');
    assert.ok(!JSON.stringify(written).includes('s3cret-token'));
    const again = await w.api('/api/settings', { method: 'PUT', body: JSON.stringify(written.settings), headers: { 'content-type': 'application/json' } });
    assert.equal(again.status, 200);
    const text = await (await w.api('/api/settings')).text();
    assert.ok(!text.includes('s3cret-token') && !text.includes(w.token), 'no secret in clear');
    const bad = await w.api('/api/settings', { method: 'PUT', body: JSON.stringify({ ...current, aeTitle: 'THIS AE TITLE IS TOO LONG' }), headers: { 'content-type': 'application/json' } });
    assert.equal(bad.status, 400);
    assert.match(JSON.stringify(await bad.json()), /aeTitle/);
  });
});
