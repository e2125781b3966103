// The cloud's worklist: the archive destination (the Azure DICOM double's UPS-RS worklist) offers SCHEDULED
// workitems for the appliance's stations; the appliance keeps them, answers them to DCMTK's findscu -W also
// while the archive is down, and sends MPPS progress back as UPS state changes (claim with a new Transaction
// UID, then COMPLETED or CANCELED with it), retried while the archive is down, applied once, and given up
// with a precise log line when the archive refuses.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { CloudWorklistService } from '../../main/core/cloud/cloud-worklist.js';
import type { UpsStateSync } from '../../main/core/cloud/ups-state-sync.js';
import type { WorklistItem } from '../../main/core/contract/api/worklist.js';
import { AzureDicomDouble } from '../doubles/azure-dicom.js';
import { workitemDataset, type WorkitemFields } from '../doubles/azure-dicom-workitems.js';
import { waitFor } from '../support/dimse-harness.js';
import { mppsCreate, mppsInProgress, mppsSet, sendMpps } from '../support/mpps-scu.js';
import { newUid } from '../support/uid.js';
import { logLines, startWebAppliance, type WebAppliance } from '../support/web-appliance.js';
import { findWorklist } from '../support/worklist-scu.js';

const firstLabel = (dataset: Record<string, { Value?: unknown[] } | undefined>) => dataset['00741204']?.Value?.[0];

const SETTINGS = (baseUrl: string) => ({
  destinations: [{ name: 'azure', baseUrl, archive: true }],
  cloud: {
    federation: { enabled: false },
    changeFeed: { enabled: false },
    // Refreshes are asked by the test; state changes are retried quickly.
    worklist: { enabled: true, stations: ['CT1', 'MR1'], refreshIntervalMs: 3_600_000, retryBaseMs: 100, retryCapMs: 400 },
  },
});

describe('cloud worklist over UPS-RS', () => {
  let azure: AzureDicomDouble;
  let w: WebAppliance;
  let dataDir: string;
  const seeded = new Map<string, string>();

  const seed = (key: string, fields: Omit<WorkitemFields, 'uid' | 'patientId' | 'patientName'> & Partial<WorkitemFields>) => {
    const uid = azure.workitems.seed(workitemDataset({ uid: newUid(), patientName: 'DOE^JOHN', patientId: `P-${key}`, ...fields }));
    seeded.set(key, uid);
    return uid;
  };
  const service = <T>(name: string) => w.appliance.services.find((s) => s.name === name) as T;
  const refresh = () => service<CloudWorklistService>('cloud-worklist').refreshOnce();
  const item = (workitemUid: string) => w.appliance.archive.worklist.list().find((i) => i.workitemUid === workitemUid);
  const findCt1 = (keys: Record<string, string> = {}) => findWorklist(w.dimsePort, 'DICOMEDGE', { ScheduledStationAETitle: 'CT1', ...keys });
  const accessions = async (keys: Record<string, string> = {}) => {
    const result = await findCt1(keys);
    assert.equal(result.final, 'Success');
    return result.responses.map((r) => r.AccessionNumber).sort();
  };
  const upsLines = async (workitemUid: string) => (await logLines(w)).filter((l) => l.workitemUid === workitemUid && String(l.event).startsWith('ups-state-'));

  before(async () => {
    azure = await AzureDicomDouble.start();
    dataDir = await mkdtemp(join(tmpdir(), 'dicom-edge-cloud-worklist-'));
    w = await startWebAppliance({ dataDir, settings: SETTINGS(azure.baseUrl) });
  });
  after(async () => {
    await w?.stop();
    await azure?.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  test('SCHEDULED workitems of its stations are kept and answered over findscu -W beside local items', async () => {
    const studyUid = newUid();
    seed('C1', { station: 'CT1', modality: 'CT', start: '20260115080000', accessionNumber: 'ACC-C1', studyInstanceUid: studyUid,
      requestedProcedureId: 'RP-C1', requestedProcedureDescription: 'CT CHEST', label: 'CHEST', patientName: 'DOE^JOHN' });
    seed('C2', { station: 'MR1', modality: 'MR', start: '20260116', accessionNumber: 'ACC-C2' });
    seed('OTHER', { station: 'US9', modality: 'US', start: '20260115', accessionNumber: 'ACC-US9' });
    const claimed = seed('CLAIMED', { station: 'CT1', modality: 'CT', start: '20260115', accessionNumber: 'ACC-CLAIMED' });
    assert.equal(azure.workitems.changeState(claimed, { '00741000': { vr: 'CS', Value: ['IN PROGRESS'] }, '00081195': { vr: 'UI', Value: ['2.25.42'] } }).status, 200);
    const local = await w.api('/api/worklist', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({
      patientName: 'ROE^RICHARD', patientId: 'PL1', accessionNumber: 'ACC-L1', scheduledStationAeTitle: 'CT1', scheduledStartDate: '20260115', modality: 'CT' }) });
    assert.equal(local.status, 201);

    // The refresh at start may have found them already; this one finds the same two.
    const round = await refresh();
    assert.equal(round.mode, 'refreshed');
    assert.deepEqual(round.mode === 'refreshed' && { workitems: round.workitems, skipped: round.skipped }, { workitems: 2, skipped: [] });
    assert.deepEqual(w.appliance.archive.worklist.list().filter((i) => i.source === 'cloud').map((i) => i.accessionNumber).sort(), ['ACC-C1', 'ACC-C2']);

    const result = await findCt1();
    assert.equal(result.final, 'Success');
    assert.deepEqual(result.responses.map((r) => r.AccessionNumber).sort(), ['ACC-C1', 'ACC-L1']);
    const answer = result.responses.find((r) => r.AccessionNumber === 'ACC-C1')!;
    assert.equal(answer.StudyInstanceUID, studyUid);
    assert.equal(answer.PatientName, 'DOE^JOHN');
    assert.equal(answer.RequestedProcedureID, 'RP-C1');
    assert.equal(answer.RequestedProcedureDescription, 'CT CHEST');
    assert.equal(answer.Modality, 'CT');
    assert.equal(answer.ScheduledProcedureStepStartDate, '20260115');
    assert.equal(answer.ScheduledProcedureStepStartTime, '080000');
    assert.equal(answer.ScheduledProcedureStepDescription, 'CHEST');
    assert.deepEqual(await accessions({ ScheduledStationAETitle: 'MR1' }), ['ACC-C2']);
    const derived = item(seeded.get('C2')!)!;
    assert.match(derived.studyInstanceUid, /^2\.25\.\d+$/, 'a workitem without a Study Instance UID gets one made from its UID');
    assert.equal(derived.source, 'cloud');

    await refresh();
    assert.equal(item(seeded.get('C2')!)?.studyInstanceUid, derived.studyInstanceUid, 'the same one at every refresh');
    const edit = await w.api(`/api/worklist/${derived.id}`, { method: 'DELETE' });
    assert.equal(edit.status, 409, 'a cloud item changes in the cloud, not through /api/worklist');
    const lines = await logLines(w);
    const refreshed = lines.filter((l) => l.event === 'cloud-worklist-refreshed' && l.destination === 'azure' && l.workitems === 2);
    assert.equal(refreshed.reduce((sum, l) => sum + Number(l.added), 0), 2, 'each workitem added once');
  });

  test('while the archive is down the items stay offered; the failed refresh is logged once and changes nothing', async () => {
    await azure.setFault({ kind: 'down', mode: 'refuse' });
    try {
      const worklist = service<CloudWorklistService>('cloud-worklist');
      assert.equal(await worklist.tick(), undefined);
      assert.deepEqual(await accessions(), ['ACC-C1', 'ACC-L1']);
      assert.deepEqual(await accessions({ ScheduledStationAETitle: 'MR1' }), ['ACC-C2']);
      const failed = (await logLines(w)).filter((l) => l.event === 'cloud-worklist-refresh-failed');
      assert.equal(failed.length, 1);
      assert.equal(failed[0]!.kind, 'offline');
      assert.match(String(failed[0]!.reason), /UPS-RS search of workitems at http:\/\/127\.0\.0\.1:\d+\/v2\/workitems\?.*ECONNREFUSED/);
    } finally {
      await azure.clearFault();
    }
    // Back up: a workitem the archive no longer offers (claimed elsewhere) leaves the worklist at the next refresh.
    azure.workitems.remove(seeded.get('C2')!);
    const round = await refresh();
    assert.equal(round.mode === 'refreshed' && round.removed, 1);
    assert.deepEqual(await accessions({ ScheduledStationAETitle: 'MR1' }), []);
  });

  test('an answer that is not DICOM JSON is logged with the reason and changes nothing', async () => {
    const before = w.appliance.archive.worklist.list();
    azure.workitems.injectAnswer({ method: 'GET', status: 200, body: 'not json{' });
    assert.equal(await service<CloudWorklistService>('cloud-worklist').tick(), undefined);
    assert.deepEqual(w.appliance.archive.worklist.list(), before);
    const failed = (await logLines(w)).filter((l) => l.event === 'cloud-worklist-refresh-failed').at(-1)!;
    assert.match(String(failed.reason), /UPS-RS search of workitems at .*\/v2\/workitems\?.*: the answer is not JSON/);
  });

  test('MPPS N-CREATE claims the workitem with a new Transaction UID; N-SET COMPLETED completes it with the same one', async () => {
    const workitemUid = seeded.get('C1')!;
    const cloudItem = item(workitemUid)!;
    const step = newUid();
    assert.equal((await sendMpps(w.dimsePort, mppsCreate(step, mppsInProgress(cloudItem)), { called: 'DICOMEDGE' })).status, 0);
    await waitFor('the workitem claimed upstream', () => azure.workitems.state(workitemUid) === 'IN PROGRESS', 30_000);
    const transactionUid = azure.workitems.transactionUid(workitemUid)!;
    assert.match(transactionUid, /^2\.25\.\d+$/);
    assert.equal(w.appliance.archive.upsChanges.list(workitemUid)[0]!.transactionUid, transactionUid, 'the claim carries the UID kept here');

    assert.equal((await sendMpps(w.dimsePort, mppsSet(step, { PerformedProcedureStepStatus: 'COMPLETED', PerformedProcedureStepEndDate: '20260115',
      PerformedProcedureStepEndTime: '083000', PerformedSeriesSequence: [] }), { called: 'DICOMEDGE' })).status, 0);
    await waitFor('the workitem completed upstream', () => azure.workitems.state(workitemUid) === 'COMPLETED', 30_000);
    assert.deepEqual(azure.workitems.appliedChanges(workitemUid).map((c) => [c.requested, c.transactionUid]),
      [['IN PROGRESS', transactionUid], ['COMPLETED', transactionUid]]);
    assert.deepEqual(azure.workitems.updates.filter((u) => u.workitemUid === workitemUid).map((u) => [u.transactionUid, u.tags]),
      [[transactionUid, ['00741216']]], 'the final-state attributes (Performed Procedure Sequence) were set first, as the owner');
    const performed = (azure.workitems.retrieve(workitemUid)!['00741216']!.Value![0] as Record<string, { Value?: unknown[] }>);
    assert.deepEqual(performed['00404050']?.Value, ['20260115081500'], 'the step\'s start');
    assert.deepEqual(performed['00404051']?.Value, ['20260115083000'], 'the step\'s end');
    await waitFor('both changes done here', () => w.appliance.archive.upsChanges.list(workitemUid).every((c) => c.state === 'done'), 30_000);
    const lines = await upsLines(workitemUid);
    assert.deepEqual(lines.map((l) => [l.event, l.state, l.transactionUid]),
      [['ups-state-changed', 'IN PROGRESS', transactionUid], ['ups-state-changed', 'COMPLETED', transactionUid]]);
    assert.equal((item(workitemUid) as WorklistItem).state, 'COMPLETED');
    assert.deepEqual(await accessions(), ['ACC-L1'], 'a performed item is no longer offered');
  });

  test('a 409 from the archive: one precise log line, the change and the later ones not sent, the modality unaffected', async () => {
    const workitemUid = seed('C409', { station: 'CT1', modality: 'CT', start: '20260117', accessionNumber: 'ACC-C409' });
    await refresh();
    azure.workitems.injectAnswer({ method: 'PUT', status: 409, body: JSON.stringify({ errors: [{ code: 'Conflict', message: 'The workitem is busy.' }] }) });
    const step = newUid();
    assert.equal((await sendMpps(w.dimsePort, mppsCreate(step, mppsInProgress(item(workitemUid)!)), { called: 'DICOMEDGE' })).status, 0);
    await waitFor('the claim refused', () => w.appliance.archive.upsChanges.list(workitemUid)[0]?.state === 'failed', 30_000);
    assert.equal((await sendMpps(w.dimsePort, mppsSet(step, { PerformedProcedureStepStatus: 'COMPLETED' }), { called: 'DICOMEDGE' })).status, 0);
    assert.deepEqual(w.appliance.archive.upsChanges.list(workitemUid).map((c) => [c.targetState, c.state]), [['IN PROGRESS', 'failed'], ['COMPLETED', 'failed']]);
    await service<UpsStateSync>('ups-state-sync').sendDue();
    assert.equal(azure.workitems.state(workitemUid), 'SCHEDULED', 'nothing changed upstream');
    assert.equal(azure.requestsOf('workitem').filter((r) => r.method === 'PUT' && r.path.includes(workitemUid)).length, 1, 'sent once, never again');
    const lines = await upsLines(workitemUid);
    assert.equal(lines.length, 1);
    assert.equal(lines[0]!.event, 'ups-state-change-refused');
    assert.equal(lines[0]!.status, 409);
    assert.equal(lines[0]!.state, 'IN PROGRESS');
    assert.match(String(lines[0]!.reason), new RegExp(`UPS-RS change of workitem ${workitemUid.replace(/\./g, '\\.')} to IN PROGRESS at .*/state: HTTP 409 \\(Conflict: The workitem is busy\\.\\)`));
  });

  test('lost answers: the retried claim finds the workitem owned by its Transaction UID, the retried completion finds it done; each applied once', async () => {
    const workitemUid = seed('C7', { station: 'CT1', modality: 'CT', start: '20260119', accessionNumber: 'ACC-C7', label: 'ABDOMEN' });
    await refresh();
    azure.workitems.dropAnswerAfterApplying('PUT');
    const step = newUid();
    assert.equal((await sendMpps(w.dimsePort, mppsCreate(step, mppsInProgress(item(workitemUid)!)), { called: 'DICOMEDGE' })).status, 0);
    await waitFor('the claim done here', () => w.appliance.archive.upsChanges.list(workitemUid)[0]?.state === 'done', 30_000);
    azure.workitems.dropAnswerAfterApplying('PUT');
    assert.equal((await sendMpps(w.dimsePort, mppsSet(step, { PerformedProcedureStepStatus: 'COMPLETED' }), { called: 'DICOMEDGE' })).status, 0);
    await waitFor('the completion done here', () => w.appliance.archive.upsChanges.list(workitemUid)[1]?.state === 'done', 30_000);

    const transactionUid = azure.workitems.transactionUid(workitemUid)!;
    assert.equal(azure.workitems.state(workitemUid), 'COMPLETED');
    assert.deepEqual(azure.workitems.appliedChanges(workitemUid).map((c) => [c.requested, c.transactionUid]),
      [['IN PROGRESS', transactionUid], ['COMPLETED', transactionUid]], 'each state change applied once');
    assert.equal(firstLabel(azure.workitems.retrieve(workitemUid)!), 'ABDOMEN', 'the ownership check changed nothing');
    const lines = await upsLines(workitemUid);
    assert.deepEqual(lines.map((l) => [l.event, l.state]), [
      ['ups-state-change-deferred', 'IN PROGRESS'], ['ups-state-changed', 'IN PROGRESS'],
      ['ups-state-change-deferred', 'COMPLETED'], ['ups-state-changed', 'COMPLETED'],
    ]);
    assert.equal(lines[1]!.warning, 'claimed by an earlier attempt whose answer was lost');
    assert.match(String(lines[3]!.warning), /^299 .*The UPS is already in the requested state of COMPLETED\.$/);
  });

  test('archive down: claim and cancel are queued, survive a restart, and are applied once when it is back', async () => {
    const workitemUid = seed('C5', { station: 'CT1', modality: 'CT', start: '20260118', accessionNumber: 'ACC-C5' });
    await refresh();
    await azure.setFault({ kind: 'down', mode: 'refuse' });
    const step = newUid();
    assert.equal((await sendMpps(w.dimsePort, mppsCreate(step, mppsInProgress(item(workitemUid)!)), { called: 'DICOMEDGE' })).status, 0);
    assert.equal((await sendMpps(w.dimsePort, mppsSet(step, { PerformedProcedureStepStatus: 'DISCONTINUED' }), { called: 'DICOMEDGE' })).status, 0);
    await waitFor('the claim tried and deferred twice', () => (w.appliance.archive.upsChanges.list(workitemUid)[0]?.attempts ?? 0) >= 2, 30_000);
    assert.deepEqual(w.appliance.archive.upsChanges.list(workitemUid).map((c) => [c.targetState, c.state]), [['IN PROGRESS', 'queued'], ['CANCELED', 'queued']]);
    const deferred = (await upsLines(workitemUid)).filter((l) => l.event === 'ups-state-change-deferred');
    assert.ok(deferred.length >= 2);
    assert.equal(deferred[0]!.kind, 'offline');
    assert.equal(deferred[0]!.state, 'IN PROGRESS');

    await w.stop();
    await azure.clearFault();
    w = await startWebAppliance({ dataDir });
    await waitFor('the workitem canceled upstream after the restart', () => azure.workitems.state(workitemUid) === 'CANCELED', 30_000);
    const transactionUid = azure.workitems.transactionUid(workitemUid)!;
    assert.deepEqual(azure.workitems.stateChanges.filter((c) => c.workitemUid === workitemUid).map((c) => [c.requested, c.status, c.transactionUid]),
      [['IN PROGRESS', 200, transactionUid], ['CANCELED', 200, transactionUid]], 'each change reached the archive once');
    assert.deepEqual(azure.workitems.updates.filter((u) => u.workitemUid === workitemUid).map((u) => u.tags), [['00741002']],
      'the cancellation date-time and reason were set first');
    await waitFor('both changes done here', () => w.appliance.archive.upsChanges.list(workitemUid).every((c) => c.state === 'done'), 30_000);
  });

  test('turned off, the cloud worklist is no longer offered; items begun here stay', async () => {
    seed('C8', { station: 'CT1', modality: 'CT', start: '20260120', accessionNumber: 'ACC-C8' });
    await refresh();
    assert.ok((await accessions()).includes('ACC-C8'));
    await w.appliance.live.update((settings) => ({ ...settings, cloud: { ...settings.cloud, worklist: { ...settings.cloud.worklist, enabled: false } } }));
    const round = await refresh();
    assert.equal(round.mode, 'disabled');
    assert.deepEqual(await accessions(), ['ACC-L1'], 'only the local item is offered');
    assert.equal(item(seeded.get('C5')!)?.state, 'DISCONTINUED', 'an item MPPS moved stays, with its history');
    assert.ok((await logLines(w)).some((l) => l.event === 'cloud-worklist-cleared' && l.reason === 'cloud.worklist.enabled is off'));
  });
});
