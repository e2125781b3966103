// Modality Worklist C-FIND: DCMTK's findscu -W is the modality. The same items are scheduled through
// /api/worklist and loaded into DCMTK's own worklist SCP (wlmscpfs, .wl files made with dump2dcm); for a
// table of queries the appliance must answer what wlmscpfs answers.
import assert from 'node:assert/strict';
import dimse from 'dcmjs-dimse';
import { after, before, describe, test } from 'node:test';
import type { WorklistItem, WorklistItemInput } from '../../main/core/contract/api/worklist.js';
import type { FindAttributes } from '../support/dcmtk-output.js';
import { newUid } from '../support/uid.js';
import { findWorklist, openWorklistSession, WORKLIST_RETURN_KEYS, WORKLIST_STEP_RETURN_KEYS } from '../support/worklist-scu.js';
import { logLines, startWebAppliance, type WebAppliance } from '../support/web-appliance.js';
import { startWlmscpfs, type WlmscpfsPeer } from '../support/wlmscpfs.js';

const ITEMS: WorklistItemInput[] = [
  { patientName: 'DOE^JOHN', patientId: 'P1', patientBirthDate: '19700101', patientSex: 'M', accessionNumber: 'ACC1', requestedProcedureId: 'RP1',
    requestedProcedureDescription: 'CT CHEST', scheduledStationAeTitle: 'CT1', scheduledStartDate: '20260115', scheduledStartTime: '080000', modality: 'CT',
    scheduledProcedureStepId: 'SPS1', scheduledProcedureStepDescription: 'CHEST', referringPhysicianName: 'HOUSE^G' },
  { patientName: 'DOE^JANE', patientId: 'P2', patientBirthDate: '19800202', patientSex: 'F', accessionNumber: 'ACC2', requestedProcedureId: 'RP2',
    requestedProcedureDescription: 'MR HEAD', scheduledStationAeTitle: 'MR1', scheduledStartDate: '20260118', scheduledStartTime: '093000', modality: 'MR',
    scheduledProcedureStepId: 'SPS2', scheduledProcedureStepDescription: 'HEAD' },
  { patientName: 'ROE^RICHARD', patientId: 'P3', accessionNumber: 'ACC3', requestedProcedureId: 'RP3', requestedProcedureDescription: 'CT ABDOMEN',
    scheduledStationAeTitle: 'CT1', scheduledStartDate: '20260120', scheduledStartTime: '140000', modality: 'CT', scheduledProcedureStepId: 'SPS3' },
  { patientName: 'SMITH^ANNA', patientId: 'P4', accessionNumber: 'ACC4', requestedProcedureId: 'RP4', requestedProcedureDescription: 'US ABDOMEN',
    scheduledStationAeTitle: 'US1', scheduledStartDate: '20260201', scheduledStartTime: '100000', modality: 'US', scheduledProcedureStepId: 'SPS4' },
  { patientName: 'DOEBLER^MAX', patientId: 'P5', accessionNumber: 'ACC5', requestedProcedureId: 'RP5', requestedProcedureDescription: 'CT SPINE',
    scheduledStationAeTitle: 'CT2', scheduledStartDate: '20260110', scheduledStartTime: '070000', modality: 'CT', scheduledProcedureStepId: 'SPS5' },
];

const RETURN_KEYS = WORKLIST_RETURN_KEYS;
const STEP_RETURN_KEYS = WORKLIST_STEP_RETURN_KEYS;
const COMPARED = [...RETURN_KEYS, ...STEP_RETURN_KEYS];

describe('Modality Worklist C-FIND, the appliance beside wlmscpfs', () => {
  let w: WebAppliance;
  let wlm: WlmscpfsPeer;
  const scheduled: WorklistItem[] = [];

  const findscuW = (port: number, calledAe: string, keys: Record<string, string>) => findWorklist(port, calledAe, keys);

  const projected = (responses: FindAttributes[]) =>
    responses.map((r) => Object.fromEntries(COMPARED.map((k) => [k, r[k] ?? '']))).sort((a, b) => a.AccessionNumber!.localeCompare(b.AccessionNumber!));

  before(async () => {
    w = await startWebAppliance();
    for (const input of ITEMS) {
      const response = await w.api('/api/worklist', { method: 'POST', body: JSON.stringify(input), headers: { 'content-type': 'application/json' } });
      assert.equal(response.status, 201, await response.clone().text());
      scheduled.push((await response.json()) as WorklistItem);
    }
    // A cancelled item is not offered by the appliance, so wlmscpfs does not get it either.
    const cancelled = await w.api('/api/worklist', { method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ...ITEMS[0], accessionNumber: 'ACC-X', patientId: 'PX' }) });
    assert.equal((await w.api(`/api/worklist/${((await cancelled.json()) as WorklistItem).id}`, { method: 'DELETE' })).status, 200);

    wlm = await startWlmscpfs(scheduled, 'EDGEWL');
  });

  after(async () => {
    await wlm?.stop();
    await w?.stop();
  });

  const queries: Array<[string, Record<string, string>, string[]]> = [
    ['by station', { ScheduledStationAETitle: 'CT1' }, ['ACC1', 'ACC3']],
    ['by date range', { ScheduledProcedureStepStartDate: '20260112-20260119' }, ['ACC1', 'ACC2']],
    ['by open date range', { ScheduledProcedureStepStartDate: '20260119-' }, ['ACC3', 'ACC4']],
    ['by modality', { Modality: 'CT' }, ['ACC1', 'ACC3', 'ACC5']],
    ['by patient name wildcard', { PatientName: 'DOE^*' }, ['ACC1', 'ACC2']],
    ['by station, modality and date together', { ScheduledStationAETitle: 'CT1', Modality: 'CT', ScheduledProcedureStepStartDate: '20260115' }, ['ACC1']],
    // Date and time ranges together are one datetime range (PS3.4 C.2.2.2.5; wlmscpfs does the same): from the
    // first date at the first time to the last date at the last time. ACC1 (15 Jan 08:00) lies inside although
    // 08:00 is outside 09:00-10:00 taken alone; the second pair's times would even be a backwards range alone.
    ['by date and time range, combined', { ScheduledProcedureStepStartDate: '20260110-20260120', ScheduledProcedureStepStartTime: '0900-1000' },
      ['ACC1', 'ACC2']],
    ['by date and time range, later time first', { ScheduledProcedureStepStartDate: '20260110-20260118', ScheduledProcedureStepStartTime: '1200-0930' },
      ['ACC1', 'ACC2']],
    ['empty result', { Modality: 'XA' }, []],
    ['everything', {}, ['ACC1', 'ACC2', 'ACC3', 'ACC4', 'ACC5']],
  ];

  for (const [label, keys, expected] of queries) {
    test(`${label}: same answers as wlmscpfs`, async () => {
      const ours = await findscuW(w.dimsePort, 'DICOMEDGE', keys);
      const theirs = await findscuW(wlm.port, 'EDGEWL', keys);
      assert.equal(theirs.final, 'Success', 'wlmscpfs answered the query');
      assert.equal(ours.final, 'Success');
      assert.deepEqual(projected(theirs.responses).map((r) => r.AccessionNumber), expected, 'wlmscpfs found what the table expects');
      assert.deepEqual(projected(ours.responses), projected(theirs.responses));
    });
  }

  test('one held association, every query of the table in a row (dcmjs-dimse SCU): the same matches from both', async () => {
    for (const [server, port, calledAe] of [['appliance', w.dimsePort, 'DICOMEDGE'], ['wlmscpfs', wlm.port, 'EDGEWL']] as const) {
      const session = openWorklistSession(port, calledAe);
      try {
        for (const [label, keys, expected] of queries) {
          const answer = await session.find(keys);
          assert.equal(answer.status, 0, `${server}, ${label}: final status`);
          assert.deepEqual(answer.responses.map((r) => String(r.AccessionNumber)).sort(), expected, `${server}, ${label}`);
        }
      } finally {
        await session.close();
      }
    }
  });

  test('pending responses are written with dcmjs\'s own name map, not a copy of it per data set', async () => {
    // dcmjs-dimse copies dcmjs's whole name map (~2.5 ms) for every data set it writes when the network's
    // datasetNameMap is set, and it defaults to {}: that made each match cost ~3 ms on a held association.
    type Written = { getElement(keyword: string): unknown; getDenaturalizedDataset(options: unknown, nameMap?: unknown): Buffer };
    const prototype = dimse.Dataset.prototype as unknown as Written;
    const original = prototype.getDenaturalizedDataset;
    const nameMaps: unknown[] = [];
    prototype.getDenaturalizedDataset = function (this: Written, options: unknown, nameMap?: unknown) {
      // The SCU's request is written in this process too (by an unmodified Client); only answers have an accession.
      if (this.getElement('AccessionNumber')) nameMaps.push(nameMap);
      return original.call(this, options, nameMap);
    };
    const session = openWorklistSession(w.dimsePort, 'DICOMEDGE');
    try {
      const answer = await session.find({ Modality: 'CT' });
      assert.equal(answer.responses.length, 3);
    } finally {
      prototype.getDenaturalizedDataset = original;
      await session.close();
    }
    assert.equal(nameMaps.length, 3, 'one data set written per match');
    assert.deepEqual(nameMaps.filter((nameMap) => nameMap !== undefined), [], 'no answer was written with a name map to merge');
  });

  test('a malformed date range is refused with 0xA900 and the attribute named', async () => {
    const ours = await findscuW(w.dimsePort, 'DICOMEDGE', { ScheduledProcedureStepStartDate: '2026-01-01' });
    assert.match(ours.final, /DataSetDoesNotMatchSOPClass|A900/i);
    const lines = await logLines(w);
    assert.ok(lines.some((l) => l.event === 'worklist-find-refused' && String(l.reason).includes('ScheduledProcedureStepStartDate')));
  });
});

describe('/api/worklist', () => {
  let w: WebAppliance;
  const json = { 'content-type': 'application/json' };
  before(async () => {
    w = await startWebAppliance();
  });
  after(async () => w?.stop());

  test('schedule generates a Study Instance UID; edit keeps it; cancel ends the offer; bad fields are named and change nothing', async () => {
    const created = await w.api('/api/worklist', { method: 'POST', headers: json, body: JSON.stringify(ITEMS[0]) });
    assert.equal(created.status, 201);
    const item = (await created.json()) as WorklistItem;
    assert.match(item.studyInstanceUid, /^2\.25\.\d+$/);
    assert.equal(item.state, 'SCHEDULED');

    const bad = await w.api('/api/worklist', { method: 'POST', headers: json, body: JSON.stringify({ ...ITEMS[1], scheduledStartDate: '2026-01-18' }) });
    assert.equal(bad.status, 400);
    assert.match(await bad.text(), /scheduledStartDate/);
    const unknown = await w.api('/api/worklist', { method: 'POST', headers: json, body: JSON.stringify({ ...ITEMS[1], colour: 'blue' }) });
    assert.equal(unknown.status, 400);
    assert.match(await unknown.text(), /colour/);
    assert.equal(((await (await w.api('/api/worklist')).json()) as { items: unknown[] }).items.length, 1, 'nothing was added by the bad requests');

    const edited = await w.api(`/api/worklist/${item.id}`, { method: 'PUT', headers: json, body: JSON.stringify({ ...ITEMS[0], modality: 'MR' }) });
    assert.equal(edited.status, 200);
    const after = (await edited.json()) as WorklistItem;
    assert.equal(after.modality, 'MR');
    assert.equal(after.studyInstanceUid, item.studyInstanceUid);
    const changeUid = await w.api(`/api/worklist/${item.id}`, { method: 'PUT', headers: json, body: JSON.stringify({ ...ITEMS[0], studyInstanceUid: newUid() }) });
    assert.equal(changeUid.status, 400);

    assert.equal((await w.api(`/api/worklist/${item.id}`, { method: 'DELETE' })).status, 200);
    const again = await w.api(`/api/worklist/${item.id}`, { method: 'PUT', headers: json, body: JSON.stringify(ITEMS[0]) });
    assert.equal(again.status, 409, 'a cancelled item cannot be edited');
    assert.equal((await w.api('/api/worklist/9999', { method: 'DELETE' })).status, 404);
    assert.deepEqual(((await (await w.api('/api/worklist?state=SCHEDULED')).json()) as { items: unknown[] }).items, []);
  });
});
