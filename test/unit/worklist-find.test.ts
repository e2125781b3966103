import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { WorklistItem } from '../../main/core/contract/api/worklist.js';
import { InvalidMatchKeyError } from '../../main/core/dicom/matching.js';
import { matchesWorklistItem, parseWorklistQuery, worklistResponse, WorklistIdentifierError } from '../../main/core/dimse/worklist-find.js';

const item: WorklistItem = {
  id: 1, state: 'SCHEDULED', studyInstanceUid: '1.2.3', patientName: 'MÜLLER^HANS', patientId: 'P1', patientBirthDate: '19700101',
  patientSex: 'M', accessionNumber: 'ACC1', referringPhysicianName: '', requestedProcedureId: 'RP1', requestedProcedureDescription: 'CT',
  scheduledStationAeTitle: 'CT1', scheduledStartDate: '20260115', scheduledStartTime: '083000', modality: 'CT', scheduledProcedureStepId: 'S1',
  scheduledProcedureStepDescription: '', scheduledPerformingPhysicianName: '', arrivedStudyUid: '', source: 'local', workitemUid: '', createdAt: 0, updatedAt: 0,
};

describe('Modality Worklist identifier', () => {
  test('keys inside the Scheduled Procedure Step item match the step; a time range matches the start time', () => {
    const query = parseWorklistQuery({ ScheduledProcedureStepSequence: [{ ScheduledStationAETitle: 'CT1', ScheduledProcedureStepStartTime: '0800-0900' }] });
    assert.equal(matchesWorklistItem(query, item), true);
    assert.equal(matchesWorklistItem(parseWorklistQuery({ ScheduledProcedureStepSequence: [{ ScheduledProcedureStepStartTime: '0900-' }] }), item), false);
  });

  test('an empty Scheduled Procedure Step item returns every step attribute; text outside ASCII declares ISO_IR 192', () => {
    const response = worklistResponse(parseWorklistQuery({ PatientName: '', ScheduledProcedureStepSequence: [] }), item);
    assert.deepEqual(response.PatientName, [{ Alphabetic: 'MÜLLER^HANS' }]);
    assert.equal(response.SpecificCharacterSet, 'ISO_IR 192');
    const step = (response.ScheduledProcedureStepSequence as Record<string, unknown>[])[0]!;
    assert.equal(step.Modality, 'CT');
    assert.equal(step.ScheduledProcedureStepStartDate, '20260115');
    assert.equal(step.ScheduledStationAETitle, 'CT1');
  });

  test('two step items, or a malformed range, are refused naming what is wrong', () => {
    assert.throws(() => parseWorklistQuery({ ScheduledProcedureStepSequence: [{}, {}] }), WorklistIdentifierError);
    assert.throws(() => parseWorklistQuery({ ScheduledProcedureStepSequence: [{ ScheduledProcedureStepStartDate: '2026-01-01' }] }),
      (error: unknown) => error instanceof InvalidMatchKeyError && /ScheduledProcedureStepStartDate/.test(error.message));
  });
});
