// DICOMweb conformance found by independent implementations (issue 14), driven by dicomweb-client.
import assert from 'node:assert/strict';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import dicomParser from 'dicom-parser';
import { api as dwc } from 'dicomweb-client';
import { PNG } from 'pngjs';
import { makeInstance, makeStudy } from '../support/fixtures.js';
import { indexDb } from '../support/index-db.js';
import { encodeJpeg2000Lossless } from '../support/jpeg2000.js';
import { requireTool, runOk } from '../support/peers.js';
import { makeInstanceInSyntax } from '../support/transfer-syntax.js';
import { startWebAppliance, type WebAppliance } from '../support/web-appliance.js';
import { installXMLHttpRequest } from '../support/xhr.js';

installXMLHttpRequest();

const arrayBufferOf = (bytes: Buffer) => bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;

describe('DICOMweb conformance (issue 14)', () => {
  let w: WebAppliance;
  // dicomweb-client's declarations mark optional options as required; calls are checked by the assertions.
  let client: Record<string, (options: Record<string, unknown>) => Promise<unknown>>;

  const ct = makeStudy({ series: 1, instancesPerSeries: 3, patientId: 'WCONF1', patientName: 'Conf^Web', rows: 64, columns: 64 });
  const [first] = ct;
  const instanceUrl = () => `/dicom-web/studies/${first!.studyUid}/series/${first!.seriesUid}/instances/${first!.sopInstanceUid}`;

  before(async () => {
    w = await startWebAppliance();
    client = new dwc.DICOMwebClient({ url: w.dicomWebUrl, headers: { Authorization: `Bearer ${w.token}` }, verbose: false } as never) as unknown as typeof client;
    await client.storeInstances({ datasets: ct.map((i) => arrayBufferOf(i.buffer)) });
  });
  after(async () => {
    await w?.stop();
  });

  const stored = (sopInstanceUid: string) =>
    (indexDb(w.appliance.archive).prepare('SELECT COUNT(*) AS n FROM instances WHERE sop_instance_uid = ?').get(sopInstanceUid) as { n: number }).n;

  test('STOW refuses encapsulated Pixel Data under a native transfer syntax, with a failure reason', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'dicom-edge-web-conf-'));
    const rle = await makeInstanceInSyntax(dir, 'rle', { rows: 16, columns: 16 });
    // The same file, its meta header claiming Explicit VR Little Endian (both UIDs pad to 20 bytes).
    const bytes = await readFile(rle.path);
    const at = bytes.indexOf(Buffer.from('1.2.840.10008.1.2.5\0', 'latin1'));
    assert.ok(at > 0);
    const mislabelled = Buffer.from(bytes);
    Buffer.from('1.2.840.10008.1.2.1\0', 'latin1').copy(mislabelled, at);
    const good = makeInstance({ rows: 8, columns: 8 });

    const body = await client.storeInstances({ datasets: [arrayBufferOf(mislabelled), arrayBufferOf(good)] });
    const parsed = JSON.parse(typeof body === 'string' ? body : new TextDecoder().decode(body as ArrayBuffer)) as Record<string, { Value: Array<Record<string, { Value: unknown[] }>> }>;
    const failed = parsed['00081198']?.Value ?? [];
    assert.equal(failed.length, 1, 'one failed instance');
    assert.equal(failed[0]!['00081155']!.Value[0], rle.sopInstanceUid);
    assert.equal(failed[0]!['00081197']!.Value[0], 0xc000, 'Failure Reason: cannot understand');
    assert.equal(parsed['00081199']?.Value.length, 1, 'the good one is stored');
    assert.equal(stored(rle.sopInstanceUid), 0, 'nothing stored, so nothing is served later');
  });

  describe('accept and charset query parameters (PS3.18 8.3.3)', () => {
    test('QIDO takes them as what they are, not as attributes', async () => {
      const studies = (await client.searchForStudies({ queryParams: { PatientID: 'WCONF1', accept: 'application/dicom+json', charset: 'utf-8' } })) as unknown[];
      assert.equal(studies.length, 1);
    });

    test('accept wins over the Accept header', async () => {
      const response = await w.api(`/dicom-web/studies?PatientID=WCONF1&accept=${encodeURIComponent('application/dicom+json')}`, { headers: { accept: 'application/xml' } });
      assert.equal(response.status, 200);
      const rendered = await w.api(`${instanceUrl()}/rendered?accept=image/png`, { headers: { accept: 'image/jpeg' } });
      assert.equal(rendered.status, 200);
      assert.equal(rendered.headers.get('content-type'), 'image/png');
    });

    test('a charset that does not allow UTF-8 gets 406 naming it', async () => {
      const response = await w.api('/dicom-web/studies?PatientID=WCONF1&charset=iso-8859-1', { headers: { accept: 'application/dicom+json' } });
      assert.equal(response.status, 406);
      assert.match(((await response.json()) as { error: string }).error, /iso-8859-1.*UTF-8/);
      const allowed = await w.api('/dicom-web/studies?PatientID=WCONF1&charset=iso-8859-1,utf-8;q=0.5', { headers: { accept: 'application/dicom+json' } });
      assert.equal(allowed.status, 200);
    });
  });

  describe('rendered parameters (PS3.18 8.3.5.1)', () => {
    const png = async (query: string) => {
      const response = await w.api(`${instanceUrl()}/rendered?${query}`, { headers: { accept: 'image/png' } });
      assert.equal(response.status, 200, `${query}: ${response.status} ${response.status === 200 ? '' : await response.text()}`);
      return { image: PNG.sync.read(Buffer.from(await response.arrayBuffer())), headers: response.headers };
    };
    const refused = async (query: string) => {
      const response = await w.api(`${instanceUrl()}/rendered?${query}`, { headers: { accept: 'image/png' } });
      assert.equal(response.status, 400, query);
      return ((await response.json()) as { error: string }).error;
    };

    test('window=center,width,function: LINEAR, LINEAR_EXACT and SIGMOID', async () => {
      const linear = await png('window=1000,2000,LINEAR');
      const twoValues = await png('window=1000,2000');
      assert.ok(linear.image.data.equals(twoValues.image.data), 'LINEAR is the default function');
      const sigmoid = await png('window=1000,2000,SIGMOID');
      assert.ok(!sigmoid.image.data.equals(linear.image.data), 'SIGMOID is not LINEAR');
      await png('window=1000,2000,LINEAR_EXACT');
      assert.match(await refused('window=1000,2000,CUBIC'), /LINEAR, LINEAR_EXACT, SIGMOID/);
      assert.match(await refused('window=1000'), /center,width/);
    });

    test('viewport scales to the box, and its crop form shows the region asked for', async () => {
      const whole = await png('window=1000,2000');
      assert.deepEqual([whole.image.width, whole.image.height], [64, 64]);
      const half = await png('window=1000,2000&viewport=32,32');
      assert.deepEqual([half.image.width, half.image.height], [32, 32]);
      const corner = await png('window=1000,2000&viewport=32,32,32,16,32,32');
      assert.deepEqual([corner.image.width, corner.image.height], [32, 32]);
      for (let y = 0; y < 32; y++) {
        const row = corner.image.data.subarray(y * 32 * 4, (y + 1) * 32 * 4);
        const source = whole.image.data.subarray(((16 + y) * 64 + 32) * 4, ((16 + y) * 64 + 64) * 4);
        assert.ok(row.equals(source), `row ${y} is the source region's`);
      }
      assert.match(await refused('viewport=32,32,0,0,-32,32'), /flipped/);
    });

    test('annotation is accepted and answered with a Warning that it was not drawn', async () => {
      const { headers } = await png('annotation=patient,technique');
      assert.match(headers.get('warning') ?? '', /^299 .*annotation=patient,technique is not supported/);
      assert.match(await refused('annotation=everything'), /patient and\/or technique/);
    });

    test('quality is honoured for JPEG', async () => {
      const size = async (quality: number) =>
        (await (await w.api(`${instanceUrl()}/rendered?quality=${quality}`, { headers: { accept: 'image/jpeg' } })).arrayBuffer()).byteLength;
      assert.ok((await size(10)) < (await size(100)));
    });
  });

  describe('WADO-URI (PS3.18 9)', () => {
    const wadoUrl = (extra: string) =>
      `/wado?requestType=WADO&studyUID=${first!.studyUid}&seriesUID=${first!.seriesUid}&objectUID=${first!.sopInstanceUid}${extra}`;

    test('application/dicom: Explicit VR Little Endian by default, the stored bytes with transferSyntax', async () => {
      const response = await w.api(wadoUrl('&contentType=application/dicom'));
      assert.equal(response.status, 200);
      assert.equal(response.headers.get('content-type'), 'application/dicom');
      const bytes = Buffer.from(await response.arrayBuffer());
      const parsed = dicomParser.parseDicom(bytes);
      assert.equal(parsed.string('x00020010')?.replace(/\0+$/, ''), '1.2.840.10008.1.2.1');
      assert.equal(parsed.string('x00080018')?.replace(/\0+$/, ''), first!.sopInstanceUid);
      const asStored = await w.api(wadoUrl(`&contentType=application/dicom&transferSyntax=*`));
      assert.ok(Buffer.from(await asStored.arrayBuffer()).equals(first!.buffer));
      const other = await w.api(wadoUrl('&contentType=application/dicom&transferSyntax=1.2.840.10008.1.2.4.50'));
      assert.equal(other.status, 406);
    });

    test('image/jpeg by default; image/png with rows, columns, window and region', async () => {
      const jpeg = await w.api(wadoUrl(''));
      assert.equal(jpeg.status, 200);
      assert.equal(jpeg.headers.get('content-type'), 'image/jpeg');
      assert.deepEqual([...Buffer.from(await jpeg.arrayBuffer()).subarray(0, 2)], [0xff, 0xd8]);
      const small = await w.api(wadoUrl('&contentType=image/png&rows=32&columns=32'));
      const image = PNG.sync.read(Buffer.from(await small.arrayBuffer()));
      assert.deepEqual([image.width, image.height], [32, 32]);
      // The same part of the image as WADO-RS's viewport crop, the same window.
      const region = PNG.sync.read(Buffer.from(await (await w.api(wadoUrl('&contentType=image/png&windowCenter=1000&windowWidth=2000&region=0.5,0.25,1,0.75'))).arrayBuffer()));
      const rs = await w.api(`${instanceUrl()}/rendered?window=1000,2000&viewport=32,32,32,16,32,32`, { headers: { accept: 'image/png' } });
      const viaRs = PNG.sync.read(Buffer.from(await rs.arrayBuffer()));
      assert.deepEqual([region.width, region.height], [32, 32]);
      assert.ok(region.data.equals(viaRs.data), 'the region matches');
    });

    test('bad requests get 400 naming the parameter; the same access check as every route', async () => {
      const missing = await w.api(`/wado?requestType=WADO&studyUID=${first!.studyUid}&seriesUID=${first!.seriesUid}`);
      assert.equal(missing.status, 400);
      assert.match(((await missing.json()) as { error: string }).error, /objectUID/);
      assert.equal((await w.api(wadoUrl('').replace('requestType=WADO', 'requestType=OTHER'))).status, 400);
      assert.equal((await w.api(wadoUrl('&region=0.5,0.5,0.2,1'))).status, 400);
      assert.equal((await w.api(wadoUrl('&contentType=text/html'))).status, 406);
      const anonymous = await fetch(`${w.baseUrl}${wadoUrl('')}`);
      assert.equal(anonymous.status, 401);
    });
  });

  test('GET and OPTIONS /dicom-web describe the resources (capabilities), behind the access check', async () => {
    for (const method of ['GET', 'OPTIONS']) {
      const response = await w.api('/dicom-web', { method });
      assert.equal(response.status, 200, method);
      assert.match(response.headers.get('allow') ?? '', /GET.*POST.*DELETE/);
      const body = (await response.json()) as { resources: Array<{ path: string; methods: Array<{ name: string; produces?: string[] }> }>; wadoUri: { path: string } };
      const rendered = body.resources.find((r) => r.path === 'studies/{study}/series/{series}/instances/{instance}/rendered');
      assert.deepEqual(rendered?.methods[0]?.produces, ['image/jpeg', 'image/png']);
      assert.ok(body.resources.some((r) => r.path === 'studies' && r.methods.some((m) => m.name === 'POST')), 'STOW-RS is listed');
      assert.equal(body.wadoUri.path, '/wado');
    }
    assert.equal((await fetch(`${w.baseUrl}/dicom-web`)).status, 401);
  });

  test('study and series /rendered: a multipart/related of every rendered frame', async () => {
    // dicomweb-client has no call for these resources; its HTTP layer decodes the multipart answer.
    const http = client as unknown as { _httpGet(url: string, headers: Record<string, string>, request: { responseType: string }): Promise<ArrayBuffer[]> };
    const series = await http._httpGet(`${w.dicomWebUrl}/studies/${first!.studyUid}/series/${first!.seriesUid}/rendered?window=1000,2000`,
      { Accept: 'multipart/related; type="image/png"' }, { responseType: 'arraybuffer' });
    assert.equal(series.length, ct.length, 'one part per frame of each instance');
    const single = PNG.sync.read(Buffer.from(await (await w.api(`${instanceUrl()}/rendered?window=1000,2000`, { headers: { accept: 'image/png' } })).arrayBuffer()));
    const images = series.map((part) => PNG.sync.read(Buffer.from(part)));
    assert.ok(images.some((image) => image.data.equals(single.data)), 'each part is the instance rendered alone');
    const study = await http._httpGet(`${w.dicomWebUrl}/studies/${first!.studyUid}/rendered`, { Accept: 'multipart/related; type="image/jpeg"' }, { responseType: 'arraybuffer' });
    assert.equal(study.length, ct.length);
    for (const part of study) assert.deepEqual([...Buffer.from(part).subarray(0, 2)], [0xff, 0xd8]);
    const wrong = await w.api(`/dicom-web/studies/${first!.studyUid}/rendered`, { headers: { accept: 'application/dicom' } });
    assert.equal(wrong.status, 406);
  });

  describe('transcoding on request: compressed instances served as Explicit VR Little Endian', () => {
    const DCMTK_DECODERS = { rle: 'dcmdrle', 'jpeg-lossless': 'dcmdjpeg', 'jpeg-baseline': 'dcmdjpeg', 'jpeg-ls': 'dcmdjpls' } as const;
    const pixelsOf = (part10: Buffer) => {
      const parsed = dicomParser.parseDicom(part10);
      const element = parsed.elements.x7fe00010!;
      return { syntax: parsed.string('x00020010')?.replace(/\0+$/, ''), planar: parsed.elements.x00280006, pixels: part10.subarray(element.dataOffset, element.dataOffset + element.length) };
    };
    const retrieve = async (instance: { studyUid: string; seriesUid: string; sopInstanceUid: string }) =>
      Buffer.from((await client.retrieveInstance({ studyInstanceUID: instance.studyUid, seriesInstanceUID: instance.seriesUid, sopInstanceUID: instance.sopInstanceUid })) as ArrayBuffer);

    for (const [syntax, decoder] of Object.entries(DCMTK_DECODERS)) {
      test(`${syntax}: the pixels equal those of DCMTK's ${decoder}`, async () => {
        const dir = await mkdtemp(join(tmpdir(), 'dicom-edge-web-transcode-'));
        const source = await makeInstanceInSyntax(dir, syntax as keyof typeof DCMTK_DECODERS, { rows: 32, columns: 32 });
        await client.storeInstances({ datasets: [arrayBufferOf(await readFile(source.path))] });
        const served = pixelsOf(await retrieve(source));
        assert.equal(served.syntax, '1.2.840.10008.1.2.1');
        assert.equal(served.planar, undefined, 'no Planar Configuration on a single-sample image');
        const reference = join(dir, 'dcmtk.dcm');
        await runOk(requireTool(decoder, 'dcmtk'), ['+te', source.path, reference]);
        const expected = pixelsOf(await readFile(reference));
        assert.equal(served.pixels.length, expected.pixels.length);
        assert.ok(served.pixels.equals(expected.pixels), `pixel values equal ${decoder}'s`);
      });
    }

    test('frames of a compressed instance, asked for as application/octet-stream, are decoded (as dcmdjpls does)', async () => {
      const dir = await mkdtemp(join(tmpdir(), 'dicom-edge-web-frames-'));
      const source = await makeInstanceInSyntax(dir, 'jpeg-ls', { rows: 32, columns: 32 });
      await client.storeInstances({ datasets: [arrayBufferOf(await readFile(source.path))] });
      const frames = (await client.retrieveInstanceFrames({ studyInstanceUID: source.studyUid, seriesInstanceUID: source.seriesUid,
        sopInstanceUID: source.sopInstanceUid, frameNumbers: [1], mediaTypes: [{ mediaType: 'application/octet-stream' }] })) as ArrayBuffer[];
      const reference = join(dir, 'dcmtk.dcm');
      await runOk(requireTool('dcmdjpls', 'dcmtk'), ['+te', source.path, reference]);
      assert.equal(frames.length, 1);
      assert.ok(Buffer.from(frames[0]!).equals(pixelsOf(await readFile(reference)).pixels), 'the decoded frame');
      const native = await w.api(`/dicom-web/studies/${source.studyUid}/series/${source.seriesUid}/instances/${source.sopInstanceUid}/frames/1`,
        { headers: { accept: 'multipart/related; type="application/octet-stream"; transfer-syntax=*' } });
      assert.match(native.headers.get('content-type') ?? '', /multipart\/related/);
      assert.equal(native.status, 200, 'transfer-syntax=* still gives the frame as stored');
    });

    test('jpeg2000 (lossless): the pixels equal the original ones (DCMTK here has no JPEG 2000 decoder)', async () => {
      const original = makeInstance({ rows: 32, columns: 32 });
      const encoded = await encodeJpeg2000Lossless(original);
      const ids = dicomParser.parseDicom(original);
      const uid = (tag: string) => ids.string(tag)!.replace(/\0+$/, '');
      await client.storeInstances({ datasets: [arrayBufferOf(encoded)] });
      const served = pixelsOf(await retrieve({ studyUid: uid('x0020000d'), seriesUid: uid('x0020000e'), sopInstanceUid: uid('x00080018') }));
      assert.equal(served.syntax, '1.2.840.10008.1.2.1');
      assert.ok(served.pixels.equals(pixelsOf(original).pixels));
    });

    test('a syntax that cannot be produced gets 406 naming those that can', async () => {
      const response = await w.api(`${instanceUrl()}`, { headers: { accept: 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.50' } });
      assert.equal(response.status, 406);
      assert.match(((await response.json()) as { error: string }).error, /1\.2\.840\.10008\.1\.2\.1/);
    });
  });
});
