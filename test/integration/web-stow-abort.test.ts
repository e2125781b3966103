// STOW-RS clients that hang up in the middle of a part, driven by a raw socket (an HTTP client
// library always finishes or cancels its request in an orderly way).
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { createConnection, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { waitFor } from '../support/dimse-harness.js';
import { makeInstance } from '../support/instance.js';
import { newUid } from '../support/uid.js';
import { logLines, startWebAppliance, type WebAppliance } from '../support/web-appliance.js';
import { indexDb } from '../support/index-db.js';

const BOUNDARY = 'hang-up-boundary-0123456789';

const partHead = Buffer.from(`--${BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n`);
const closeDelimiter = Buffer.from(`\r\n--${BOUNDARY}--\r\n`);

/** Opens a raw connection and sends a STOW-RS request head announcing `contentLength` body bytes. */
async function startStow(w: WebAppliance, contentLength: number): Promise<Socket> {
  const socket = createConnection({ host: '127.0.0.1', port: Number(new URL(w.baseUrl).port) });
  await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  socket.on('error', () => undefined);
  socket.write([
    'POST /dicom-web/studies HTTP/1.1', `Host: 127.0.0.1`, `Authorization: Bearer ${w.token}`,
    `Content-Type: multipart/related; type="application/dicom"; boundary=${BOUNDARY}`, `Content-Length: ${contentLength}`, '', '',
  ].join('\r\n'));
  return socket;
}

type Moment = 'right after half a part' | 'while the part is spooled' | 'in the second part, after a whole first one';

describe('a STOW-RS client that hangs up mid-part', () => {
  let w: WebAppliance;
  const uncaught: Error[] = [];
  const onUncaught = (error: Error) => uncaught.push(error);
  before(async () => {
    process.on('uncaughtException', onUncaught);
    w = await startWebAppliance();
  });
  after(async () => {
    process.off('uncaughtException', onUncaught);
    await w?.stop();
  });

  const tempFiles = async () => (await readdir(w.appliance.archive.paths.tempDir, { recursive: true, withFileTypes: true })).filter((e) => e.isFile());
  const rows = () => (indexDb(w.appliance.archive).prepare('SELECT COUNT(*) AS n FROM instances').get() as { n: number }).n;

  async function hangUp(moment: Moment, how: 'FIN' | 'RST'): Promise<void> {
    uncaught.length = 0;
    const first = makeInstance({ sopInstanceUid: newUid(), rows: 512, columns: 512 });
    const second = makeInstance({ sopInstanceUid: newUid(), rows: 512, columns: 512 });
    const parts = moment === 'in the second part, after a whole first one' ? [first, second] : [first];
    const wholeBody = Buffer.concat([...parts.flatMap((p, n) => [n > 0 ? Buffer.from('\r\n') : Buffer.alloc(0), partHead, p]), closeDelimiter]);
    const lastPart = parts[parts.length - 1]!;
    const cut = wholeBody.lastIndexOf(partHead) + partHead.length + (lastPart.length >> 1);
    const abortsBefore = (await logLines(w)).filter((l) => l.event === 'ingest-failed').length;
    const socket = await startStow(w, wholeBody.length);
    socket.write(wholeBody.subarray(0, cut));
    if (moment !== 'right after half a part') await waitFor('a temp file', async () => (await tempFiles()).length > 0);
    if (parts.length > 1) await waitFor('the first part to be stored', () => rows() === 1);
    if (how === 'RST') socket.resetAndDestroy();
    else socket.destroy();
    await waitFor('the failed ingest in the log', async () => (await logLines(w)).filter((l) => l.event === 'ingest-failed').length > abortsBefore);
    await waitFor('the temp files to go', async () => (await tempFiles()).length === 0);
    await waitFor('the request to be cleaned up', () => rows() === 0);
    assert.deepEqual(uncaught.map((e) => e.message), [], 'no unhandled error');
  }

  for (const moment of ['right after half a part', 'while the part is spooled', 'in the second part, after a whole first one'] as const) {
    for (const how of ['FIN', 'RST'] as const) {
      test(`${how} ${moment}: the process survives and nothing is kept`, () => hangUp(moment, how));
    }
  }

  test('each hang-up is logged as one warning with peer and reason, and nothing as an error', async () => {
    await waitFor('a line per hang-up', async () => (await logLines(w)).filter((l) => l.event === 'stow-aborted').length >= 6);
    const lines = await logLines(w);
    const aborted = lines.filter((l) => l.event === 'stow-aborted');
    assert.equal(aborted.length, 6, 'one line per hang-up');
    for (const line of aborted) {
      assert.equal(line.level, 40);
      assert.equal(typeof line.reason, 'string');
      assert.equal(line.stack, undefined);
    }
    // A reset can close the socket before its address is read; an orderly close never does.
    assert.ok(aborted.some((l) => l.peer === '127.0.0.1'), 'the peer is named');
    assert.deepEqual(lines.filter((l) => Number(l.level) >= 50), [], 'no error-level line');
  });

  test('afterwards a whole STOW-RS request is stored', async () => {
    const instance = makeInstance();
    const response = await w.api('/dicom-web/studies', {
      method: 'POST', body: Buffer.concat([partHead, instance, closeDelimiter]),
      headers: { 'content-type': `multipart/related; type="application/dicom"; boundary=${BOUNDARY}` },
    });
    assert.equal(response.status, 200);
    assert.equal(rows(), 1);
  });
});
