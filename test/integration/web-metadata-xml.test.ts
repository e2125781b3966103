// PS3.18 Table 10.4.4-1: WADO-RS metadata and QIDO-RS results as multipart/related; type="application/dicom+xml",
// one Native DICOM Model document (PS3.19 A.1) per instance or result. Each document is parsed by a strict
// reader and compared attribute for attribute with the JSON answer for the same instance, and with Orthanc's
// DICOMweb plugin where it answers the same request.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { DicomJson } from '../../main/core/dicom/json-model.js';
import { makeInstance, newUid, SOP_CLASS_UIDS } from '../support/fixtures.js';
import { asXmlSees, datasetFromXml, type XmlElement, xmlParts } from '../support/native-xml.js';
import { startOrthanc, type OrthancPeer } from '../support/peers.js';
import { startWebAppliance, type WebAppliance } from '../support/web-appliance.js';

const BOUNDARY = 'xml-test-boundary';
const XML = 'multipart/related; type="application/dicom+xml"';

function multipart(files: Buffer[]): Buffer {
  const chunks: Buffer[] = [];
  for (const bytes of files) chunks.push(Buffer.from(`--${BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n`), bytes, Buffer.from('\r\n'));
  chunks.push(Buffer.from(`--${BOUNDARY}--\r\n`));
  return Buffer.concat(chunks);
}

function sop(json: DicomJson): string {
  return json['00080018']!.Value![0] as string;
}

describe('DICOM XML (application/dicom+xml) metadata and search results', () => {
  let dir: string;
  let w: WebAppliance;
  let orthanc: OrthancPeer | undefined;
  const studyUid = newUid();
  const seriesUid = newUid();
  const files: Buffer[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dicom-edge-xml-'));
    const common = { studyUid, seriesUid, patientName: 'Xml^Patient^^Dr', patientId: 'XML-1', studyDate: '20240517', accession: 'ACC-XML', rows: 8, columns: 8 };
    files.push(makeInstance({
      ...common, instanceNumber: 1,
      extra: {
        ImageType: ['ORIGINAL', 'PRIMARY', 'AXIAL'],
        PixelSpacing: [0.5, 0.25],
        ReferencedImageSequence: [{ ReferencedSOPClassUID: SOP_CLASS_UIDS.ctImage, ReferencedSOPInstanceUID: newUid() }],
        ImageComments: 'markup <b> & "quotes"',
        ReferringPhysicianName: 'Ref^Doc',
        '00091010': { vr: 'LO', Value: ['PRIVATE VALUE'] },
        '00090010': { vr: 'LO', Value: ['DICOMEDGE TEST'] },
      },
    }));
    files.push(makeInstance({ ...common, instanceNumber: 2 }));
    w = await startWebAppliance();
    const res = await w.api('/dicom-web/studies', {
      method: 'POST', body: multipart(files),
      headers: { 'content-type': `multipart/related; type="application/dicom"; boundary=${BOUNDARY}`, accept: 'application/dicom+json' },
    });
    assert.equal(res.status, 200, await res.text());
  });
  after(async () => {
    await w?.stop();
    await orthanc?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  async function json(path: string): Promise<DicomJson[]> {
    const res = await w.api(path, { headers: { accept: 'application/dicom+json' } });
    assert.equal(res.status, 200);
    return (await res.json()) as DicomJson[];
  }

  for (const level of ['study', 'series', 'instance'] as const) {
    test(`${level} metadata as XML: one document per instance, equal to the JSON answer`, async () => {
      const all = await json(`/dicom-web/studies/${studyUid}/metadata`);
      const path = level === 'study' ? `/dicom-web/studies/${studyUid}/metadata`
        : level === 'series' ? `/dicom-web/studies/${studyUid}/series/${seriesUid}/metadata`
          : `/dicom-web/studies/${studyUid}/series/${seriesUid}/instances/${sop(all[0]!)}/metadata`;
      const expected = await json(path);
      const res = await w.api(path, { headers: { accept: XML } });
      assert.equal(res.status, 200, await res.clone().text());
      const documents = await xmlParts(res);
      assert.equal(documents.length, expected.length);
      const got = documents.map((d) => datasetFromXml(d));
      for (const [i, dataset] of got.entries()) assert.deepEqual(dataset, asXmlSees(expected[i]!), `instance ${sop(expected[i]!)}`);
      // The values a reader has to get right: PN components, an SQ item, the BulkDataURI, several values.
      const first = documents.map((d, i) => [d, got[i]!] as const).find(([, g]) => g['00200013']!.Value![0] === '1');
      if (first) {
        const [doc, dataset] = first;
        const patient = doc.children.find((c) => c.attributes.keyword === 'PatientName')!;
        assert.deepEqual(patient.children[0]!.children[0]!.children.map((c) => [c.name, c.text]),
          [['FamilyName', 'Xml'], ['GivenName', 'Patient'], ['NamePrefix', 'Dr']]);
        assert.equal(dataset['00081140']!.vr, 'SQ');
        assert.equal((dataset['00081140']!.Value as DicomJson[]).length, 1);
        assert.deepEqual(dataset['00080008']!.Value, ['ORIGINAL', 'PRIMARY', 'AXIAL']);
        assert.deepEqual(dataset['00204000']!.Value, ['markup <b> & "quotes"']);
        assert.match(dataset['7FE00010']!.BulkDataURI!, /\/bulkdata\/7FE00010$/);
      }
    });
  }

  test('the accept query parameter asks for XML too; JSON stays the default; other types get 406', async () => {
    const path = `/dicom-web/studies/${studyUid}/metadata`;
    const byQuery = await w.api(`${path}?accept=${encodeURIComponent(XML)}`);
    assert.equal(byQuery.status, 200);
    assert.equal((await xmlParts(byQuery)).length, files.length);
    const none = await w.api(path);
    assert.match(none.headers.get('content-type') ?? '', /^application\/dicom\+json/);
    const any = await w.api(path, { headers: { accept: '*/*' } });
    assert.match(any.headers.get('content-type') ?? '', /^application\/dicom\+json/);
    // q-values decide between the two.
    const preferXml = await w.api(path, { headers: { accept: `application/dicom+json; q=0.5, ${XML}` } });
    assert.match(preferXml.headers.get('content-type') ?? '', /^multipart\/related; type="application\/dicom\+xml"/);
    await preferXml.arrayBuffer();
    const preferJson = await w.api(path, { headers: { accept: `${XML}; q=0.4, application/dicom+json` } });
    assert.match(preferJson.headers.get('content-type') ?? '', /^application\/dicom\+json/);
    await preferJson.arrayBuffer();
    const octets = await w.api(path, { headers: { accept: 'multipart/related; type="application/octet-stream"' } });
    assert.equal(octets.status, 406);
    const qidoOctets = await w.api(`/dicom-web/studies?StudyInstanceUID=${studyUid}`, { headers: { accept: 'multipart/related; type="application/octet-stream"' } });
    assert.equal(qidoOctets.status, 406);
  });

  test('the capabilities list XML beside JSON for metadata and search', async () => {
    const body = (await (await w.api('/dicom-web')).json()) as { resources: Array<{ path: string; methods: Array<{ name: string; produces?: string[] }> }> };
    for (const path of ['studies', 'studies/{study}/metadata']) {
      const get = body.resources.find((r) => r.path === path)?.methods.find((m) => m.name === 'GET');
      assert.deepEqual(get?.produces, ['application/dicom+json', XML], path);
    }
  });

  test('the XML and JSON answers have different ETags', async () => {
    const path = `/dicom-web/studies/${studyUid}/metadata`;
    const a = await w.api(path, { headers: { accept: XML } });
    const b = await w.api(path, { headers: { accept: 'application/dicom+json' } });
    await a.arrayBuffer();
    await b.arrayBuffer();
    assert.ok(a.headers.get('etag'));
    assert.notEqual(a.headers.get('etag'), b.headers.get('etag'));
    const again = await w.api(path, { headers: { accept: 'application/dicom+json', 'if-none-match': a.headers.get('etag')! } });
    assert.equal(again.status, 200, 'the XML ETag does not validate the JSON answer');
    await again.arrayBuffer();
  });

  for (const [name, path] of [
    ['studies', () => `/dicom-web/studies?StudyInstanceUID=${studyUid}`],
    ['series', () => `/dicom-web/studies/${studyUid}/series`],
    ['instances', () => `/dicom-web/studies/${studyUid}/series/${seriesUid}/instances?includefield=all`],
  ] as const) {
    test(`QIDO-RS ${name} as XML: one document per result, equal to the JSON results`, async () => {
      const expected = await json(path());
      const res = await w.api(path(), { headers: { accept: XML } });
      assert.equal(res.status, 200);
      const got = (await xmlParts(res)).map((d) => datasetFromXml(d));
      assert.equal(got.length, expected.length);
      got.forEach((dataset, i) => assert.deepEqual(dataset, asXmlSees(expected[i]!)));
    });
  }

  test('instance metadata equals Orthanc\'s XML, but for the differences PS3.18 and the reference allow', async () => {
    orthanc = await startOrthanc({ dir: join(dir, 'orthanc') });
    for (const bytes of files) {
      const res: Response = await fetch(`${orthanc.httpUrl}/instances`, { method: 'POST', body: bytes as unknown as BodyInit, headers: { 'content-type': 'application/dicom' } });
      assert.equal(res.status, 200, await res.text());
    }
    const theirsRes = await fetch(`${orthanc.dicomWebUrl}/studies/${studyUid}/metadata`, { headers: { accept: XML } });
    assert.equal(theirsRes.status, 200, await theirsRes.clone().text());
    const theirs = new Map((await xmlParts(theirsRes)).map((d) => datasetFromXml(withoutEmptySequenceValues(d))).map((d) => [sop(d as DicomJson), d]));
    const ours = (await xmlParts(await w.api(`/dicom-web/studies/${studyUid}/metadata`, { headers: { accept: XML } }))).map((d) => datasetFromXml(d));
    assert.equal(ours.length, theirs.size);
    for (const dataset of ours) assert.deepEqual(comparable(dataset as DicomJson), comparable(theirs.get(sop(dataset as DicomJson))! as DicomJson));
  });
});

/**
 * Where the reference departs from PS3.19 A.1: Orthanc writes an empty <Value> inside a sequence attribute,
 * whose content the schema allows to be Item elements only. Those are dropped from its documents.
 */
function withoutEmptySequenceValues(node: XmlElement): XmlElement {
  const children = node.children
    .filter((c) => !(node.name === 'DicomAttribute' && node.attributes.vr === 'SQ' && c.name === 'Value' && c.children.length === 0 && c.text === ''))
    .map(withoutEmptySequenceValues);
  return { ...node, children };
}

const BINARY_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'UN']);

/**
 * Allowed differences, as for the JSON comparison in web-metadata-stored.test.ts: File Meta Information and
 * group lengths, binary values inline or by reference (only VR and presence compared), each server's own
 * BulkDataURIs, Pixel Data (Orthanc leaves it out). Decimal strings are compared as numbers (JSON gives us
 * numbers, which we write as the shortest text; Orthanc writes the stored text).
 */
function comparable(json: DicomJson): DicomJson {
  const out: DicomJson = {};
  for (const tag of Object.keys(json).sort()) {
    const element = json[tag]!;
    if (tag.startsWith('0002') || tag.endsWith('0000') || tag === '7FE00010') continue;
    if (BINARY_VRS.has(element.vr)) out[tag] = { vr: element.vr, ...(element.InlineBinary !== undefined || element.BulkDataURI !== undefined ? { Value: ['<binary>'] } : {}) };
    else if (element.vr === 'SQ') out[tag] = { vr: 'SQ', ...(element.Value ? { Value: (element.Value as DicomJson[]).map(comparable) } : {}) };
    else if (['DS', 'IS'].includes(element.vr) && element.Value) out[tag] = { vr: element.vr, Value: element.Value.map((v) => (v === '' || v === null ? v : Number(v))) };
    else out[tag] = element;
  }
  return out;
}
