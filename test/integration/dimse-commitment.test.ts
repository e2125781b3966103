// Storage Commitment Push Model SCP (PS3.4 Annex J) against a modality built on dcmjs-dimse (not our stack):
// instances sent with DCMTK storescu, commitment asked with N-ACTION, the N-EVENT-REPORT taken on the same
// association or on one the appliance opens to the modality's own listener.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import { settingsSchema } from '../../main/core/contract/settings.js';
import { DimseService } from '../../main/core/dimse/dimse-service.js';
import { AzureDicomDouble } from '../doubles/azure-dicom.js';
import { askForCommitment, startCommitmentScp, type CommitmentItem, type CommitmentScp } from '../support/commitment-scu.js';
import { startDimse, waitFor, type DimseHarness } from '../support/dimse-harness.js';
import { startForwarding, type Forwarding } from '../support/forward-harness.js';
import { SOP_CLASS_UIDS } from '../support/instance.js';
import { freePort, requireTool, runOk } from '../support/peers.js';
import { makeStudy, writeInstances, type GeneratedInstance } from '../support/study.js';
import { newUid } from '../support/uid.js';

const CT = SOP_CLASS_UIDS.ctImage;

async function storeWithStorescu(h: { port: number }, instances: GeneratedInstance[], callingAe = 'MODALITY'): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'commit-send-'));
  try {
    const paths = await writeInstances(dir, instances);
    await runOk(requireTool('storescu', 'dcmtk'), ['-aet', callingAe, '-aec', 'EDGE', '127.0.0.1', String(h.port), ...paths], { timeoutMs: 60_000 });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const itemsOf = (instances: GeneratedInstance[]): CommitmentItem[] => instances.map((i) => ({ sopClassUid: CT, sopInstanceUid: i.sopInstanceUid }));
const uids = (items: { sopInstanceUid: string }[]) => items.map((i) => i.sopInstanceUid).sort();

describe('Storage Commitment, local policy', () => {
  let h: DimseHarness;
  let modalityPort: number;

  before(async () => {
    modalityPort = await freePort();
    h = await startDimse({
      peers: [{ aeTitle: 'MODALITY', host: '127.0.0.1', port: modalityPort }],
      storageCommitment: { timeLimitMs: 3_000, retryBaseMs: 100, retryCapMs: 400 },
    });
  });
  after(async () => h.stop());

  test('all instances stored: Event Type 1 on the same association, with every instance', async () => {
    const study = makeStudy({ series: 1, instancesPerSeries: 3, rows: 8, columns: 8 });
    await storeWithStorescu(h, study);
    const transactionUid = newUid();
    const { actionStatus, report, timing } = await askForCommitment({
      port: h.port, calledAe: 'EDGE', callingAe: 'MODALITY', transactionUid, items: itemsOf(study), waitForReportMs: 30_000,
    });
    assert.equal(actionStatus, 0);
    assert.ok(report, 'the report came on the association of the request');
    assert.ok(timing.actionSent! <= timing.actionResponse! && timing.actionResponse! <= timing.report!, 'the steps were timed in order');
    assert.equal(report.eventType, 1);
    assert.equal(report.transactionUid, transactionUid);
    assert.deepEqual(uids(report.committed), uids(study));
    assert.deepEqual(report.failed, []);
    assert.deepEqual(h.archive.commitments.reportOf(transactionUid), { state: 'reported', eventType: 1, failed: 0 });
    const line = h.logs.find((l) => l.event === 'commitment-reported' && l.transactionUid === transactionUid);
    assert.equal(line?.via, 'same-association');
  });

  test('one instance never sent and one of another class: Event Type 2 with 0112 and 0119 after the time limit', async () => {
    const study = makeStudy({ series: 1, instancesPerSeries: 3, rows: 8, columns: 8 });
    await storeWithStorescu(h, study);
    const neverSent = newUid();
    const items = [
      { sopClassUid: CT, sopInstanceUid: study[0]!.sopInstanceUid },
      { sopClassUid: SOP_CLASS_UIDS.secondaryCapture, sopInstanceUid: study[1]!.sopInstanceUid },
      { sopClassUid: CT, sopInstanceUid: study[2]!.sopInstanceUid },
      { sopClassUid: CT, sopInstanceUid: neverSent },
    ];
    const transactionUid = newUid();
    const { actionStatus, report } = await askForCommitment({
      port: h.port, calledAe: 'EDGE', callingAe: 'MODALITY', transactionUid, items, waitForReportMs: 30_000,
    });
    assert.equal(actionStatus, 0);
    assert.ok(report);
    assert.equal(report.eventType, 2);
    assert.deepEqual(uids(report.committed), uids([study[0]!, study[2]!]));
    assert.deepEqual(report.failed.map((f) => [f.sopInstanceUid, f.failureReason]).sort(), [
      [study[1]!.sopInstanceUid, 0x0119], [neverSent, 0x0112],
    ].sort());
    assert.deepEqual(h.archive.commitments.reportOf(transactionUid), { state: 'reported', eventType: 2, failed: 2 });
  });

  test('the modality released before the report: a new association to it, proposing the SCP role, retried until it listens', async () => {
    const study = makeStudy({ series: 1, instancesPerSeries: 2, rows: 8, columns: 8 });
    const transactionUid = newUid();
    // Asked before the instances are here, released at once: nothing is ready while the association is open.
    const { actionStatus, report } = await askForCommitment({
      port: h.port, calledAe: 'EDGE', callingAe: 'MODALITY', transactionUid, items: itemsOf(study), waitForReportMs: 0,
    });
    assert.equal(actionStatus, 0);
    assert.equal(report, undefined);
    await storeWithStorescu(h, study);
    // The modality's listener is not up yet: the report fails and is retried.
    await waitFor('a failed report attempt', () => h.logs.find((l) => l.event === 'commitment-report-failed' && l.transactionUid === transactionUid));
    const scp: CommitmentScp = await startCommitmentScp('MODALITY', modalityPort);
    try {
      const received = await scp.nextReport();
      assert.equal(received.transactionUid, transactionUid);
      assert.equal(received.eventType, 1);
      assert.equal(received.callingAe.trim(), 'EDGE');
      assert.deepEqual(received.roles, { scu: false, scp: true });
      assert.deepEqual(uids(received.committed), uids(study));
      await waitFor('the transaction closed', () => h.archive.commitments.reportOf(transactionUid)?.state === 'reported');
      assert.equal(scp.reports.length, 1);
    } finally {
      scp.close();
    }
  });

  test('a bad request is refused with a precise status and records nothing', async () => {
    const transactionUid = newUid();
    const wrongAction = await askForCommitment({
      port: h.port, calledAe: 'EDGE', callingAe: 'MODALITY', transactionUid, items: [{ sopClassUid: CT, sopInstanceUid: newUid() }],
      waitForReportMs: 0, actionTypeId: 2,
    });
    assert.equal(wrongAction.actionStatus, 0x0123);
    const badUid = await askForCommitment({
      port: h.port, calledAe: 'EDGE', callingAe: 'MODALITY', transactionUid, items: [{ sopClassUid: CT, sopInstanceUid: '1.02.3' }], waitForReportMs: 0,
    });
    assert.equal(badUid.actionStatus, 0x0115);
    assert.equal(h.archive.commitments.reportOf(transactionUid), undefined);
    const refusal = h.logs.find((l) => l.event === 'commitment-refused' && String(l.reason).includes('ReferencedSOPInstanceUID'));
    assert.ok(refusal, 'the refusal names the attribute');
  });
});

describe('Storage Commitment, cloud policy', () => {
  let azure: AzureDicomDouble;
  let forwarding: Forwarding;
  let service: DimseService;
  let port: number;

  before(async () => {
    azure = await AzureDicomDouble.start();
    await azure.setFault({ kind: 'down', mode: 'refuse' });
    const destination = { name: 'azure', baseUrl: azure.baseUrl, archive: true, retryBaseMs: 50, retryCapMs: 300, requestTimeoutMs: 5_000 };
    forwarding = await startForwarding({ destinations: [destination] });
    port = await freePort();
    const settings = settingsSchema.parse({
      aeTitle: 'EDGE', dimse: { host: '127.0.0.1', port }, destinations: [destination],
      storageCommitment: { defaultPolicy: 'local', policies: { MODALITY: 'cloud' } },
    });
    service = new DimseService({ archive: forwarding.archive, logger: pino({ level: 'silent' }), settings: () => settings });
    await service.start();
  });
  after(async () => {
    await service.stop();
    await forwarding.close();
    await azure.stop();
  });

  test('committed only once the archive destination has every instance', async () => {
    const study = makeStudy({ series: 1, instancesPerSeries: 3, rows: 8, columns: 8 });
    await storeWithStorescu({ port }, study);
    const transactionUid = newUid();
    let settled = false;
    const asked = askForCommitment({
      port, calledAe: 'EDGE', callingAe: 'MODALITY', transactionUid, items: itemsOf(study), waitForReportMs: 60_000,
    }).finally(() => (settled = true));
    asked.catch(() => {}); // awaited below; a failed assertion before that must not leave it unhandled
    await waitFor('the transaction recorded', () => forwarding.archive.commitments.reportOf(transactionUid)?.state === 'pending');
    // Upstream down: the transaction stays open while forwarding retries.
    const attempts = () => forwarding.archive.outbox.rowsFor(study[0]!.sopInstanceUid)[0]?.attempts ?? 0;
    const before = attempts();
    await waitFor('a failed delivery attempt after the request', () => attempts() > before);
    assert.equal(settled, false, 'no report while the cloud has not confirmed');
    assert.equal(forwarding.archive.commitments.reportOf(transactionUid)?.state, 'pending');
    assert.equal(forwarding.archive.commitments.openByCallingAe()[0]?.callingAe, 'MODALITY');
    await azure.clearFault();
    const { actionStatus, report } = await asked;
    assert.equal(actionStatus, 0);
    assert.ok(report);
    assert.equal(report.eventType, 1);
    assert.deepEqual(uids(report.committed), uids(study));
    for (const instance of study) assert.equal(forwarding.archive.outbox.rowsFor(instance.sopInstanceUid)[0]?.state, 'delivered');
  });
});
