// MPPS SCP (PS3.4 Annex F) against a modality built on dcmjs-dimse (not our stack): N-CREATE, N-SET to
// COMPLETED or DISCONTINUED with the performed series, invalid transitions; the worklist item follows the
// step, and the study that arrives (DCMTK storescu) is linked to its item.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { WorklistItem } from '../../main/core/contract/api/worklist.js';
import { startDimse, waitFor, type DimseHarness } from '../support/dimse-harness.js';
import { mppsCreate, mppsInProgress, mppsSet, sendMpps, type MppsRequest } from '../support/mpps-scu.js';
import { requireTool, runOk } from '../support/peers.js';
import { makeStudy, writeInstances } from '../support/study.js';
import { newUid } from '../support/uid.js';

const send = (h: DimseHarness, request: MppsRequest) => sendMpps(h.port, request);
const nCreate = mppsCreate;
const nSet = mppsSet;
const inProgress = (item: Pick<WorklistItem, 'studyInstanceUid' | 'accessionNumber'>, status = 'IN PROGRESS') => mppsInProgress(item, status);

describe('MPPS SCP', () => {
  let h: DimseHarness;
  const schedule = (accessionNumber: string) => h.archive.worklist.schedule({
    patientName: 'DOE^JOHN', patientId: 'P1', patientBirthDate: '', patientSex: '', accessionNumber, referringPhysicianName: '',
    requestedProcedureId: 'RP1', requestedProcedureDescription: 'CT CHEST', scheduledStationAeTitle: 'CT1', scheduledStartDate: '20260115',
    scheduledStartTime: '', modality: 'CT', scheduledProcedureStepId: 'SPS1', scheduledProcedureStepDescription: '', scheduledPerformingPhysicianName: '',
  }, Date.now());

  before(async () => {
    h = await startDimse();
  });
  after(async () => h.stop());

  test('N-CREATE takes the item IN PROGRESS; N-SET COMPLETED keeps the performed series and completes it; the study arriving is linked', async () => {
    const item = schedule('ACC-MPPS-1');
    const uid = newUid();
    const created = await send(h, nCreate(uid, inProgress(item)));
    assert.equal(created.status, 0);
    assert.equal(created.affectedSopInstanceUid, uid);
    assert.equal(h.archive.worklist.get(item.id)?.state, 'IN PROGRESS');
    assert.equal(h.archive.mpps.get(uid)?.worklistItemId, item.id);

    // The images, sent as a modality does, under the item's Study Instance UID.
    const study = makeStudy({ series: 1, instancesPerSeries: 2, rows: 8, columns: 8, studyUid: item.studyInstanceUid, accession: item.accessionNumber });
    const dir = await mkdtemp(join(tmpdir(), 'mpps-'));
    try {
      await runOk(requireTool('storescu', 'dcmtk'), ['-aet', 'CT1', '-aec', 'EDGE', '127.0.0.1', String(h.port), ...(await writeInstances(dir, study))],
        { timeoutMs: 60_000 });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    await waitFor('the study linked to its item', () => h.archive.worklist.get(item.id)?.arrivedStudyUid === item.studyInstanceUid);

    const series = { SeriesInstanceUID: study[0]!.seriesUid, ReferencedImageSequence: study.map((i) => ({
      ReferencedSOPClassUID: '1.2.840.10008.5.1.4.1.1.2', ReferencedSOPInstanceUID: i.sopInstanceUid })) };
    const completed = await send(h, nSet(uid, {
      PerformedProcedureStepStatus: 'COMPLETED', PerformedProcedureStepEndDate: '20260115', PerformedProcedureStepEndTime: '083000',
      PerformedSeriesSequence: [series],
    }));
    assert.equal(completed.status, 0);
    const step = h.archive.mpps.get(uid)!;
    assert.equal(step.state, 'COMPLETED');
    assert.equal(step.endTime, '083000');
    assert.deepEqual(step.performedSeries, [{ seriesInstanceUid: study[0]!.seriesUid, sopInstanceUids: study.map((i) => i.sopInstanceUid) }]);
    assert.equal(h.archive.worklist.get(item.id)?.state, 'COMPLETED');

    // A COMPLETED step may no longer be updated (F.7.2.2.2): 0110 with its comment, and nothing changes.
    const again = await send(h, nSet(uid, { PerformedProcedureStepStatus: 'DISCONTINUED' }));
    assert.equal(again.status, 0x0110);
    assert.equal(again.errorComment, 'Performed Procedure Step Object may no longer be updated');
    assert.equal(Number(again.errorId), 0xa710);
    assert.equal(h.archive.mpps.get(uid)?.state, 'COMPLETED');
    assert.equal(h.archive.worklist.get(item.id)?.state, 'COMPLETED');
  });

  test('N-SET DISCONTINUED, linked by Accession Number, discontinues the item', async () => {
    const item = schedule('ACC-MPPS-2');
    const uid = newUid();
    assert.equal((await send(h, nCreate(uid, inProgress({ studyInstanceUid: newUid(), accessionNumber: item.accessionNumber })))).status, 0);
    assert.equal(h.archive.worklist.get(item.id)?.state, 'IN PROGRESS');
    assert.equal((await send(h, nSet(uid, { PerformedProcedureStepStatus: 'DISCONTINUED' }))).status, 0);
    assert.equal(h.archive.worklist.get(item.id)?.state, 'DISCONTINUED');
  });

  test('invalid requests get their PS3.4 status and change nothing', async () => {
    const item = schedule('ACC-MPPS-3');
    const notInProgress = await send(h, nCreate(newUid(), inProgress(item, 'COMPLETED')));
    assert.equal(notInProgress.status, 0x0106);
    assert.match(notInProgress.errorComment, /IN PROGRESS/);
    const noSchedule = { ...inProgress(item) } as Record<string, unknown>;
    delete noSchedule.ScheduledStepAttributesSequence;
    assert.equal((await send(h, nCreate(newUid(), noSchedule))).status, 0x0120);
    assert.equal(h.archive.worklist.get(item.id)?.state, 'SCHEDULED');

    const uid = newUid();
    assert.equal((await send(h, nCreate(uid, inProgress(item)))).status, 0);
    assert.equal((await send(h, nCreate(uid, inProgress(item)))).status, 0x0111, 'a second N-CREATE of the same step');
    assert.equal((await send(h, nSet(uid, { PerformedProcedureStepStatus: 'SCHEDULED' }))).status, 0x0106);
    assert.equal(h.archive.mpps.get(uid)?.state, 'IN PROGRESS');
    assert.equal((await send(h, nSet(newUid(), { PerformedProcedureStepStatus: 'COMPLETED' }))).status, 0x0112, 'an unknown step');
  });
});
