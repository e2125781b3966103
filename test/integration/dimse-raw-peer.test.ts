// Peers that break the DICOM Upper Layer protocol on purpose, driven by a raw socket: a C-STORE cut
// off at every moment of its transfer (by FIN, RST or A-ABORT), a release with no association, and
// more connections than the listener keeps.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startDimse, waitFor, type DimseHarness } from '../support/dimse-harness.js';
import { connectionLimit } from '../../main/core/dimse/dimse-service.js';
import { abortRq, cStoreCommand, dataSetOf, EXPLICIT_LITTLE_ENDIAN, pDataTf, PduType, releaseRq, UlConnection } from '../support/dicom-ul.js';
import { makeInstance, SOP_CLASS_UIDS } from '../support/instance.js';
import { requireTool, runOk } from '../support/peers.js';
import { newUid } from '../support/uid.js';
import { indexDb } from '../support/index-db.js';

const CT = SOP_CLASS_UIDS.ctImage;
const FRAGMENT_BYTES = 128 * 1024;
const contexts = [{ id: 1, abstractSyntax: CT, transferSyntaxes: [EXPLICIT_LITTLE_ENDIAN] }];

type Vanish = 'FIN' | 'RST' | 'A-ABORT';

/** How far the C-STORE gets before the peer vanishes. */
type Moment = 'during the command' | 'after the first fragment' | 'with the first bytes on disk' | 'during the last fragment';

describe('a C-STORE cut off mid-transfer', () => {
  let h: DimseHarness;
  const uncaught: Error[] = [];
  const onUncaught = (error: Error) => uncaught.push(error);
  before(async () => {
    process.on('uncaughtException', onUncaught);
    h = await startDimse();
  });
  after(async () => {
    process.off('uncaughtException', onUncaught);
    await h?.stop();
  });

  const tempFiles = async () => (await h.archiveFiles()).filter((f) => f.startsWith('.incoming/'));
  const rows = (sopInstanceUid: string) =>
    (indexDb(h.archive).prepare('SELECT COUNT(*) AS n FROM instances WHERE sop_instance_uid = ?').get(sopInstanceUid) as { n: number }).n;

  async function cutOff(moment: Moment, how: Vanish): Promise<void> {
    const sopInstanceUid = newUid();
    const dataSet = dataSetOf(makeInstance({ sopInstanceUid, rows: 512, columns: 512 }));
    const fragments: Buffer[] = [];
    for (let at = 0; at < dataSet.length; at += FRAGMENT_BYTES) fragments.push(dataSet.subarray(at, at + FRAGMENT_BYTES));
    const command = cStoreCommand(CT, sopInstanceUid);
    const data = (n: number) => pDataTf([{ contextId: 1, command: false, last: n === fragments.length - 1, value: fragments[n]! }]);
    const failedBefore = h.logs.filter((l) => l.event === 'ingest-failed').length;
    uncaught.length = 0;

    const peer = await UlConnection.associate(h.port, contexts);
    if (moment === 'during the command') {
      await peer.send(pDataTf([{ contextId: 1, command: true, last: false, value: command.subarray(0, command.length >> 1) }]));
    } else {
      await peer.send(pDataTf([{ contextId: 1, command: true, last: true, value: command }]));
      if (moment === 'after the first fragment') await peer.send(data(0));
      if (moment === 'with the first bytes on disk') {
        for (let n = 0; n < 3; n++) await peer.send(data(n));
        await waitFor('the first bytes in a temp file', async () => (await tempFiles()).length > 0);
      }
      if (moment === 'during the last fragment') {
        for (let n = 0; n < fragments.length - 1; n++) await peer.send(data(n));
        await waitFor('the first bytes in a temp file', async () => (await tempFiles()).length > 0);
        // The last fragment in two PDVs: the first whole, the second cut inside its PDU (an A-ABORT can
        // only follow a whole PDU, so it goes right after the first).
        const last = fragments[fragments.length - 1]!;
        await peer.send(pDataTf([{ contextId: 1, command: false, last: false, value: last.subarray(0, last.length >> 1) }]));
        const rest = pDataTf([{ contextId: 1, command: false, last: true, value: last.subarray(last.length >> 1) }]);
        if (how !== 'A-ABORT') await peer.send(rest.subarray(0, rest.length >> 1));
      }
    }
    if (how === 'FIN') peer.fin();
    else if (how === 'RST') peer.reset();
    else await peer.send(abortRq());
    await peer.closed;

    if (moment !== 'during the command') {
      await waitFor('the failed ingest', () => h.logs.filter((l) => l.event === 'ingest-failed').length > failedBefore);
    }
    await waitFor('the association to go', () => h.service.openAssociations === 0);
    assert.deepEqual(uncaught.map((e) => e.message), [], 'no unhandled error');
    assert.deepEqual(await tempFiles(), [], 'no temp file is left');
    assert.equal(rows(sopInstanceUid), 0, 'no index row is written');
  }

  for (const moment of ['during the command', 'after the first fragment', 'with the first bytes on disk', 'during the last fragment'] as const) {
    for (const how of ['FIN', 'RST', 'A-ABORT'] as const) {
      test(`${how} ${moment} leaves no file and no row`, () => cutOff(moment, how));
    }
  }

  test('afterwards the listener answers C-ECHO and stores a whole instance', async () => {
    await runOk(requireTool('echoscu', 'dcmtk'), ['-aec', 'EDGE', '127.0.0.1', String(h.port)], { timeoutMs: 20_000 });
    const sopInstanceUid = newUid();
    const path = join(h.dir, 'whole.dcm');
    await writeFile(path, makeInstance({ sopInstanceUid }));
    await runOk(requireTool('storescu', 'dcmtk'), ['-aec', 'EDGE', '127.0.0.1', String(h.port), path], { timeoutMs: 20_000 });
    assert.equal(rows(sopInstanceUid), 1);
  });
});

describe('A-RELEASE-RQ before any association', () => {
  let h: DimseHarness;
  before(async () => {
    h = await startDimse();
  });
  after(async () => h?.stop());

  test('is answered with A-ABORT and the connection is closed (PS3.8 Sta2, AA-1)', async () => {
    const peer = await UlConnection.connect(h.port);
    await peer.send(releaseRq());
    const answer = await peer.nextPdu();
    assert.equal(answer?.type, PduType.abort, `expected A-ABORT, got PDU type ${answer?.type ?? 'none'}`);
    assert.equal(await peer.nextPdu(), undefined, 'nothing follows the A-ABORT');
    await peer.closed;
    assert.ok(h.logs.some((l) => l.event === 'association-protocol-error' && /A-RELEASE-RQ/.test(String(l.reason)) && l.peer));
  });
});

describe('raw TCP connections past the limit', () => {
  let h: DimseHarness;
  const peers: UlConnection[] = [];
  before(async () => {
    h = await startDimse({}, { maxAssociations: 1 });
  });
  after(async () => {
    for (const peer of peers) peer.socket.destroy();
    await h?.stop();
  });

  test('are closed at once, logged once, and the listener serves again once they go', async () => {
    const limit = connectionLimit(1);
    // Connections that never send anything (they would be held until the ARTIM timeout).
    for (let n = 0; n < limit; n++) peers.push(await UlConnection.connect(h.port));
    await waitFor('every connection to be open', () => h.service.openConnections === limit);
    for (let n = 0; n < 2; n++) {
      const extra = await UlConnection.connect(h.port);
      assert.equal(await extra.nextPdu(), undefined, 'closed without a PDU');
      await extra.closed;
    }
    assert.equal(h.service.openConnections, limit, 'the connections within the limit stay open');
    const reached = h.logs.filter((l) => l.event === 'connection-limit-reached');
    assert.equal(reached.length, 1, 'logged once, not per connection');
    assert.equal(reached[0]!.level, 40);
    assert.equal(reached[0]!.limit, limit);
    assert.match(String(reached[0]!.peer), /^127\.0\.0\.1:\d+$/);

    for (const peer of peers.splice(0)) peer.socket.destroy();
    await waitFor('the connections to go', () => h.service.openConnections === 0);
    await runOk(requireTool('echoscu', 'dcmtk'), ['-aec', 'EDGE', '127.0.0.1', String(h.port)], { timeoutMs: 20_000 });
    assert.ok(h.logs.some((l) => l.event === 'connection-limit-cleared' && l.dropped === 2));
  });
});
