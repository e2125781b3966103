// The Native DICOM Model writer (PS3.19 A.1): every document parses under a strict XML reader, and reading it
// back gives the DICOM JSON it was written from (numbers as their text, PN split into its components).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { DicomJson } from '../../main/core/dicom/json-model.js';
import { escapeXml, nativeXmlFromJson } from '../../main/core/dicom/native-xml.js';
import { asXmlSees, datasetFromXml, parseXml } from '../support/native-xml.js';

const SAMPLE: DicomJson = {
  '00080005': { vr: 'CS', Value: ['ISO_IR 192'] },
  '00080008': { vr: 'CS', Value: ['ORIGINAL', 'PRIMARY', null, 'AXIAL'] },
  '00081140': {
    vr: 'SQ',
    Value: [
      { '00081150': { vr: 'UI', Value: ['1.2.840.10008.5.1.4.1.1.2'] }, '00081155': { vr: 'UI', Value: ['1.2.3.4'] } },
      {},
      { '00400275': { vr: 'SQ', Value: [{ '00321060': { vr: 'LO', Value: ['nested & deep'] } }] } },
    ],
  },
  '00090010': { vr: 'LO', Value: ['DICOMEDGE TEST'] },
  '00091010': { vr: 'LO', Value: ['private <value>'] },
  '00100010': { vr: 'PN', Value: [{ Alphabetic: 'Yamada^Tarou^^Dr^Jr', Ideographic: '山田^太郎', Phonetic: 'やまだ^たろう' }] },
  '00100020': { vr: 'LO', Value: ['ID "quoted" \'single\''] },
  '00100030': { vr: 'DA' },
  '00081060': { vr: 'PN', Value: [{ Alphabetic: 'One^A' }, null, { Alphabetic: 'Three' }] },
  '00200013': { vr: 'IS', Value: [7] },
  '00280030': { vr: 'DS', Value: [0.5, 0.25] },
  '00280010': { vr: 'US', Value: [512] },
  '00200032': { vr: 'DS', Value: [-12.5, 3, 100.25] },
  '00209165': { vr: 'AT', Value: ['00100010'] },
  '00204000': { vr: 'LT', Value: ['line one\r\nline two\ttabbed'] },
  '00291010': { vr: 'OB', InlineBinary: 'AAECAwQ=' },
  '7FE00010': { vr: 'OW', BulkDataURI: 'http://edge/dicom-web/studies/1/series/2/instances/3/bulkdata/7FE00010?a=1&b=2' },
};

describe('Native DICOM Model from DICOM JSON', () => {
  test('reads back as the JSON it came from: PN groups, nested SQ items, empty item, multi-valued with empties, bulk and inline', () => {
    const root = parseXml(nativeXmlFromJson(SAMPLE));
    assert.equal(root.name, 'NativeDicomModel');
    assert.equal(root.attributes.xmlns, 'http://dicom.nema.org/PS3.19/models/NativeDICOM');
    assert.deepEqual(datasetFromXml(root), asXmlSees(SAMPLE));
  });

  test('attributes are in tag order with the keyword of public tags and none for private ones', () => {
    const root = parseXml(nativeXmlFromJson(SAMPLE));
    const tags = root.children.map((c) => c.attributes.tag!);
    assert.deepEqual(tags, [...tags].sort());
    const byTag = new Map(root.children.map((c) => [c.attributes.tag, c.attributes]));
    assert.equal(byTag.get('00100010')!.keyword, 'PatientName');
    assert.equal(byTag.get('7FE00010')!.keyword, 'PixelData');
    assert.equal(byTag.get('00091010')!.keyword, undefined);
    // A retired attribute keeps its PS3.6 keyword (dcmjs prefixes it with RETIRED_).
    const retired = parseXml(nativeXmlFromJson({ '00080010': { vr: 'SH', Value: ['old'] } }));
    assert.equal(retired.children[0]!.attributes.keyword, 'RecognitionCode');
  });

  test('person name components are separate elements, empty ones left out', () => {
    const root = parseXml(nativeXmlFromJson({ '00100010': { vr: 'PN', Value: [{ Alphabetic: 'Meta^Data^^Dr' }] } }));
    const alphabetic = root.children[0]!.children[0]!.children[0]!;
    assert.equal(alphabetic.name, 'Alphabetic');
    assert.deepEqual(alphabetic.children.map((c) => [c.name, c.text]), [['FamilyName', 'Meta'], ['GivenName', 'Data'], ['NamePrefix', 'Dr']]);
  });

  test('characters XML 1.0 forbids become U+FFFD, so the document still parses', () => {
    const xml = nativeXmlFromJson({ '00204000': { vr: 'LT', Value: ['page\fbreak\u0001end'] } });
    assert.deepEqual(datasetFromXml(parseXml(xml)), { '00204000': { vr: 'LT', Value: ['page\uFFFDbreak\uFFFDend'] } });
    assert.equal(escapeXml('a&b<c>d"e'), 'a&amp;b&lt;c&gt;d&quot;e');
  });

  test('the strict reader refuses what is not well-formed', () => {
    assert.throws(() => parseXml('<a><b></a>'), /expected/);
    assert.throws(() => parseXml('<a>x & y</a>'), /bad markup/);
    assert.throws(() => parseXml('<a>\f</a>'), /XML 1.0/);
    assert.throws(() => parseXml('<a/><b/>'), /after the root/);
  });
});
