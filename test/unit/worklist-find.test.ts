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

  test('a Start Date range with a Start Time range is one datetime range: 1 Dec 22:00 to 2 Dec 06:00 (PS3.4 C.2.2.2.5)', () => {
    const query = parseWorklistQuery({ ScheduledProcedureStepSequence: [{
      ScheduledProcedureStepStartDate: '20261201-20261202', ScheduledProcedureStepStartTime: '2200-0600' }] });
    const at = (date: string, time: string) => matchesWorklistItem(query, { ...item, scheduledStartDate: date, scheduledStartTime: time });
    assert.equal(at('20261201', '2330'), true);
    assert.equal(at('20261202', '0130'), true);
    assert.equal(at('20261202', '060000'), true, 'the end time is included');
    assert.equal(at('20261201', '2159'), false);
    assert.equal(at('20261202', '0601'), false);
    assert.equal(at('20261130', '2330'), false);
    assert.equal(at('', ''), false, 'an item without a start date does not match a range');
    // Open ends: from 1 Dec 22:00 on, and up to 2 Dec 06:00.
    const from = parseWorklistQuery({ ScheduledProcedureStepSequence: [{ ScheduledProcedureStepStartDate: '20261201-', ScheduledProcedureStepStartTime: '2200-' }] });
    assert.equal(matchesWorklistItem(from, { ...item, scheduledStartDate: '20261205', scheduledStartTime: '0800' }), true);
    assert.equal(matchesWorklistItem(from, { ...item, scheduledStartDate: '20261201', scheduledStartTime: '2100' }), false);
  });

  test('a combined date and time range that is malformed or backwards is refused, naming the attribute', () => {
    const refused = (date: string, time: string, attribute: RegExp) => assert.throws(
      () => parseWorklistQuery({ ScheduledProcedureStepSequence: [{ ScheduledProcedureStepStartDate: date, ScheduledProcedureStepStartTime: time }] }),
      (error: unknown) => error instanceof InvalidMatchKeyError && attribute.test(error.message));
    refused('2026-12-01', '2200-0600', /ScheduledProcedureStepStartDate/);
    refused('20261201-20261202', '2500-0600', /ScheduledProcedureStepStartTime/);
    refused('20261201-20261201', '2200-0600', /ScheduledProcedureStepStartDate with ScheduledProcedureStepStartTime.*after its end/);
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
