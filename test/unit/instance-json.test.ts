import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { readDicom } from '../../main/core/dicom/dcmjs.js';
import { instanceJsonFromHead, withInstanceUrl } from '../../main/core/dicom/instance-json.js';
import { datasetToJson } from '../../main/core/dicom/metadata-json.js';
import { swapBinaryWords } from '../../main/core/dicom/transcode.js';
import { makeInstanceInSyntax, TRANSFER_SYNTAX_UIDS, type SyntaxName } from '../support/fixtures.js';

/** The description from the fewest first bytes that hold it, as the ingest reads them. */
function fromHead(bytes: Buffer): string {
  for (let length = 256; ; length = Math.min(length * 2, bytes.length)) {
    const parsed = instanceJsonFromHead(bytes.subarray(0, length), bytes.length);
    if (parsed.kind === 'json') return JSON.stringify(parsed.json);
    if (parsed.wholeFile) length = bytes.length / 2;
  }
}

describe('DICOM JSON from the bytes before Pixel Data', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dicom-edge-instance-json-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  for (const syntax of Object.keys(TRANSFER_SYNTAX_UIDS) as SyntaxName[]) {
    test(`${syntax}: the same JSON, text for text, as the whole file gives`, async () => {
      const instance = await makeInstanceInSyntax(dir, syntax, {
        rows: 16, columns: 16, extra: { ImageComments: 'before the pixels', ReferencedImageSequence: [{ ReferencedSOPInstanceUID: '1.2.3' }] },
      });
      const bytes = await readFile(instance.path);
      const whole = readDicom(bytes);
      if (syntax === 'bigendian') swapBinaryWords(whole.dict);
      const url = 'https://edge.example/dicom-web/studies/1/series/2/instances/3';
      assert.equal(withInstanceUrl(fromHead(bytes), url), JSON.stringify(datasetToJson(whole.dict, url, whole.meta)));
    });
  }

  test('a value that spells a BulkDataURI member is left as it is', () => {
    const stored = JSON.stringify({ '00204000': { vr: 'LT', Value: ['"BulkDataURI":"/bulkdata/x'] }, '7FE00010': { vr: 'OW', BulkDataURI: '/bulkdata/7FE00010' } });
    const served = JSON.parse(withInstanceUrl(stored, 'http://h/i')) as Record<string, { Value?: string[]; BulkDataURI?: string }>;
    assert.equal(served['00204000']!.Value![0], '"BulkDataURI":"/bulkdata/x');
    assert.equal(served['7FE00010']!.BulkDataURI, 'http://h/i/bulkdata/7FE00010');
  });
});
