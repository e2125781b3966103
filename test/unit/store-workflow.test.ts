// Schema 4: the clinic workflow tables (Storage Commitment, worklist, MPPS) come to an existing index.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { CloudWorklist, type CloudWorkitem } from '../../main/core/store/cloud-worklist.js';
import { openDatabase, schemaVersion, SCHEMA_VERSION } from '../../main/core/store/database.js';
import { MppsSteps } from '../../main/core/store/mpps.js';
import { UpsStateChanges } from '../../main/core/store/ups-state-changes.js';
import { Worklist } from '../../main/core/store/worklist.js';

describe('index schema 4', () => {
  test('a schema-3 index gains the workflow tables, empty, and keeps its rows', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'dicom-edge-v3-'));
    try {
      const file = join(dir, 'index.sqlite');
      // A schema-3 index as that version left it: today's schema without what schema 4 added.
      openDatabase(file).close();
      const db = new Database(file);
      db.exec(`DROP TABLE commitment_items; DROP TABLE commitment_transactions; DROP TABLE ups_state_changes; DROP TABLE mpps_steps; DROP TABLE worklist_items;
        UPDATE meta SET value = '3' WHERE key = 'schema_version'`);
      db.prepare("INSERT INTO studies (study_uid, patient_id, received_at, updated_at) VALUES ('2.25.78', 'OLD-2', 1, 1)").run();
      db.close();
      const migrated = openDatabase(file);
      try {
        assert.equal(SCHEMA_VERSION, 4);
        assert.equal(schemaVersion(migrated), 4);
        for (const table of ['commitment_transactions', 'commitment_items', 'worklist_items', 'mpps_steps', 'ups_state_changes']) {
          assert.equal((migrated.prepare(`SELECT COUNT(*) AS n FROM ${table}`).get() as { n: number }).n, 0, table);
        }
        assert.deepEqual(migrated.prepare("SELECT patient_id FROM studies WHERE study_uid = '2.25.78'").get(), { patient_id: 'OLD-2' });
      } finally {
        migrated.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('cloud worklist in the index', () => {
  const workitem = (n: number, extra: Partial<CloudWorkitem> = {}): CloudWorkitem => ({
    workitemUid: `2.25.${n}`, studyInstanceUid: `2.25.100${n}`, patientName: `PATIENT^${n}`, patientId: `P${n}`, patientBirthDate: '', patientSex: '',
    accessionNumber: `ACC${n}`, referringPhysicianName: '', requestedProcedureId: '', requestedProcedureDescription: '', scheduledStationAeTitle: 'CT1',
    scheduledStartDate: '20260115', scheduledStartTime: '', modality: 'CT', scheduledProcedureStepId: '', scheduledProcedureStepDescription: '',
    scheduledPerformingPhysicianName: '', ...extra,
  });
  const mppsAttributes = (studyUid: string) => ({ studyUid, accessionNumber: '', performedStepId: '', modality: 'CT', startDate: '', startTime: '',
    endDate: '', endTime: '', performedSeries: [] });

  async function withIndex(work: (parts: { cloud: CloudWorklist; worklist: Worklist; mpps: MppsSteps; ups: UpsStateChanges }) => void): Promise<void> {
    const dir = await mkdtemp(join(tmpdir(), 'dicom-edge-cloud-wl-'));
    const db = openDatabase(join(dir, 'index.sqlite'));
    try {
      const worklist = new Worklist(db);
      const ups = new UpsStateChanges(db);
      work({ cloud: new CloudWorklist(db), worklist, mpps: new MppsSteps(db, (id) => worklist.get(id), ups), ups });
    } finally {
      db.close();
      await rm(dir, { recursive: true, force: true });
    }
  }

  test('a refresh adds, updates and removes SCHEDULED cloud items; begun ones and a local Study Instance UID are left alone', () => withIndex(({ cloud, worklist, mpps }) => {
    const local = worklist.schedule({ ...workitem(9), studyInstanceUid: '2.25.1003' }, 1);
    assert.deepEqual(cloud.refresh('azure', [workitem(1), workitem(2), workitem(3)], 2),
      { added: 2, updated: 0, removed: 0, skipped: [{ workitemUid: '2.25.3', reason: `its Study Instance UID 2.25.1003 belongs to local worklist item ${local.id}` }] });
    const begun = worklist.list().find((i) => i.workitemUid === '2.25.2')!;
    mpps.create('2.25.500', 'CT1', mppsAttributes(begun.studyInstanceUid), 3);
    const outcome = cloud.refresh('azure', [workitem(1, { patientName: 'RENAMED^1' })], 4);
    assert.deepEqual(outcome, { added: 0, updated: 1, removed: 0, skipped: [] }, 'the begun item is not offered, and not removed either');
    assert.equal(worklist.list().find((i) => i.workitemUid === '2.25.1')?.patientName, 'RENAMED^1');
    assert.equal(worklist.get(begun.id)?.state, 'IN PROGRESS');
    assert.deepEqual(cloud.refresh('azure', [], 5), { added: 0, updated: 0, removed: 1, skipped: [] });
    assert.deepEqual(worklist.list().map((i) => [i.source, i.accessionNumber, i.state]), [['local', 'ACC9', 'SCHEDULED'], ['cloud', 'ACC2', 'IN PROGRESS']]);
  }));

  test('MPPS queues the claim with a new Transaction UID, then the final state with the same one; a local item queues nothing', () => withIndex(({ cloud, worklist, mpps, ups }) => {
    cloud.refresh('azure', [workitem(1)], 1);
    const item = worklist.list()[0]!;
    const created = mpps.create('2.25.600', 'CT1', mppsAttributes(item.studyInstanceUid), 2);
    assert.deepEqual(created.upsQueued.map((c) => [c.targetState, c.state, c.destination]), [['IN PROGRESS', 'queued', 'azure']]);
    const set = mpps.set('2.25.600', { state: 'DISCONTINUED' }, 3);
    assert.deepEqual(set.upsQueued.map((c) => c.targetState), ['CANCELED']);
    const [claim, cancel] = ups.list('2.25.1');
    assert.match(claim!.transactionUid, /^2\.25\.\d+$/);
    assert.equal(cancel!.transactionUid, claim!.transactionUid);
    assert.deepEqual(ups.due(10).map((c) => c.id), [claim!.id], 'the cancel waits for its claim');
    ups.done(claim!.id, 11);
    assert.deepEqual(ups.due(12).map((c) => c.id), [cancel!.id]);

    const localItem = worklist.schedule(workitem(7), 20);
    assert.deepEqual(mpps.create('2.25.601', 'CT1', mppsAttributes(localItem.studyInstanceUid), 21).upsQueued, []);
  }));
});
