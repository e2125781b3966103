/**
 * The cloud's worklist as kept here: SCHEDULED workitems of the archive destination's UPS-RS worklist
 * (cloud/cloud-worklist.ts reads them), stored as worklist items with source 'cloud' so that Modality Worklist
 * C-FIND answers them like local ones, also while the archive cannot be reached.
 */
import type { WorklistItemFields } from '../contract/api/worklist.js';
import { statementCache, type Db } from './database.js';
import { FIELD_COLUMNS, FIELDS } from './worklist.js';

export interface CloudWorkitem extends WorklistItemFields {
  workitemUid: string;
  studyInstanceUid: string;
}

export interface CloudWorklistRefresh {
  added: number;
  updated: number;
  /** SCHEDULED cloud items the archive no longer offers for these stations (claimed elsewhere, canceled, rescheduled away). */
  removed: number;
  /** Workitems not kept, with why (e.g. their Study Instance UID is a local item's). */
  skipped: Array<{ workitemUid: string; reason: string }>;
}

const COLUMNS = FIELDS.map((field) => FIELD_COLUMNS[field]);

export class CloudWorklist {
  private readonly prepared: ReturnType<typeof statementCache>;

  constructor(private readonly db: Db) {
    this.prepared = statementCache(db);
  }

  /**
   * One refresh, in one transaction: the workitems the archive offers now are added, or their SCHEDULED items
   * updated; SCHEDULED cloud items it no longer offers are removed, unless an MPPS step already refers to
   * them. Items the modality has begun (IN PROGRESS and later) stay as MPPS left them.
   */
  refresh(destination: string, workitems: readonly CloudWorkitem[], now: number): CloudWorklistRefresh {
    return this.db.transaction(() => {
      const outcome: CloudWorklistRefresh = { added: 0, updated: 0, removed: 0, skipped: [] };
      const offered = new Set<string>();
      for (const workitem of workitems) {
        offered.add(workitem.workitemUid);
        const existing = this.prepared('SELECT id, state FROM worklist_items WHERE workitem_uid = ?').get(workitem.workitemUid) as
          { id: number; state: string } | undefined;
        const values = FIELDS.map((field) => workitem[field]);
        if (existing) {
          if (existing.state !== 'SCHEDULED') continue;
          this.prepared(`UPDATE worklist_items SET ${COLUMNS.map((column) => `${column} = ?`).join(', ')}, workitem_destination = ?, updated_at = ?
            WHERE id = ?`).run(...values, destination, now, existing.id);
          outcome.updated++;
          continue;
        }
        const owner = this.prepared('SELECT id, source, workitem_uid AS workitemUid FROM worklist_items WHERE study_uid = ?').get(workitem.studyInstanceUid) as
          { id: number; source: string; workitemUid: string | null } | undefined;
        if (owner) {
          outcome.skipped.push({ workitemUid: workitem.workitemUid, reason: `its Study Instance UID ${workitem.studyInstanceUid} belongs to ${
            owner.source === 'cloud' ? `workitem ${owner.workitemUid}` : `local worklist item ${owner.id}`}` });
          continue;
        }
        this.prepared(`INSERT INTO worklist_items (state, study_uid, ${COLUMNS.join(', ')}, source, workitem_uid, workitem_destination, created_at, updated_at)
          VALUES ('SCHEDULED', ?, ${COLUMNS.map(() => '?').join(', ')}, 'cloud', ?, ?, ?, ?)`)
          .run(workitem.studyInstanceUid, ...values, workitem.workitemUid, destination, now, now);
        outcome.added++;
      }
      const stale = this.prepared(`SELECT id, workitem_uid AS workitemUid FROM worklist_items WHERE source = 'cloud' AND state = 'SCHEDULED'
        AND NOT EXISTS (SELECT 1 FROM mpps_steps WHERE worklist_item_id = worklist_items.id)`).all() as Array<{ id: number; workitemUid: string }>;
      for (const item of stale) {
        if (offered.has(item.workitemUid)) continue;
        this.prepared('DELETE FROM worklist_items WHERE id = ?').run(item.id);
        outcome.removed++;
      }
      return outcome;
    })();
  }
}
