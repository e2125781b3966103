import assert from 'node:assert/strict';
import { readdir, readFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import jpeg from 'jpeg-js';
import { dataSetOffset } from '../../main/core/dicom/file-meta.js';
import { requireTool, runOk, startStorescp, type StorescpPeer } from '../support/peers.js';
import { writeInstances, makeStudy } from '../support/study.js';
import { DCMTK_SENDERS, makeInstanceInSyntax, TRANSFER_SYNTAX_UIDS, type SyntaxName } from '../support/transfer-syntax.js';
import { startWebAppliance, type WebAppliance } from '../support/web-appliance.js';
import { indexDb } from '../support/index-db.js';

const COMPRESSED: SyntaxName[] = ['deflated', 'jpeg-baseline', 'jpeg-lossless', 'jpeg-ls', 'jpeg2000', 'rle'];

function firstPart(body: Buffer, contentType: string): { headers: string; bytes: Buffer } {
  const boundary = /boundary=("?)([^";]+)\1/.exec(contentType)![2]!;
  const start = body.indexOf(`--${boundary}`) + boundary.length + 4;
  const headerEnd = body.indexOf('\r\n\r\n', start);
  const end = body.indexOf(`\r\n--${boundary}`, headerEnd);
  return { headers: body.subarray(start, headerEnd).toString(), bytes: body.subarray(headerEnd + 4, end) };
}

describe('DICOMweb over instances received by DIMSE', () => {
  let w: WebAppliance;
  let oracle: StorescpPeer;
  const sent = new Map<SyntaxName, { studyUid: string; seriesUid: string; sopInstanceUid: string }>();

  before(async () => {
    requireTool('dcmsend', 'dcmtk');
    w = await startWebAppliance();
    oracle = await startStorescp({ dir: join(w.dataDir, 'oracle'), aet: 'ORACLE' });
  });
  after(async () => {
    await oracle?.stop();
    await w?.stop();
  });

  for (const [syntax, sender] of Object.entries(DCMTK_SENDERS) as Array<[SyntaxName, (typeof DCMTK_SENDERS)[SyntaxName]]>) {
    test(`WADO-RS returns exactly what ${sender.tool} sent in ${syntax}`, async () => {
      const source = await makeInstanceInSyntax(join(w.dataDir, 'sent', syntax), syntax);
      const send = (port: number, aec: string) =>
        runOk(requireTool(sender.tool, 'dcmtk'), ['-aet', 'MODALITY1', '-aec', aec, ...sender.flags, '127.0.0.1', String(port), source.path], { timeoutMs: 30_000 });
      await send(w.dimsePort, 'DICOMEDGE');
      await send(oracle.port, oracle.aet);
      sent.set(syntax, source);
      const name = (await readdir(oracle.dir)).find((n) => n.endsWith(source.sopInstanceUid));
      assert.ok(name, 'storescp received the instance');
      const received = await readFile(join(oracle.dir, name));
      const response = await w.api(`/dicom-web/studies/${source.studyUid}/series/${source.seriesUid}/instances/${source.sopInstanceUid}`, {
        headers: { accept: 'multipart/related; type="application/dicom"; transfer-syntax=*' },
      });
      assert.equal(response.status, 200);
      const part = firstPart(Buffer.from(await response.arrayBuffer()), response.headers.get('content-type')!);
      assert.match(part.headers, new RegExp(`transfer-syntax=${TRANSFER_SYNTAX_UIDS[syntax].replace(/\./g, '\\.')}`));
      const row = indexDb(w.appliance.archive).prepare('SELECT path FROM instances WHERE sop_instance_uid = ?').get(source.sopInstanceUid) as { path: string };
      const stored = await readFile(w.appliance.archive.paths.absolute(row.path));
      assert.ok(part.bytes.equals(stored), 'WADO-RS sends the stored file unchanged');
      assert.ok(part.bytes.subarray(dataSetOffset(part.bytes)).equals(received.subarray(dataSetOffset(received))), 'data set equals what the sender sent');
    });
  }

  for (const syntax of COMPRESSED) {
    test(`/rendered decodes ${syntax} into a JPEG of the image`, async () => {
      const source = sent.get(syntax);
      assert.ok(source, `the ${syntax} instance was sent by the test above`);
      const response = await w.api(`/dicom-web/studies/${source.studyUid}/series/${source.seriesUid}/instances/${source.sopInstanceUid}/rendered`);
      assert.equal(response.status, 200, await response.clone().text());
      const image = jpeg.decode(Buffer.from(await response.arrayBuffer()), { useTArray: true });
      assert.equal(image.width, 64);
      assert.equal(image.height, 64);
      const grey = [...image.data.filter((_, i) => i % 4 === 0)];
      assert.ok(Math.max(...grey) - Math.min(...grey) > 100, 'the gradient is visible (windowed, not flat)');
      const frames = await w.api(`/dicom-web/studies/${source.studyUid}/series/${source.seriesUid}/instances/${source.sopInstanceUid}/frames/1`, {
        headers: { accept: 'multipart/related; type="application/octet-stream"; transfer-syntax=*' },
      });
      assert.equal(frames.status, 200);
    });
  }

  test('an SSE client receives events while storescu sends a study', { timeout: 60_000 }, async () => {
    const study = makeStudy({ series: 1, instancesPerSeries: 4 });
    const dir = join(w.dataDir, 'sse');
    await mkdir(dir, { recursive: true });
    const paths = await writeInstances(dir, study);
    const controller = new AbortController();
    const response = await w.api('/api/events', { signal: controller.signal });
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /text\/event-stream/);
    const stored = new Set<string>();
    const reading = (async () => {
      const decoder = new TextDecoder();
      let buffer = '';
      for await (const chunk of response.body!) {
        buffer += decoder.decode(chunk as Uint8Array, { stream: true });
        let end;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const event = /^event: (.+)$/m.exec(block)?.[1];
          const data = /^data: (.+)$/m.exec(block)?.[1];
          if (event === 'instance-stored' && data) stored.add((JSON.parse(data) as { sopInstanceUid: string }).sopInstanceUid);
          if (stored.size === study.length) return;
        }
      }
    })();
    await runOk(requireTool('storescu', 'dcmtk'), ['-aet', 'MODALITY1', '-aec', 'DICOMEDGE', '127.0.0.1', String(w.dimsePort), ...paths], { timeoutMs: 30_000 });
    await reading;
    controller.abort();
    assert.deepEqual([...stored].sort(), study.map((i) => i.sopInstanceUid).sort());
  });
});
