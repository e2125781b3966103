// DICOMweb conformance found by independent implementations (issue 14), driven by dicomweb-client.
import assert from 'node:assert/strict';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { api as dwc } from 'dicomweb-client';
import { makeInstance } from '../support/fixtures.js';
import { indexDb } from '../support/index-db.js';
import { makeInstanceInSyntax } from '../support/transfer-syntax.js';
import { startWebAppliance, type WebAppliance } from '../support/web-appliance.js';
import { installXMLHttpRequest } from '../support/xhr.js';

installXMLHttpRequest();

const arrayBufferOf = (bytes: Buffer) => bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;

describe('DICOMweb conformance (issue 14)', () => {
  let w: WebAppliance;
  // dicomweb-client's declarations mark optional options as required; calls are checked by the assertions.
  let client: Record<string, (options: Record<string, unknown>) => Promise<unknown>>;

  before(async () => {
    w = await startWebAppliance();
    client = new dwc.DICOMwebClient({ url: w.dicomWebUrl, headers: { Authorization: `Bearer ${w.token}` }, verbose: false } as never) as unknown as typeof client;
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
});
