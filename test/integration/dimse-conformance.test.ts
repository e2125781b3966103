// Conformance defects that independent DICOM implementations found (issue 14), each seen through a real
// peer (DCMTK) or a raw Upper Layer client where DCMTK cannot show the detail.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { spawnDaemon, untilReadyOrExit, type Daemon } from '../support/daemon.js';
import { associateRq, acceptUserInformation, EXPLICIT_LITTLE_ENDIAN, PduType, UlConnection, VERIFICATION_SOP_CLASS } from '../support/dicom-ul.js';
import { startDimse, waitFor, type DimseHarness } from '../support/dimse-harness.js';
import { makeInstance } from '../support/instance.js';
import { freePort, requireTool, run, waitForPort } from '../support/peers.js';
import { newUid } from '../support/uid.js';

/** The Patient Root SOP classes by the names DCMTK prints for them. */
const PATIENT_ROOT = {
  find: 'FINDPatientRootQueryRetrieveInformationModel',
  move: 'MOVEPatientRootQueryRetrieveInformationModel',
  get: 'GETPatientRootQueryRetrieveInformationModel',
};
const OUR_IMPLEMENTATION_CLASS_UID = '2.25.271936471235240389361726404218383760211';
const OUR_IMPLEMENTATION_VERSION = 'DICOM_EDGE_01';

/** Every "Affected SOP Class UID" a DCMTK tool printed with -d for the responses it received. */
function responseSopClasses(output: string): string[] {
  const blocks = output.split(/=+ INCOMING DIMSE MESSAGE =+/).slice(1);
  return blocks.flatMap((block) => {
    if (!/Message Type\s*: C-(FIND|MOVE|GET) RSP/.test(block)) return [];
    const m = /Affected SOP Class UID\s*: (\S+)/.exec(block);
    return [m?.[1] ?? 'none'];
  });
}

describe('DIMSE conformance (issue 14)', () => {
  let h: DimseHarness;
  let dest: { port: number; dir: string; daemon: Daemon; logFile: string };
  const studyUid = newUid();
  const seriesUid = newUid();
  const patientId = 'PCONF1';

  before(async () => {
    const work = await mkdtemp(join(tmpdir(), 'dicom-edge-conf-'));
    // A storescp in debug mode: it prints each C-STORE request and the association it arrived on.
    const port = await freePort();
    const dir = join(work, 'dest');
    await mkdir(dir, { recursive: true });
    const logFile = join(work, 'storescp.log');
    const daemon = spawnDaemon(requireTool('storescp', 'dcmtk'), ['-d', '-od', dir, '-aet', 'DEST', '+xa', String(port)], { logFile });
    await untilReadyOrExit(daemon, 'storescp', waitForPort(port, '127.0.0.1', 10_000));
    dest = { port, dir, daemon, logFile };
    h = await startDimse({ peers: [{ aeTitle: 'DEST', host: '127.0.0.1', port }] });
    for (let n = 1; n <= 2; n++) {
      await h.archive.ingest(Readable.from([makeInstance({ patientId, patientName: 'Conf^Ann', studyUid, seriesUid, instanceNumber: n, rows: 8, columns: 8 })]),
        { callingAe: 'TEST', peer: 'test' });
    }
  });
  after(async () => {
    await h?.stop();
    await dest?.daemon.stop();
  });

  test('Patient Root C-FIND responses echo the Patient Root SOP Class UID', async () => {
    const result = await run(requireTool('findscu', 'dcmtk'),
      ['-d', '-P', '-aec', 'EDGE', '-k', 'QueryRetrieveLevel=STUDY', '-k', `PatientID=${patientId}`, '-k', 'StudyInstanceUID', '127.0.0.1', String(h.port)],
      { timeoutMs: 30_000 });
    const classes = responseSopClasses(result.stderr + result.stdout);
    assert.ok(classes.length >= 2, `a pending and a final response:\n${result.stderr}`);
    assert.deepEqual([...new Set(classes)], [PATIENT_ROOT.find]);
  });

  test('Patient Root C-MOVE responses echo the Patient Root SOP Class UID', async () => {
    const result = await run(requireTool('movescu', 'dcmtk'),
      ['-d', '-P', '-aec', 'EDGE', '-aem', 'DEST', '-k', 'QueryRetrieveLevel=STUDY', '-k', `PatientID=${patientId}`, '-k', `StudyInstanceUID=${studyUid}`,
        '127.0.0.1', String(h.port)], { timeoutMs: 60_000 });
    const classes = responseSopClasses(result.stderr + result.stdout);
    assert.ok(classes.length >= 1, result.stderr);
    assert.deepEqual([...new Set(classes)], [PATIENT_ROOT.move]);
  });

  test('Patient Root C-GET responses echo the Patient Root SOP Class UID', async () => {
    const out = await mkdtemp(join(tmpdir(), 'dicom-edge-conf-get-'));
    const result = await run(requireTool('getscu', 'dcmtk'),
      ['-d', '-P', '-aec', 'EDGE', '-od', out, '-k', 'QueryRetrieveLevel=STUDY', '-k', `PatientID=${patientId}`, '-k', `StudyInstanceUID=${studyUid}`,
        '127.0.0.1', String(h.port)], { timeoutMs: 60_000 });
    const classes = responseSopClasses(result.stderr + result.stdout);
    assert.ok(classes.length >= 1, result.stderr);
    assert.deepEqual([...new Set(classes)], [PATIENT_ROOT.get]);
  });

  test('C-MOVE sub-operations carry the Move Originator AE Title and Message ID, and our implementation identity', async () => {
    const offset = (await stat(dest.logFile)).size;
    await run(requireTool('movescu', 'dcmtk'),
      ['-d', '-S', '-aet', 'MOVER', '-aec', 'EDGE', '-aem', 'DEST', '-k', 'QueryRetrieveLevel=STUDY', '-k', `StudyInstanceUID=${studyUid}`,
        '127.0.0.1', String(h.port)], { timeoutMs: 60_000 });
    const log = await waitFor('the sub-operations in storescp\'s log', async () => {
      const text = (await readFile(dest.logFile, 'utf8')).slice(offset);
      return /C-STORE RQ[\s\S]*Association Release/.test(text) ? text : '';
    });
    const store = log.slice(log.indexOf('C-STORE RQ'));
    assert.match(store, /Move Originator AE Title\s*: MOVER/, store.slice(0, 2_000));
    assert.match(store, /Move Originator ID\s*: 1\b/, store.slice(0, 2_000));
    assert.match(log, new RegExp(`Their Implementation Class UID:\\s*${OUR_IMPLEMENTATION_CLASS_UID.replaceAll('.', '\\.')}`));
    assert.match(log, new RegExp(`Their Implementation Version Name:\\s*${OUR_IMPLEMENTATION_VERSION}`));
  });

  test('A-ASSOCIATE-AC: our Implementation Class UID and Version Name; a Maximum PDU Length of 0 answered with 262144', async () => {
    const peer = await UlConnection.connect(h.port);
    try {
      // associateRq proposes a Maximum Length of 0 (no limit).
      await peer.send(associateRq('RAWSCU', 'EDGE', [{ id: 1, abstractSyntax: VERIFICATION_SOP_CLASS, transferSyntaxes: [EXPLICIT_LITTLE_ENDIAN] }]));
      const answer = await peer.nextPdu();
      assert.equal(answer?.type, PduType.associateAc);
      const info = acceptUserInformation(answer.body);
      assert.equal(info.implementationClassUid, OUR_IMPLEMENTATION_CLASS_UID);
      assert.equal(info.implementationVersionName, OUR_IMPLEMENTATION_VERSION);
      assert.equal(info.maxPduLength, 262144);
    } finally {
      peer.reset();
    }
  });
});
