// PS3.18 media types of issue 14 defect 6: instances retrieved as bulk data (multipart/related;
// type="application/octet-stream"), and STOW-RS of metadata (DICOM JSON or Native DICOM Model XML) with bulk data.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import dicomParser from 'dicom-parser';
import { api as dwc } from 'dicomweb-client';
import { readDicom } from '../../main/core/dicom/dcmjs.js';
import type { DicomJson } from '../../main/core/dicom/json-model.js';
import { datasetToJson } from '../../main/core/dicom/metadata-json.js';
import { nativeXmlFromJson } from '../../main/core/dicom/native-xml.js';
import { AzureDicomDouble } from '../doubles/azure-dicom.js';
import { readMultipartRelated, type Part } from '../doubles/multipart-related.js';
import { makeInstance, newUid } from '../support/fixtures.js';
import { indexDb } from '../support/index-db.js';
import { requireTool, runOk, startOrthanc, type OrthancPeer } from '../support/peers.js';
import { makeInstanceInSyntax } from '../support/transfer-syntax.js';
import { startWebAppliance, type WebAppliance } from '../support/web-appliance.js';
import { installXMLHttpRequest } from '../support/xhr.js';

installXMLHttpRequest();

const OCTETS = 'multipart/related; type="application/octet-stream"';
const EXPLICIT_LE = '1.2.840.10008.1.2.1';
const arrayBufferOf = (bytes: Buffer) => bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;

/** Pixel Data's value bytes and the transfer syntax of a Part 10 file. */
function pixelsOf(part10: Buffer): { syntax: string | undefined; pixels: Buffer } {
  const parsed = dicomParser.parseDicom(part10);
  const element = parsed.elements.x7fe00010!;
  return { syntax: parsed.string('x00020010')?.replace(/\0+$/, ''), pixels: part10.subarray(element.dataOffset, element.dataOffset + element.length) };
}

/** DICOM JSON of a Part 10 file, with Pixel Data (and any large binary value) a BulkDataURI under `bulkBase`. */
function jsonOf(part10: Buffer, bulkBase: string): DicomJson {
  const dict = readDicom(part10);
  const json = datasetToJson(dict.dict, bulkBase);
  return json;
}

/** A multipart/related body whose parts carry their own headers (Content-Location above all). */
function multipart(type: string, parts: Array<{ headers: Record<string, string>; body: Buffer | string }>): { body: Buffer; contentType: string } {
  const boundary = `media-${newUid()}`;
  const chunks: Buffer[] = [];
  for (const part of parts) {
    const head = Object.entries(part.headers).map(([name, value]) => `${name}: ${value}`).join('\r\n');
    chunks.push(Buffer.from(`--${boundary}\r\n${head}\r\n\r\n`, 'latin1'), Buffer.from(part.body), Buffer.from('\r\n'));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(chunks), contentType: `multipart/related; type="${type}"; boundary=${boundary}` };
}

async function partsOf(response: Response): Promise<Part[]> {
  const boundary = /boundary="?([^";]+)"?/.exec(response.headers.get('content-type') ?? '')?.[1];
  assert.ok(boundary, `a multipart answer: ${response.headers.get('content-type')}`);
  const parts: Part[] = [];
  for await (const part of readMultipartRelated([Buffer.from(await response.arrayBuffer())], boundary)) parts.push(part);
  return parts;
}

type StowAnswer = Record<string, { Value?: Array<Record<string, { Value?: unknown[] }>> }>;

describe('PS3.18 media types: bulk data retrieve and STOW-RS of metadata with bulk data', () => {
  let w: WebAppliance;
  let client: Record<string, (options: Record<string, unknown>) => Promise<unknown>>;
  const stored = (sopInstanceUid: string) =>
    (indexDb(w.appliance.archive).prepare('SELECT COUNT(*) AS n FROM instances WHERE sop_instance_uid = ?').get(sopInstanceUid) as { n: number }).n;
  const instancePath = (i: { studyUid: string; seriesUid: string; sopInstanceUid: string }) =>
    `/dicom-web/studies/${i.studyUid}/series/${i.seriesUid}/instances/${i.sopInstanceUid}`;
  const retrieve = async (i: { studyUid: string; seriesUid: string; sopInstanceUid: string }) =>
    Buffer.from((await client.retrieveInstance({ studyInstanceUID: i.studyUid, seriesInstanceUID: i.seriesUid, sopInstanceUID: i.sopInstanceUid })) as ArrayBuffer);
  const stow = async (type: string, parts: Parameters<typeof multipart>[1], path = '/dicom-web/studies') => {
    const { body, contentType } = multipart(type, parts);
    const response = await w.api(path, { method: 'POST', body, headers: { 'content-type': contentType, accept: 'application/dicom+json' } });
    return { status: response.status, warning: response.headers.get('warning') ?? '', answer: (await response.json()) as StowAnswer };
  };
  const failureReasons = (answer: StowAnswer) => (answer['00081198']?.Value ?? []).map((item) => item['00081197']?.Value?.[0]);

  before(async () => {
    w = await startWebAppliance();
    client = new dwc.DICOMwebClient({ url: w.dicomWebUrl, headers: { Authorization: `Bearer ${w.token}` }, verbose: false } as never) as unknown as typeof client;
  });
  after(async () => {
    await w?.stop();
  });

  describe('retrieve as multipart/related; type="application/octet-stream" (PS3.18 10.4.3.3.5)', () => {
    const studyUid = newUid();
    const seriesUid = newUid();
    const ids = [newUid(), newUid()];
    // A private OB value past the inline threshold is bulk data too, beside Pixel Data.
    const big = Buffer.alloc(3000, 7);
    const files = ids.map((sopInstanceUid, i) => makeInstance({ studyUid, seriesUid, sopInstanceUid, rows: 16, columns: 16, instanceNumber: i + 1,
      extra: { '00090010': { vr: 'LO', Value: ['MEDIA TEST'] }, '00091010': { vr: 'OB', Value: [arrayBufferOf(big)] } } }));
    before(async () => {
      await client.storeInstances({ datasets: files.map(arrayBufferOf) });
    });

    test('an instance: one part per BulkDataURI of its metadata, Content-Location that URI, the bytes of the element', async () => {
      const one = { studyUid, seriesUid, sopInstanceUid: ids[0]! };
      const metadata = (await (await w.api(`${instancePath(one)}/metadata`, { headers: { accept: 'application/dicom+json' } })).json()) as DicomJson[];
      const uris = Object.values(metadata[0]!).flatMap((e) => (e.BulkDataURI ? [e.BulkDataURI] : [])).sort();
      assert.equal(uris.length, 2, 'Pixel Data and the private OB value');
      const response = await w.api(instancePath(one), { headers: { accept: OCTETS } });
      assert.equal(response.status, 200);
      assert.match(response.headers.get('content-type') ?? '', /^multipart\/related; type="application\/octet-stream"/);
      const parts = await partsOf(response);
      assert.deepEqual(parts.map((p) => p.headers['content-location']).sort(), uris);
      for (const part of parts) assert.equal(part.headers['content-type'], `application/octet-stream; transfer-syntax=${EXPLICIT_LE}`);
      const pixels = parts.find((p) => p.headers['content-location']!.endsWith('/bulkdata/7FE00010'))!;
      assert.ok(pixels.body.equals(pixelsOf(files[0]!).pixels), 'Pixel Data byte for byte');
      assert.ok(parts.find((p) => p.headers['content-location']!.endsWith('/bulkdata/00091010'))!.body.equals(big));
      // Each Content-Location is itself a resource that gives the same bytes (dicomweb-client's bulk data call).
      const again = (await client.retrieveBulkData({ BulkDataURI: pixels.headers['content-location'] })) as ArrayBuffer[];
      assert.ok(Buffer.from(again[0]!).equals(pixels.body));
    });

    test('a series and a study: the bulk data of every instance; the /bulkdata resources give the same', async () => {
      for (const path of [`/dicom-web/studies/${studyUid}/series/${seriesUid}`, `/dicom-web/studies/${studyUid}`]) {
        const parts = await partsOf(await w.api(path, { headers: { accept: OCTETS } }));
        assert.equal(parts.length, 4, path);
        for (const [i, uid] of ids.entries()) {
          const part = parts.find((p) => p.headers['content-location']!.includes(`/instances/${uid}/bulkdata/7FE00010`));
          assert.ok(part?.body.equals(pixelsOf(files[i]!).pixels), `${path}: pixels of ${uid}`);
        }
        const bulk = (await client.retrieveBulkData({ BulkDataURI: `${w.dicomWebUrl}${path.slice('/dicom-web'.length)}/bulkdata` })) as ArrayBuffer[];
        assert.equal(bulk.length, 4, `${path}/bulkdata`);
      }
      const instanceBulk = await w.api(`${instancePath({ studyUid, seriesUid, sopInstanceUid: ids[1]! })}/bulkdata`);
      assert.equal(instanceBulk.status, 200, 'octet streams are the default of a /bulkdata resource');
      assert.equal((await partsOf(instanceBulk)).length, 2);
    });

    test('an octet stream in another transfer syntax gets 406; application/dicom first still gets Part 10', async () => {
      const one = instancePath({ studyUid, seriesUid, sopInstanceUid: ids[0]! });
      const refused = await w.api(one, { headers: { accept: `${OCTETS}; transfer-syntax=1.2.840.10008.1.2.4.50` } });
      assert.equal(refused.status, 406);
      assert.match(((await refused.json()) as { error: string }).error, /1\.2\.840\.10008\.1\.2\.1/);
      const dicom = await w.api(one, { headers: { accept: `multipart/related; type="application/dicom", ${OCTETS}` } });
      assert.match(dicom.headers.get('content-type') ?? '', /type="application\/dicom"/);
      await dicom.arrayBuffer();
      const notBulk = await w.api(`${one}/bulkdata`, { headers: { accept: 'multipart/related; type="application/dicom"' } });
      assert.equal(notBulk.status, 406);
    });

    const DECODERS = { rle: 'dcmdrle', 'jpeg-lossless': 'dcmdjpeg' } as const;
    for (const [syntax, decoder] of Object.entries(DECODERS)) {
      test(`a ${syntax} instance: its Pixel Data decoded, the values those of DCMTK's ${decoder}`, async () => {
        const dir = await mkdtemp(join(tmpdir(), 'dicom-edge-web-bulk-'));
        const source = await makeInstanceInSyntax(dir, syntax as keyof typeof DECODERS, { rows: 32, columns: 32 });
        await client.storeInstances({ datasets: [arrayBufferOf(await readFile(source.path))] });
        const response = await w.api(instancePath(source), { headers: { accept: OCTETS } });
        assert.equal(response.status, 200);
        const parts = await partsOf(response);
        const pixels = parts.find((p) => p.headers['content-location']!.endsWith('/bulkdata/7FE00010'));
        assert.ok(pixels, 'a Pixel Data part');
        assert.equal(pixels.headers['content-type'], `application/octet-stream; transfer-syntax=${EXPLICIT_LE}`);
        const reference = join(dir, 'dcmtk.dcm');
        await runOk(requireTool(decoder, 'dcmtk'), ['+te', source.path, reference]);
        assert.ok(pixels.body.equals(pixelsOf(await readFile(reference)).pixels), `pixel values equal ${decoder}'s`);
        // Its Content-Location, the BulkDataURI of /metadata, gives the same decoded bytes when asked for as an octet stream.
        const again = (await client.retrieveBulkData({ BulkDataURI: pixels.headers['content-location'] })) as ArrayBuffer[];
        assert.equal(again.length, 1);
        assert.ok(Buffer.from(again[0]!).equals(pixels.body), 'the BulkDataURI resource agrees');
      });
    }
  });

  describe('STOW-RS of metadata and bulk data (PS3.18 10.5.1.4)', () => {
    /** An instance, its JSON (Pixel Data by BulkDataURI) and the bulk part that URI names. */
    const source = (extra: Record<string, unknown> = {}) => {
      const ids = { studyUid: newUid(), seriesUid: newUid(), sopInstanceUid: newUid() };
      const file = makeInstance({ ...ids, rows: 16, columns: 8, patientName: 'Müller^Jürgen', extra });
      const json = jsonOf(file, `urn:uuid:${newUid()}`);
      const location = json['7FE00010']!.BulkDataURI!;
      return { ids, file, json, location, pixels: pixelsOf(file).pixels };
    };
    const bulkPart = (location: string, bytes: Buffer, type = 'application/octet-stream') =>
      ({ headers: { 'Content-Type': type, 'Content-Location': location }, body: bytes });
    /** The stored instance as WADO-RS gives it back must be the data set sent: attribute for attribute, pixels byte for byte. */
    const assertStoredAsSent = async (s: ReturnType<typeof source>) => {
      const back = await retrieve(s.ids);
      const { syntax, pixels } = pixelsOf(back);
      assert.equal(syntax, EXPLICIT_LE);
      assert.ok(pixels.equals(s.pixels), 'Pixel Data byte for byte');
      const sent = jsonOf(s.file, 'x');
      const got = jsonOf(back, 'x');
      delete sent['00020010'];
      delete got['00020010'];
      assert.deepEqual(got, sent);
    };

    test('application/dicom+json: the JSON array and its bulk data parts become the instances, as sent', async () => {
      const a = source({ '00090010': { vr: 'LO', Value: ['MEDIA TEST'] }, '00091010': { vr: 'OB', Value: [arrayBufferOf(Buffer.from([1, 2, 3, 4]))] } });
      const b = source();
      assert.ok(a.json['00091010']?.InlineBinary, 'a small value travels as InlineBinary');
      const { status, answer, warning } = await stow('application/dicom+json', [
        { headers: { 'Content-Type': 'application/dicom+json' }, body: JSON.stringify([a.json, b.json]) },
        bulkPart(b.location, b.pixels),
        bulkPart(a.location, a.pixels),
      ]);
      assert.equal(status, 200, warning);
      assert.equal(answer['00081199']?.Value?.length, 2);
      await assertStoredAsSent(a);
      await assertStoredAsSent(b);
    });

    test('application/dicom+xml: one Native DICOM Model document per part, bulk data after them', async () => {
      const a = source({ '00081115': { vr: 'SQ', Value: [{ '00081150': { vr: 'UI', Value: ['1.2.840.10008.3.1.2.3.1'] }, '00081155': { vr: 'UI', Value: [newUid()] } }] } });
      const { status, answer } = await stow('application/dicom+xml', [
        { headers: { 'Content-Type': 'application/dicom+xml; charset=utf-8' }, body: nativeXmlFromJson(a.json) },
        bulkPart(a.location, a.pixels),
      ]);
      assert.equal(status, 200, JSON.stringify(answer));
      await assertStoredAsSent(a);
    });

    test('a missing bulk data part, a missing UID, compressed bulk data: each refused with its reason, the others stored', async () => {
      const good = source();
      const noPart = source();
      const noUid = source();
      delete noUid.json['00080018'];
      const jpeg = source();
      const { status, answer, warning } = await stow('application/dicom+json', [
        { headers: { 'Content-Type': 'application/dicom+json' }, body: JSON.stringify([good.json, noPart.json, noUid.json, jpeg.json]) },
        bulkPart(good.location, good.pixels),
        bulkPart(noUid.location, noUid.pixels),
        bulkPart(jpeg.location, Buffer.from([0xff, 0xd8, 0xff, 0xd9]), 'image/jpeg; transfer-syntax=1.2.840.10008.1.2.4.90'),
      ]);
      assert.equal(status, 202);
      assert.deepEqual(failureReasons(answer), [0xc000, 0xa900, 0xc122]);
      assert.match(warning, /names no part of the request/);
      assert.match(warning, /no SOPInstanceUID/);
      assert.match(warning, /image\/jpeg does not carry transfer-syntax 1\.2\.840\.10008\.1\.2\.4\.90/);
      assert.equal(answer['00081199']?.Value?.length, 1);
      assert.equal(stored(good.ids.sopInstanceUid), 1);
      for (const s of [noPart, noUid, jpeg]) assert.equal(stored(s.ids.sopInstanceUid), 0, 'nothing of a refused data set is stored');
    });

    test('single-frame Pixel Data as image/jpeg becomes encapsulated Pixel Data in its transfer syntax, the codestream whole', async () => {
      const dir = await mkdtemp(join(tmpdir(), 'dicom-edge-web-stow-jpeg-'));
      const compressed = await makeInstanceInSyntax(dir, 'jpeg-lossless', { rows: 32, columns: 32 });
      const file = await readFile(compressed.path);
      const element = dicomParser.parseDicom(file).elements.x7fe00010!;
      assert.equal(element.fragments?.length, 1, 'DCMTK wrote one fragment');
      const codestream = file.subarray(element.fragments![0]!.position, element.fragments![0]!.position + element.fragments![0]!.length);
      const json = jsonOf(file, `urn:uuid:${newUid()}`);
      const { status, warning } = await stow('application/dicom+json', [
        { headers: { 'Content-Type': 'application/dicom+json' }, body: JSON.stringify([json]) },
        bulkPart(json['7FE00010']!.BulkDataURI!, codestream, 'image/jpeg; transfer-syntax=1.2.840.10008.1.2.4.70'),
      ]);
      assert.equal(status, 200, warning);
      const asStored = await w.api(instancePath(compressed), { headers: { accept: 'multipart/related; type="application/dicom"; transfer-syntax=*' } });
      const storedFile = (await partsOf(asStored))[0]!.body;
      const stored = dicomParser.parseDicom(storedFile);
      assert.equal(stored.string('x00020010')?.replace(/\0+$/, ''), '1.2.840.10008.1.2.4.70');
      const fragment = stored.elements.x7fe00010!.fragments![0]!;
      assert.ok(storedFile.subarray(fragment.position, fragment.position + fragment.length).equals(codestream), 'the codestream byte for byte');
      assert.deepEqual(jsonOf(storedFile, 'x'), jsonOf(file, 'x'), 'the data set as sent');
      const reference = join(dir, 'dcmtk.dcm');
      await runOk(requireTool('dcmdjpeg', 'dcmtk'), ['+te', compressed.path, reference]);
      assert.ok(pixelsOf(await retrieve(compressed)).pixels.equals(pixelsOf(await readFile(reference)).pixels), 'decodes to what dcmdjpeg gives');
    });

    test('Pixel Data shorter than its Rows and Columns need is refused (0xA900)', async () => {
      const s = source();
      const { status, answer } = await stow('application/dicom+json', [
        { headers: { 'Content-Type': 'application/dicom+json' }, body: JSON.stringify([s.json]) },
        bulkPart(s.location, s.pixels.subarray(0, 10)),
      ]);
      assert.equal(status, 409);
      assert.deepEqual(failureReasons(answer), [0xa900]);
      assert.equal(stored(s.ids.sopInstanceUid), 0);
    });

    test('garbage: JSON that does not parse, XML that does not parse, a bad InlineBinary — 409 with 0xC000, nothing stored', async () => {
      const json = await stow('application/dicom+json', [{ headers: { 'Content-Type': 'application/dicom+json' }, body: '[{"00080018": ' }]);
      assert.equal(json.status, 409);
      assert.deepEqual(failureReasons(json.answer), [0xc000]);
      assert.match(json.warning, /not JSON/);
      const notArray = await stow('application/dicom+json', [{ headers: { 'Content-Type': 'application/dicom+json' }, body: '{"a": 1}' }]);
      assert.deepEqual(failureReasons(notArray.answer), [0xc000]);
      const xml = await stow('application/dicom+xml', [{ headers: { 'Content-Type': 'application/dicom+xml' }, body: '<NativeDicomModel><DicomAttribute tag="00100010"' }]);
      assert.equal(xml.status, 409);
      assert.deepEqual(failureReasons(xml.answer), [0xc000]);
      const s = source();
      s.json['00091010'] = { vr: 'OB', InlineBinary: '!!not base64!!' };
      s.json['00090010'] = { vr: 'LO', Value: ['MEDIA TEST'] };
      const inline = await stow('application/dicom+json', [
        { headers: { 'Content-Type': 'application/dicom+json' }, body: JSON.stringify([s.json]) }, bulkPart(s.location, s.pixels)]);
      assert.deepEqual(failureReasons(inline.answer), [0xc000]);
      assert.equal(stored(s.ids.sopInstanceUid), 0);
    });

    test('a metadata request over 256 MiB (held in memory) gets 413 before it is read', async () => {
      const url = new URL(w.baseUrl);
      const statusFor = (type: string) => new Promise<number>((resolve, reject) => {
        const request = httpRequest({ host: url.hostname, port: url.port, path: '/dicom-web/studies', method: 'POST', headers: {
          authorization: `Bearer ${w.token}`, 'content-type': `multipart/related; type="${type}"; boundary=x`, 'content-length': String(300 * 1024 ** 2) } }, (response) => {
          response.resume();
          resolve(response.statusCode!);
          request.destroy();
        });
        request.on('error', reject);
        request.flushHeaders();
      });
      assert.equal(await statusFor('application/dicom+json'), 413);
      assert.equal(await statusFor('application/dicom+xml'), 413);
    });

    test('a metadata request to /studies/{study} of another study is refused per instance, as for Part 10', async () => {
      const s = source();
      const { status, answer } = await stow('application/dicom+json', [
        { headers: { 'Content-Type': 'application/dicom+json' }, body: JSON.stringify([s.json]) }, bulkPart(s.location, s.pixels)],
      `/dicom-web/studies/${newUid()}`);
      assert.equal(status, 409);
      assert.equal(failureReasons(answer).length, 1);
      assert.equal(stored(s.ids.sopInstanceUid), 0);
    });
  });

  describe("compared with Orthanc's DICOMweb plugin", () => {
    // Orthanc (this version) serves a single BulkDataURI (its own form, …/bulk/<tag>) as an octet stream, but
    // answers a study, series or instance asked for as application/octet-stream with 400, has no …/bulkdata
    // resources (404), and refuses STOW-RS of application/dicom+json with 415: only the bytes compare.
    let orthanc: OrthancPeer;
    let dir: string;
    before(async () => {
      dir = await mkdtemp(join(tmpdir(), 'dicom-edge-orthanc-bulk-'));
      orthanc = await startOrthanc({ dir });
    });
    after(async () => {
      await orthanc?.stop();
      await rm(dir, { recursive: true, force: true });
    });

    test('the Pixel Data bulk data of the same instance is the same bytes', async () => {
      const ids = { studyUid: newUid(), seriesUid: newUid(), sopInstanceUid: newUid() };
      const file = makeInstance({ ...ids, rows: 24, columns: 20 });
      const toOrthanc = await fetch(`${orthanc.httpUrl}/instances`, { method: 'POST', body: file as unknown as BodyInit, headers: { 'content-type': 'application/dicom' } });
      assert.equal(toOrthanc.status, 200);
      await client.storeInstances({ datasets: [arrayBufferOf(file)] });
      const theirClient = new dwc.DICOMwebClient({ url: orthanc.dicomWebUrl, verbose: false } as never) as unknown as typeof client;
      const metadata = (await theirClient.retrieveInstanceMetadata({ studyInstanceUID: ids.studyUid, seriesInstanceUID: ids.seriesUid, sopInstanceUID: ids.sopInstanceUid })) as DicomJson[];
      const theirs = (await theirClient.retrieveBulkData({ BulkDataURI: metadata[0]!['7FE00010']!.BulkDataURI })) as ArrayBuffer[];
      const ours = (await partsOf(await w.api(instancePath(ids), { headers: { accept: OCTETS } }))).find((p) => p.headers['content-location']!.endsWith('/bulkdata/7FE00010'))!;
      assert.ok(Buffer.from(theirs[0]!).equals(ours.body), 'the same Pixel Data bytes as Orthanc serves');
    });
  });

  test('a study only in the clinic\'s archive: fetched into the store, then its bulk data served', async () => {
    const azure = await AzureDicomDouble.start();
    const cached = await startWebAppliance({ settings: { destinations: [{ name: 'azure', baseUrl: azure.baseUrl, archive: true, retryBaseMs: 50, retryCapMs: 500 }] } });
    try {
      const ids = { studyUid: newUid(), seriesUid: newUid(), sopInstanceUid: newUid() };
      const file = makeInstance({ ...ids, rows: 16, columns: 16 });
      azure.seedInstance(file);
      const response = await cached.api(`/dicom-web/studies/${ids.studyUid}`, { headers: { accept: OCTETS } });
      assert.equal(response.status, 200, await response.clone().text());
      const parts = await partsOf(response);
      assert.equal(parts.length, 1);
      assert.match(parts[0]!.headers['content-location']!, new RegExp(`/instances/${ids.sopInstanceUid}/bulkdata/7FE00010$`));
      assert.ok(parts[0]!.body.equals(pixelsOf(file).pixels));
    } finally {
      await cached.stop();
      await azure.stop();
    }
  });
});
