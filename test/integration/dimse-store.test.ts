import assert from 'node:assert/strict';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import dicomParser from 'dicom-parser';
import dimse from 'dcmjs-dimse';
import { dataSetOffset } from '../../main/core/dicom/file-meta.js';
import { startDimse, type DimseHarness } from '../support/dimse-harness.js';
import { makeInstance, makeMultiFrame } from '../support/instance.js';
import { requireTool, run, runOk, startStorescp, type StorescpPeer } from '../support/peers.js';
import { DCMTK_SENDERS, makeInstanceInSyntax, TRANSFER_SYNTAX_UIDS, type SyntaxName } from '../support/transfer-syntax.js';
import { newUid } from '../support/uid.js';
import { indexDb } from '../support/index-db.js';

function metaOf(bytes: Buffer): { ts: string; sourceAe: string; sopInstanceUid: string; sopClassUid: string; implementationClassUid: string } {
  const meta = dicomParser.readPart10Header(bytes);
  const str = (tag: string) => (meta.string(tag) ?? '').replace(/\0+$/, '').trim();
  return {
    ts: str('x00020010'), sourceAe: str('x00020016'), sopInstanceUid: str('x00020003'), sopClassUid: str('x00020002'),
    implementationClassUid: str('x00020012'),
  };
}

function dataSet(bytes: Buffer): Buffer {
  return bytes.subarray(dataSetOffset(bytes));
}

async function storedFile(h: DimseHarness, sopInstanceUid: string): Promise<Buffer> {
  const row = indexDb(h.archive).prepare('SELECT path FROM instances WHERE sop_instance_uid = ?').get(sopInstanceUid) as { path: string } | undefined;
  assert.ok(row, `instance ${sopInstanceUid} is indexed`);
  return readFile(h.archive.paths.absolute(row.path));
}

describe('DIMSE C-ECHO and C-STORE against DCMTK', () => {
  let h: DimseHarness;
  let oracle: StorescpPeer;
  const oracleFile = async (sopInstanceUid: string) => {
    const name = (await readdir(oracle.dir)).find((n) => n.endsWith(sopInstanceUid));
    assert.ok(name, `storescp received ${sopInstanceUid}`);
    return join(oracle.dir, name);
  };
  before(async () => {
    requireTool('dcmsend', 'dcmtk');
    h = await startDimse();
    oracle = await startStorescp({ dir: join(h.dir, 'storescp'), aet: 'ORACLE' });
  });
  after(async () => {
    await oracle?.stop();
    await h?.stop();
  });

  test('echoscu gets a successful C-ECHO', async () => {
    await runOk(requireTool('echoscu', 'dcmtk'), ['-aet', 'ECHOER', '-aec', 'EDGE', '127.0.0.1', String(h.port)], { timeoutMs: 20_000 });
  });

  // Each syntax goes to DCMTK's bit-preserving storescp and to us from the same sender; the two data sets
  // must be identical (senders re-encode, e.g. re-deflate, so the file on disk is not the reference).
  for (const [syntax, sender] of Object.entries(DCMTK_SENDERS) as [SyntaxName, (typeof DCMTK_SENDERS)[SyntaxName]][]) {
    test(`${sender.tool} in ${syntax}: stored as received, byte for byte, with our meta header`, async () => {
      const source = await makeInstanceInSyntax(join(h.dir, 'sent', syntax), syntax);
      const send = (port: number, aec: string) =>
        runOk(requireTool(sender.tool, 'dcmtk'), ['-aet', 'MODALITY1', '-aec', aec, ...sender.flags, '127.0.0.1', String(port), source.path],
          { timeoutMs: 30_000 });
      await send(h.port, 'EDGE');
      await send(oracle.port, oracle.aet);
      const received = await readFile(await oracleFile(source.sopInstanceUid));
      const stored = await storedFile(h, source.sopInstanceUid);
      const meta = metaOf(stored);
      assert.equal(meta.ts, TRANSFER_SYNTAX_UIDS[syntax]);
      assert.equal(metaOf(received).ts, TRANSFER_SYNTAX_UIDS[syntax]);
      assert.equal(meta.sourceAe, 'MODALITY1');
      assert.equal(meta.sopInstanceUid, source.sopInstanceUid);
      assert.equal(meta.sopClassUid, metaOf(received).sopClassUid);
      assert.ok(meta.implementationClassUid.startsWith('2.25.'));
      assert.ok(dataSet(stored).equals(dataSet(received)), `data set of ${syntax} differs from what storescp received`);
    });
  }

  test('among uncompressed syntaxes proposed together, Explicit VR Little Endian is chosen', async () => {
    const source = await makeInstanceInSyntax(join(h.dir, 'sent', 'combined'), 'implicit');
    await runOk(requireTool('storescu', 'dcmtk'), ['+C', '-xi', '-x=', '-aec', 'EDGE', '127.0.0.1', String(h.port), source.path], { timeoutMs: 30_000 });
    assert.equal(metaOf(await storedFile(h, source.sopInstanceUid)).ts, TRANSFER_SYNTAX_UIDS.explicit);
  });

  test('a multi-frame instance is stored byte for byte', async () => {
    const sopInstanceUid = newUid();
    const path = join(h.dir, 'sent', 'multiframe.dcm');
    await writeFile(path, makeMultiFrame({ sopInstanceUid, frames: 30, rows: 256, columns: 256 }));
    await runOk(requireTool('storescu', 'dcmtk'), ['-aec', 'EDGE', '127.0.0.1', String(h.port), path], { timeoutMs: 30_000 });
    const stored = await storedFile(h, sopInstanceUid);
    assert.ok(dataSet(stored).equals(dataSet(await readFile(path))));
    const row = indexDb(h.archive).prepare('SELECT number_of_frames FROM instances WHERE sop_instance_uid = ?').get(sopInstanceUid) as { number_of_frames: number };
    assert.equal(row.number_of_frames, 30);
  });

  test('a data set whose SOP Instance UID differs from the command gets 0xA900 and is not kept', async () => {
    const declared = newUid();
    const actual = newUid();
    const instance = dimse.Dataset.fromFile(await writeTemp(h, makeInstance({ sopInstanceUid: actual })))!;
    const request = new dimse.requests.CStoreRequest(instance);
    request.setAffectedSopInstanceUid(declared);
    const status = await sendWithDcmjsDimse(h, request);
    assert.equal(status, 0xa900);
    assert.equal((indexDb(h.archive).prepare('SELECT COUNT(*) AS n FROM instances WHERE sop_instance_uid IN (?, ?)').get(declared, actual) as { n: number }).n, 0);
  });

  test('below the disk reserve a C-STORE gets 0xA700', async () => {
    const sopInstanceUid = newUid();
    const path = await writeTemp(h, makeInstance({ sopInstanceUid }));
    h.archive.setLimits({ maxArchiveBytes: 0, minFreeBytes: Number.MAX_SAFE_INTEGER, evictDelivered: false });
    try {
      const result = await run(requireTool('storescu', 'dcmtk'), ['-v', '-aec', 'EDGE', '127.0.0.1', String(h.port), path], { timeoutMs: 30_000 });
      assert.match(result.stderr + result.stdout, /Out ?Of ?Resources|0xa700/i);
    } finally {
      h.archive.setLimits({ maxArchiveBytes: 0, minFreeBytes: 0, evictDelivered: false });
    }
    assert.equal((indexDb(h.archive).prepare('SELECT COUNT(*) AS n FROM instances WHERE sop_instance_uid = ?').get(sopInstanceUid) as { n: number }).n, 0);
    const temp = (await h.archiveFiles()).filter((f) => f.startsWith('.incoming'));
    assert.deepEqual(temp, []);
  });
});

async function writeTemp(h: DimseHarness, bytes: Buffer): Promise<string> {
  const path = join(h.dir, `${newUid()}.dcm`);
  await writeFile(path, bytes);
  return path;
}

/** Sends one request with dcmjs-dimse's own SCU (DCMTK always takes the UIDs from the data set). */
function sendWithDcmjsDimse(h: DimseHarness, request: InstanceType<typeof dimse.requests.CStoreRequest>): Promise<number> {
  return new Promise((resolve, reject) => {
    const client = new dimse.Client();
    let status: number | undefined;
    request.on('response', (response: { getStatus(): number }) => (status = response.getStatus()));
    client.addRequest(request);
    client.on('networkError', reject);
    client.on('closed', () => (status === undefined ? reject(new Error('no C-STORE response')) : resolve(status)));
    client.send('127.0.0.1', h.port, 'SCU', 'EDGE', { connectTimeout: 10_000, associationTimeout: 10_000, pduTimeout: 10_000 });
  });
}
