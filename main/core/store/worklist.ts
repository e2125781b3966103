/**
 * The local worklist (PS3.4 Annex K): items technicians schedule through /api/worklist, offered to
 * modalities by Modality Worklist C-FIND while SCHEDULED, moved on by MPPS, linked to the study that arrives.
 */
import { randomUUID } from 'node:crypto';
import type { WorklistItem, WorklistItemFields, WorklistState } from '../contract/api/worklist.js';
import { statementCache, type Db } from './database.js';

const COLUMNS = `id, state, study_uid AS studyInstanceUid, patient_name AS patientName, patient_id AS patientId,
  patient_birth_date AS patientBirthDate, patient_sex AS patientSex, accession_number AS accessionNumber,
  referring_physician_name AS referringPhysicianName, requested_procedure_id AS requestedProcedureId,
  requested_procedure_description AS requestedProcedureDescription, station_ae AS scheduledStationAeTitle,
  start_date AS scheduledStartDate, start_time AS scheduledStartTime, modality, step_id AS scheduledProcedureStepId,
  step_description AS scheduledProcedureStepDescription, performing_physician_name AS scheduledPerformingPhysicianName,
  arrived_study_uid AS arrivedStudyUid, source, COALESCE(workitem_uid, '') AS workitemUid, created_at AS createdAt, updated_at AS updatedAt`;

/** The worklist_items column of each item field: the one mapping, for local and cloud items alike. */
export const FIELD_COLUMNS: Readonly<Record<keyof WorklistItemFields, string>> = {
  patientName: 'patient_name', patientId: 'patient_id', patientBirthDate: 'patient_birth_date', patientSex: 'patient_sex',
  accessionNumber: 'accession_number', referringPhysicianName: 'referring_physician_name', requestedProcedureId: 'requested_procedure_id',
  requestedProcedureDescription: 'requested_procedure_description', scheduledStationAeTitle: 'station_ae', scheduledStartDate: 'start_date',
  scheduledStartTime: 'start_time', modality: 'modality', scheduledProcedureStepId: 'step_id',
  scheduledProcedureStepDescription: 'step_description', scheduledPerformingPhysicianName: 'performing_physician_name',
};
export const FIELDS = Object.keys(FIELD_COLUMNS) as (keyof WorklistItemFields)[];

/** A UID under the 2.25 root, from a random UUID (PS3.5 B.2). */
export function generatedUid(): string {
  return `2.25.${BigInt(`0x${randomUUID().replace(/-/g, '')}`).toString(10)}`;
}

export class WorklistError extends Error {
  override name = 'WorklistError';
  constructor(readonly kind: 'not-found' | 'conflict', message: string) {
    super(message);
  }
}

/** A cloud item belongs to the archive's worklist: it changes there, and here only through MPPS. */
function refuseCloudItem(item: WorklistItem, what: string): void {
  if (item.source === 'cloud') {
    throw new WorklistError('conflict', `worklist item ${item.id} is the cloud worklist's workitem ${item.workitemUid}; it cannot be ${what} here`);
  }
}

export class Worklist {
  private readonly prepared: ReturnType<typeof statementCache>;

  constructor(private readonly db: Db) {
    this.prepared = statementCache(db);
  }

  /** Schedules an item; its Study Instance UID is generated unless given (and then must not be another item's). */
  schedule(fields: WorklistItemFields & { studyInstanceUid?: string }, now: number): WorklistItem {
    const studyUid = fields.studyInstanceUid ?? generatedUid();
    if (this.prepared('SELECT 1 FROM worklist_items WHERE study_uid = ?').get(studyUid)) {
      throw new WorklistError('conflict', `Study Instance UID ${studyUid} belongs to another worklist item`);
    }
    const columns = FIELDS.map((field) => FIELD_COLUMNS[field]);
    const info = this.prepared(`INSERT INTO worklist_items (state, study_uid, ${columns.join(', ')}, created_at, updated_at)
      VALUES ('SCHEDULED', ?, ${columns.map(() => '?').join(', ')}, ?, ?)`).run(studyUid, ...FIELDS.map((field) => fields[field]), now, now);
    return this.get(Number(info.lastInsertRowid))!;
  }

  get(id: number): WorklistItem | undefined {
    return this.prepared(`SELECT ${COLUMNS} FROM worklist_items WHERE id = ?`).get(id) as WorklistItem | undefined;
  }

  byStudyUid(studyUid: string): WorklistItem | undefined {
    return this.prepared(`SELECT ${COLUMNS} FROM worklist_items WHERE study_uid = ?`).get(studyUid) as WorklistItem | undefined;
  }

  /** Items in schedule order, of one state or all. */
  list(state?: WorklistState): WorklistItem[] {
    return state
      ? this.prepared(`SELECT ${COLUMNS} FROM worklist_items WHERE state = ? ORDER BY start_date, start_time, id`).all(state) as WorklistItem[]
      : this.prepared(`SELECT ${COLUMNS} FROM worklist_items ORDER BY start_date, start_time, id`).all() as WorklistItem[];
  }

  /** Edits a SCHEDULED item (once performed, it is the modality's record); its Study Instance UID stays. */
  edit(id: number, fields: WorklistItemFields, now: number): WorklistItem {
    return this.db.transaction(() => {
      const item = this.mustGet(id);
      refuseCloudItem(item, 'edited');
      if (item.state !== 'SCHEDULED') throw new WorklistError('conflict', `worklist item ${id} is ${item.state}; only SCHEDULED items can be edited`);
      this.prepared(`UPDATE worklist_items SET ${FIELDS.map((field) => `${FIELD_COLUMNS[field]} = ?`).join(', ')}, updated_at = ? WHERE id = ?`)
        .run(...FIELDS.map((field) => fields[field]), now, id);
      return this.get(id)!;
    })();
  }

  /** Moves an item from one of `from` to `to`; a conflict when it is in another state. */
  transition(id: number, from: readonly WorklistState[], to: WorklistState, now: number): WorklistItem {
    return this.db.transaction(() => {
      const item = this.mustGet(id);
      refuseCloudItem(item, 'moved by hand');
      if (!from.includes(item.state)) throw new WorklistError('conflict', `worklist item ${id} is ${item.state}, not ${from.join(' or ')}`);
      this.prepared('UPDATE worklist_items SET state = ?, updated_at = ? WHERE id = ?').run(to, now, id);
      return this.get(id)!;
    })();
  }

  /** Links items to a study that arrived: same Study Instance UID, or same Accession Number (not empty). */
  linkArrivedStudy(study: { studyUid: string; accessionNumber: string }, now: number): number {
    return this.prepared(`UPDATE worklist_items SET arrived_study_uid = ?, updated_at = ?
      WHERE arrived_study_uid = '' AND (study_uid = ? OR (? <> '' AND accession_number = ?))`)
      .run(study.studyUid, now, study.studyUid, study.accessionNumber, study.accessionNumber).changes;
  }

  private mustGet(id: number): WorklistItem {
    const item = this.get(id);
    if (!item) throw new WorklistError('not-found', `no worklist item ${id}`);
    return item;
  }
}
