// A stateful fuzzer for the association state machine: random sequences of PDUs (associate, P-DATA with
// commands and data set fragments, release request and answer, abort, garbage, cut and oversized PDUs)
// from raw sockets against a running listener, with release and abort landing in every state, and each
// connection ended by FIN, RST or A-ABORT. Afterwards the listener must still answer C-ECHO (DCMTK's
// echoscu), no temp file may be left, and nothing may have escaped as an uncaught exception.
// ASSOCIATION_FUZZ_RUNS sets the number of connections (default 1000, about 20 s); ASSOCIATION_FUZZ_SEED the seed.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startDimse, waitFor, type DimseHarness } from '../support/dimse-harness.js';
import {
  abortRq, associateRq, cEchoCommand, cStoreCommand, dataSetOf, EXPLICIT_LITTLE_ENDIAN, pDataTf, pdu, PduType, releaseRq,
  UlConnection, VERIFICATION_SOP_CLASS,
} from '../support/dicom-ul.js';
import { makeInstance, SOP_CLASS_UIDS } from '../support/instance.js';
import { requireTool, runOk } from '../support/peers.js';
import { newUid } from '../support/uid.js';

const RUNS = Number(process.env.ASSOCIATION_FUZZ_RUNS ?? 1000);
const SEED = Number(process.env.ASSOCIATION_FUZZ_SEED ?? Date.now() % 2 ** 31) || 1;
const CT = SOP_CLASS_UIDS.ctImage;
const CONTEXTS = [
  { id: 1, abstractSyntax: CT, transferSyntaxes: [EXPLICIT_LITTLE_ENDIAN] },
  { id: 3, abstractSyntax: VERIFICATION_SOP_CLASS, transferSyntaxes: [EXPLICIT_LITTLE_ENDIAN] },
];

describe('random PDU sequences against a running listener', () => {
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

  test(`${RUNS} connections of random PDUs leave it answering C-ECHO, with no temp file left`, { timeout: 300_000 }, async () => {
    let state = SEED;
    const random = (n: number) => {
      state ^= state << 13;
      state ^= state >>> 17;
      state ^= state << 5;
      return (state >>> 0) % n;
    };
    const dataSet = dataSetOf(makeInstance({ rows: 64, columns: 64 }));
    const steps: Array<() => Buffer> = [
      () => associateRq('FUZZ', 'EDGE', CONTEXTS),
      () => associateRq('FUZZ', 'NOT-EDGE', CONTEXTS),
      () => associateRq('FUZZ', 'EDGE', [{ id: 5, abstractSyntax: '1.2.3.4', transferSyntaxes: ['1.2.3'] }]),
      () => pDataTf([{ contextId: 3, command: true, last: true, value: cEchoCommand(random(100)) }]),
      () => pDataTf([{ contextId: 1, command: true, last: true, value: cStoreCommand(CT, newUid(), random(100)) }]),
      () => pDataTf([{ contextId: 1, command: true, last: false, value: cStoreCommand(CT, newUid()).subarray(0, 20) }]),
      () => {
        const at = random(dataSet.length);
        return pDataTf([{ contextId: 1, command: false, last: random(2) === 0, value: dataSet.subarray(at, at + 1 + random(4096)) }]);
      },
      () => pDataTf([{ contextId: 1, command: false, last: true, value: dataSet }]),
      () => pDataTf([{ contextId: random(256), command: random(2) === 0, last: random(2) === 0, value: Buffer.from([random(256), random(256)]) }]),
      releaseRq,
      () => pdu(PduType.releaseRp, Buffer.alloc(4)),
      abortRq,
      () => pdu(PduType.associateAc, Buffer.alloc(68)),
      () => pdu(1 + random(7), Buffer.from(Array.from({ length: random(80) }, () => random(256)))),
      () => pdu(1 + random(7), Buffer.alloc(0)),
      () => Buffer.from([random(256), 0, 0xff, 0xff, 0xff, 0xff]), // claims an oversized PDU
      () => Buffer.from(Array.from({ length: 1 + random(64) }, () => random(256))), // garbage
    ];

    const answers = new Map<number, number>();
    for (let run = 0; run < RUNS; run++) {
      const peer = await UlConnection.connect(h.port);
      // Most runs open properly, so the later steps reach the states after an accepted association.
      const sequence = random(4) > 0 ? [steps[0]!] : [];
      for (let n = 1 + random(8); n > 0; n--) sequence.push(steps[random(steps.length)]!);
      for (const step of sequence) {
        const bytes = step();
        // Sometimes a PDU arrives cut in two, or only its first part before the end.
        const cut = random(5) === 0 ? 1 + random(Math.max(1, bytes.length - 1)) : bytes.length;
        await peer.send(bytes.subarray(0, cut)).catch(() => undefined);
        if (random(3) === 0) await sleep(random(5));
        if (cut < bytes.length && random(2) === 0) await peer.send(bytes.subarray(cut)).catch(() => undefined);
      }
      const end = random(4);
      if (end === 0) peer.fin();
      else if (end === 1) peer.reset();
      else if (end === 2) await peer.send(abortRq()).then(() => peer.fin(), () => undefined);
      else {
        await peer.send(releaseRq()).catch(() => undefined);
        peer.fin();
      }
      await Promise.race([peer.closed, sleep(2000)]);
      if (!peer.socket.destroyed) peer.reset();
      await peer.closed;
      for (let answer = await peer.nextPdu(); answer; answer = await peer.nextPdu()) answers.set(answer.type, (answers.get(answer.type) ?? 0) + 1);
      if (run % 50 === 49) {
        await runOk(requireTool('echoscu', 'dcmtk'), ['-aec', h.aeTitle, '127.0.0.1', String(h.port)], { timeoutMs: 30_000 });
      }
    }

    process.stdout.write(`# association fuzz: ${RUNS} connections (seed ${SEED}); answers by PDU type: ${JSON.stringify(Object.fromEntries(answers))}\n`);
    for (const type of [PduType.associateAc, PduType.associateRj, PduType.pData, PduType.releaseRp, PduType.abort]) {
      assert.ok((answers.get(type) ?? 0) > 0, `the sequences reached a state where the listener answers with PDU type ${type}`);
    }
    await runOk(requireTool('echoscu', 'dcmtk'), ['-aec', h.aeTitle, '127.0.0.1', String(h.port)], { timeoutMs: 30_000 });
    const echo = await UlConnection.connect(h.port);
    await echo.send(associateRq('FUZZ', h.aeTitle, CONTEXTS));
    assert.equal((await echo.nextPdu())?.type, PduType.associateAc, 'a raw association is still accepted');
    echo.reset();
    await waitFor('no temp file left', async () => (await h.archiveFiles()).every((f) => !f.startsWith('.incoming/')), 30_000)
      .catch(async () => assert.fail(`temp files left: ${(await h.archiveFiles()).filter((f) => f.startsWith('.incoming/')).join(', ')} (seed ${SEED})`));
    assert.deepEqual(uncaught.map((e) => e.stack), [], `nothing escaped as an uncaught exception (seed ${SEED})`);
  });
});
