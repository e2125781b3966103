/**
 * Modality Performed Procedure Steps (PS3.4 Annex F): created IN PROGRESS, then COMPLETED or DISCONTINUED,
 * with the performed series; each linked to the worklist item it performs, whose state follows it. The
 * step and its item change in one transaction, with the UPS-RS state change a cloud item's move queues.
 */
import type { WorklistItem, WorklistState } from '../contract/api/worklist.js';
import { statementCache, type Db } from './database.js';
import type { UpsStateChange, UpsStateChanges } from './ups-state-changes.js';

export type MppsState = 'IN PROGRESS' | 'COMPLETED' | 'DISCONTINUED';

export interface PerformedSeries {
  seriesInstanceUid: string;
  sopInstanceUids: string[];
}

export interface MppsAttributes {
  studyUid: string;
  accessionNumber: string;
  performedStepId: string;
  modality: string;
  startDate: string;
  startTime: string;
  endDate: string;
  endTime: string;
  performedSeries: PerformedSeries[];
}

export interface MppsStep extends MppsAttributes {
  sopInstanceUid: string;
  callingAe: string;
  state: MppsState;
  worklistItemId: number | null;
  createdAt: number;
  updatedAt: number;
}

export class MppsError extends Error {
  override name = 'MppsError';
  constructor(readonly kind: 'duplicate' | 'not-found' | 'final', message: string) {
    super(message);
  }
}

const COLUMNS = `sop_instance_uid AS sopInstanceUid, calling_ae AS callingAe, state, worklist_item_id AS worklistItemId,
  study_uid AS studyUid, accession_number AS accessionNumber, performed_step_id AS performedStepId, modality,
  start_date AS startDate, start_time AS startTime, end_date AS endDate, end_time AS endTime, performed_series AS performedSeries,
  created_at AS createdAt, updated_at AS updatedAt`;

/** The worklist state a step's state gives its item, and the states the item may be in before. */
const ITEM_FOLLOWS: Record<MppsState, { to: WorklistState; from: WorklistState[] }> = {
  'IN PROGRESS': { to: 'IN PROGRESS', from: ['SCHEDULED'] },
  COMPLETED: { to: 'COMPLETED', from: ['SCHEDULED', 'IN PROGRESS'] },
  DISCONTINUED: { to: 'DISCONTINUED', from: ['SCHEDULED', 'IN PROGRESS'] },
};

export interface MppsChange {
  step: MppsStep;
  /** The linked worklist item after the change, and whether its state moved. */
  item: WorklistItem | undefined;
  itemMoved: boolean;
  /** The UPS-RS state changes queued for a cloud item by this move (store/ups-state-changes.ts). */
  upsQueued: UpsStateChange[];
}

export class MppsSteps {
  private readonly prepared: ReturnType<typeof statementCache>;

  constructor(private readonly db: Db, private readonly worklistItem: (id: number) => WorklistItem | undefined,
    private readonly upsChanges: UpsStateChanges) {
    this.prepared = statementCache(db);
  }

  get(sopInstanceUid: string): MppsStep | undefined {
    const row = this.prepared(`SELECT ${COLUMNS} FROM mpps_steps WHERE sop_instance_uid = ?`).get(sopInstanceUid) as
      (Omit<MppsStep, 'performedSeries'> & { performedSeries: string }) | undefined;
    return row ? { ...row, performedSeries: JSON.parse(row.performedSeries) as PerformedSeries[] } : undefined;
  }

  /** The last step created for a worklist item. */
  latestForItem(worklistItemId: number): MppsStep | undefined {
    const row = this.prepared('SELECT sop_instance_uid AS uid FROM mpps_steps WHERE worklist_item_id = ? ORDER BY created_at DESC, rowid DESC LIMIT 1')
      .get(worklistItemId) as { uid: string } | undefined;
    return row ? this.get(row.uid) : undefined;
  }

  /**
   * N-CREATE: a new step IN PROGRESS, linked to the worklist item with its Study Instance UID, else its
   * Accession Number (a SCHEDULED item), which goes IN PROGRESS with it.
   */
  create(sopInstanceUid: string, callingAe: string, attributes: MppsAttributes, now: number): MppsChange {
    return this.db.transaction(() => {
      if (this.prepared('SELECT 1 FROM mpps_steps WHERE sop_instance_uid = ?').get(sopInstanceUid)) {
        throw new MppsError('duplicate', `Performed Procedure Step ${sopInstanceUid} already exists`);
      }
      const item = this.findItem(attributes);
      this.prepared(`INSERT INTO mpps_steps (sop_instance_uid, calling_ae, state, worklist_item_id, study_uid, accession_number,
          performed_step_id, modality, start_date, start_time, end_date, end_time, performed_series, created_at, updated_at)
        VALUES (?, ?, 'IN PROGRESS', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`).run(sopInstanceUid, callingAe, item?.id ?? null, attributes.studyUid,
        attributes.accessionNumber, attributes.performedStepId, attributes.modality, attributes.startDate, attributes.startTime,
        attributes.endDate, attributes.endTime, JSON.stringify(attributes.performedSeries), now, now);
      return this.follow(sopInstanceUid, 'IN PROGRESS', now);
    })();
  }

  /**
   * N-SET: new values for what the modality sent (empty ones keep what was there, the series list is replaced
   * when given) and, with `state`, the transition; a COMPLETED or DISCONTINUED step may no longer be updated.
   */
  set(sopInstanceUid: string, changes: Partial<MppsAttributes> & { state?: MppsState }, now: number): MppsChange {
    return this.db.transaction(() => {
      const step = this.get(sopInstanceUid);
      if (!step) throw new MppsError('not-found', `no Performed Procedure Step ${sopInstanceUid}`);
      if (step.state !== 'IN PROGRESS') throw new MppsError('final', `Performed Procedure Step is ${step.state} and may no longer be updated`);
      const next = { ...step, ...Object.fromEntries(Object.entries(changes).filter(([, value]) => value !== undefined && value !== '')) } as MppsStep;
      this.prepared(`UPDATE mpps_steps SET state = ?, performed_step_id = ?, modality = ?, end_date = ?, end_time = ?, performed_series = ?,
          updated_at = ? WHERE sop_instance_uid = ?`)
        .run(next.state, next.performedStepId, next.modality, next.endDate, next.endTime, JSON.stringify(next.performedSeries), now, sopInstanceUid);
      return this.follow(sopInstanceUid, next.state, now);
    })();
  }

  private findItem(attributes: Pick<MppsAttributes, 'studyUid' | 'accessionNumber'>): WorklistItem | undefined {
    const byStudy = attributes.studyUid
      ? this.prepared('SELECT id FROM worklist_items WHERE study_uid = ?').get(attributes.studyUid) as { id: number } | undefined
      : undefined;
    const found = byStudy ?? (attributes.accessionNumber
      ? this.prepared("SELECT id FROM worklist_items WHERE accession_number = ? AND state = 'SCHEDULED' ORDER BY id LIMIT 1")
        .get(attributes.accessionNumber) as { id: number } | undefined
      : undefined);
    return found ? this.worklistItem(found.id) : undefined;
  }

  /** Moves the linked item where the step's state takes it, when it is in a state that allows it. */
  private follow(sopInstanceUid: string, state: MppsState, now: number): MppsChange {
    const step = this.get(sopInstanceUid)!;
    const current = step.worklistItemId === null ? undefined : this.worklistItem(step.worklistItemId);
    if (!current) return { step, item: undefined, itemMoved: false, upsQueued: [] };
    const rule = ITEM_FOLLOWS[state];
    if (current.state === rule.to || !rule.from.includes(current.state)) return { step, item: current, itemMoved: false, upsQueued: [] };
    this.prepared('UPDATE worklist_items SET state = ?, updated_at = ? WHERE id = ?').run(rule.to, now, current.id);
    const upsQueued = this.upsChanges.queueFor(current, rule.to, now);
    return { step, item: this.worklistItem(current.id), itemMoved: true, upsQueued };
  }
}
