// Reading Native DICOM Model documents (PS3.19 A.1) as STOW-RS receives them: the inverse of the writer, the
// spellings PS3.18's own examples use, and a precise error for a document that breaks the model.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { DicomJson } from '../../main/core/dicom/json-model.js';
import { nativeXmlFromJson } from '../../main/core/dicom/native-xml.js';
import { jsonFromNativeXml, NativeXmlError } from '../../main/core/dicom/native-xml-read.js';

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
  '00100010': { vr: 'PN', Value: [{ Alphabetic: 'Yamada^Tarou^^Dr^Jr', Ideographic: '山田^太郎', Phonetic: 'やまだ^たろう' }] },
  '00081060': { vr: 'PN', Value: [{ Alphabetic: 'One^A' }, null, { Alphabetic: 'Three' }] },
  '00100030': { vr: 'DA' },
  '00200013': { vr: 'IS', Value: [7] },
  '00200032': { vr: 'DS', Value: [-12.5, 3, 100.25] },
  '00280010': { vr: 'US', Value: [512] },
  '00209165': { vr: 'AT', Value: ['00100010'] },
  '00091010': { vr: 'OB', InlineBinary: 'AQIDBA==' },
  '7FE00010': { vr: 'OW', BulkDataURI: 'urn:uuid:pixels' },
};

describe('Native DICOM Model reader', () => {
  test('reads back what the writer wrote, attribute for attribute', () => {
    assert.deepEqual(jsonFromNativeXml(nativeXmlFromJson(SAMPLE)), SAMPLE);
  });

  test('values in the order of their number; Tag/VR capitalised as in PS3.18 B.23', () => {
    const xml = `<?xml version="1.0"?><NativeDicomModel>
      <DicomAttribute Tag="00080008" VR="CS"><Value number="2">B</Value><Value number="1">A</Value></DicomAttribute>
      <DicomAttribute tag="00280010" vr="US"><Value number="1"> 16 </Value></DicomAttribute>
    </NativeDicomModel>`;
    assert.deepEqual(jsonFromNativeXml(xml), { '00080008': { vr: 'CS', Value: ['A', 'B'] }, '00280010': { vr: 'US', Value: [16] } });
  });

  for (const [name, xml, message] of [
    ['not well-formed', '<NativeDicomModel><DicomAttribute tag="00100010"', /does not parse/],
    ['another root', '<Patient/>', /root is <Patient>/],
    ['a bad tag', '<NativeDicomModel><DicomAttribute tag="0010" vr="PN"/></NativeDicomModel>', /tag "0010"/],
    ['no vr', '<NativeDicomModel><DicomAttribute tag="00100010"/></NativeDicomModel>', /00100010 has no valid vr/],
    ['a Value without number', '<NativeDicomModel><DicomAttribute tag="00100020" vr="LO"><Value>x</Value></DicomAttribute></NativeDicomModel>', /no number/],
    ['a number that is not one', '<NativeDicomModel><DicomAttribute tag="00280010" vr="US"><Value number="1">many</Value></DicomAttribute></NativeDicomModel>', /"many" is not a US number/],
    ['BulkData without uri', '<NativeDicomModel><DicomAttribute tag="7FE00010" vr="OW"><BulkData/></DicomAttribute></NativeDicomModel>', /BulkData> has no uri/],
  ] as const) {
    test(`refuses ${name}, saying where`, () => {
      assert.throws(() => jsonFromNativeXml(xml), (error: unknown) => error instanceof NativeXmlError && message.test(error.message));
    });
  }
});
