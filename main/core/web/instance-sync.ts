import type { Db } from '../store/database.js';

interface InstanceDelivery {
  id: number;
  /** '*' while no destination was configured when the instance arrived. */
  destination: string;
  state: string;
  attempts: number;
  lastError: string | null;
  failureReason: number | null;
  updatedAt: number;
}

interface InstanceSyncRow {
  sopInstanceUid: string;
  seriesUid: string;
  seriesNumber: number | null;
  instanceNumber: number | null;
  /** One entry per destination; empty when the instance was never queued (local only). */
  destinations: InstanceDelivery[];
}

export interface InstanceSyncPage {
  total: number;
  limit: number;
  offset: number;
  items: InstanceSyncRow[];
}

/**
 * Every instance of a study with its delivery state per destination, one page at a time. Failed or
 * conflicting instances come first (they are what a technician acts on), then series and instance order.
 */
export function instanceSyncPage(db: Db, studyUid: string, limit: number, offset: number): InstanceSyncPage {
  const total = (db.prepare('SELECT COUNT(*) AS n FROM instances WHERE study_uid = ?').get(studyUid) as { n: number }).n;
  const instances = db
    .prepare(`SELECT i.sop_instance_uid, i.series_uid, s.series_number, i.instance_number FROM instances i
              LEFT JOIN series s ON s.series_uid = i.series_uid
              WHERE i.study_uid = ?
              ORDER BY EXISTS (SELECT 1 FROM outbox o WHERE o.sop_instance_uid = i.sop_instance_uid AND o.state IN ('failed','conflict')) DESC,
                       s.series_number, i.series_uid, i.instance_number, i.sop_instance_uid
              LIMIT ? OFFSET ?`)
    .all(studyUid, limit, offset) as Array<{ sop_instance_uid: string; series_uid: string; series_number: number | null; instance_number: number | null }>;
  const deliveries = new Map<string, InstanceDelivery[]>();
  if (instances.length > 0) {
    const marks = instances.map(() => '?').join(',');
    const rows = db
      .prepare(`SELECT id, sop_instance_uid, destination, state, attempts, last_error, failure_reason, updated_at FROM outbox
                WHERE sop_instance_uid IN (${marks}) ORDER BY destination`)
      .all(...instances.map((i) => i.sop_instance_uid)) as Array<{
        id: number; sop_instance_uid: string; destination: string; state: string; attempts: number;
        last_error: string | null; failure_reason: number | null; updated_at: number;
      }>;
    for (const r of rows) {
      const list = deliveries.get(r.sop_instance_uid) ?? [];
      list.push({ id: r.id, destination: r.destination, state: r.state, attempts: r.attempts, lastError: r.last_error,
        failureReason: r.failure_reason, updatedAt: r.updated_at });
      deliveries.set(r.sop_instance_uid, list);
    }
  }
  return {
    total,
    limit,
    offset,
    items: instances.map((i) => ({
      sopInstanceUid: i.sop_instance_uid, seriesUid: i.series_uid, seriesNumber: i.series_number, instanceNumber: i.instance_number,
      destinations: deliveries.get(i.sop_instance_uid) ?? [],
    })),
  };
}
