/**
 * Changes the archive destination reports (its change feed: create, update, delete of an instance), applied
 * to the index together with the reader's cursor in one transaction, so that after a crash a batch is either
 * applied with its cursor or not at all.
 *
 * What a change does to an instance:
 * - create: cloud rows are written (or completed); a local copy is marked as held by the archive.
 * - update: cloud rows take the archive's new attributes. A confirmed local copy (a cached copy: fetched from
 *   the archive, or local data every destination has confirmed) is dropped, rows kept, so the next read
 *   fetches the new version.
 * - delete: the rows go, with a confirmed local copy's file and outbox rows.
 * A local copy that is not confirmed (some outbox row not delivered, or never routed) is data this site
 * acquired and has not handed over: it is never dropped. The change is recorded as a conflict and only the
 * in-the-archive mark follows the archive (set on update, cleared on delete). A pin ("keep local") guards
 * a study against eviction, not against the archive's own changes: its stale or deleted copies go too
 * (cloud/prefetch.ts fetches an updated pinned study again).
 */
import type { ReceivedDicomJson } from '../dicom/dicom-json-values.js';
import { tagsOf } from '../dicom/dictionary.js';
import type { Db } from './database.js';
import { UNROUTED_DESTINATION, type ExistingInstance, type IndexWriter } from './index-writer.js';
import type { CloudIndex } from './cloud-index.js';

export interface CloudChange {
  action: 'create' | 'update' | 'delete';
  studyUid: string;
  seriesUid: string;
  sopInstanceUid: string;
  /** The instance's current attributes as DICOM JSON, when the archive sent them. */
  metadata?: ReceivedDicomJson;
}

export type CloudChangeOutcome =
  /** Cloud rows written or refreshed (create, or update of a cloud-only or new instance). */
  | 'indexed'
  /** Update: the cached copy was dropped; the rows stay, with the new attributes. */
  | 'refreshed'
  /** Delete: rows removed, and the cached copy with them. */
  | 'removed'
  /** Update or delete of local data that is not confirmed: kept as it is. */
  | 'conflict'
  /** Delete of an instance the index does not know. */
  | 'unknown';

export interface AppliedCloudChange {
  action: CloudChange['action'];
  studyUid: string;
  sopInstanceUid: string;
  outcome: CloudChangeOutcome;
}

export interface AppliedCloudChanges {
  changes: AppliedCloudChange[];
  /** Studies the index did not know before this batch (in the order first seen). */
  newStudies: string[];
  /** Studies whose rows changed. */
  touchedStudies: string[];
}

/** A local instance held here for nobody else: some outbox row is not delivered, or it was never routed. */
export function unconfirmedLocalCondition(alias: string): string {
  return `(${alias}.local = 1 AND (
    (${alias}.in_cloud = 0 AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.sop_instance_uid = ${alias}.sop_instance_uid))
    OR EXISTS (SELECT 1 FROM outbox o WHERE o.sop_instance_uid = ${alias}.sop_instance_uid
               AND (o.state <> 'delivered' OR o.destination = '${UNROUTED_DESTINATION}'))))`;
}

const TAG = tagsOf('StudyInstanceUID', 'SeriesInstanceUID', 'SOPInstanceUID');

/** Works out and writes the rows of a batch; Archive.applyCloudChanges does the file work and the locking. */
export class CloudChangeRows {
  constructor(
    private readonly db: Db,
    private readonly index: IndexWriter,
    private readonly cloud: CloudIndex,
  ) {}

  /**
   * The local copies the batch drops: instances with a local row (file or not), confirmed, that the batch
   * updates or deletes. Read before the batch is written; nothing in a batch makes a copy confirmed.
   */
  copiesToDrop(changes: readonly CloudChange[]): Map<string, ExistingInstance> {
    const drops = new Map<string, ExistingInstance>();
    const confirmed = this.db.prepare(`SELECT NOT ${unconfirmedLocalCondition('i')} AS ok FROM instances i WHERE i.sop_instance_uid = ?`);
    for (const change of changes) {
      if (change.action === 'create' || drops.has(change.sopInstanceUid)) continue;
      const existing = this.index.existing(change.sopInstanceUid);
      if (!existing?.local) continue;
      const row = confirmed.get(change.sopInstanceUid) as { ok: number } | undefined;
      if (row?.ok === 1) drops.set(change.sopInstanceUid, existing);
    }
    return drops;
  }

  /**
   * Writes the batch's rows and `saveCursor()` in one transaction, in the order of the changes. `drops` are
   * the copies whose files were already moved aside. Throws (writing nothing) if any statement fails.
   */
  write(changes: readonly CloudChange[], drops: ReadonlyMap<string, ExistingInstance>, saveCursor: () => void, now = Date.now()): AppliedCloudChanges {
    const result: AppliedCloudChanges = { changes: [], newStudies: [], touchedStudies: [] };
    const touched = new Set<string>();
    const known = new Set<string>();
    const studyExists = this.db.prepare('SELECT 1 FROM studies WHERE study_uid = ?');
    const deleteOutbox = this.db.prepare('DELETE FROM outbox WHERE sop_instance_uid = ?');
    const clearInCloud = this.db.prepare('UPDATE instances SET in_cloud = 0 WHERE sop_instance_uid = ?');
    const dropped = new Set<string>();
    this.db.transaction(() => {
      for (const change of changes) {
        const existing = this.index.existing(change.sopInstanceUid);
        const record = (outcome: CloudChangeOutcome, studyUid = existing?.study_uid ?? change.studyUid) => {
          result.changes.push({ action: change.action, studyUid, sopInstanceUid: change.sopInstanceUid, outcome });
          if (outcome !== 'unknown' && outcome !== 'conflict') touched.add(studyUid);
        };
        if (change.action === 'delete') {
          if (!existing) {
            record('unknown');
          } else if (existing.local && !drops.has(change.sopInstanceUid)) {
            clearInCloud.run(change.sopInstanceUid);
            record('conflict');
          } else {
            deleteOutbox.run(change.sopInstanceUid);
            this.index.remove(existing, now);
            record('removed');
          }
          continue;
        }
        const studyUid = existing?.study_uid ?? change.studyUid;
        if (!known.has(studyUid)) {
          known.add(studyUid);
          if (!studyExists.get(studyUid)) result.newStudies.push(studyUid);
        }
        let outcome: CloudChangeOutcome = 'indexed';
        if (change.action === 'update' && existing?.local) {
          if (drops.has(change.sopInstanceUid)) {
            if (!dropped.has(change.sopInstanceUid)) this.index.markEvicted(existing, now);
            dropped.add(change.sopInstanceUid);
            outcome = 'refreshed';
          } else {
            outcome = 'conflict';
          }
        }
        const upserted = this.cloud.upsert('instance', [datasetOf(change)], now);
        if (upserted.skipped.length > 0) throw new RangeError(`change of ${change.sopInstanceUid}: ${upserted.skipped[0]!.reason}`);
        record(outcome, studyUid);
      }
      saveCursor();
    })();
    result.newStudies = result.newStudies.filter((uid) => studyExists.get(uid));
    result.touchedStudies = [...touched];
    return result;
  }
}

/** The change's metadata with its UIDs (the entry's own, which name the instance), or the UIDs alone. */
function datasetOf(change: CloudChange): ReceivedDicomJson {
  return {
    ...(change.metadata ?? {}),
    [TAG.StudyInstanceUID]: { vr: 'UI', Value: [change.studyUid] },
    [TAG.SeriesInstanceUID]: { vr: 'UI', Value: [change.seriesUid] },
    [TAG.SOPInstanceUID]: { vr: 'UI', Value: [change.sopInstanceUid] },
  };
}
