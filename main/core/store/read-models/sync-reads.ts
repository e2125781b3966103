/**
 * Where each study and each of its instances stands on the way to the cloud, as the study list and the
 * study view show it. Named queries, prepared once, answering in camelCase.
 */
import type { Db } from '../database.js';
import { locationOf, type StudyLocation } from '../cloud-index.js';
import type { OutboxState } from '../events.js';
import { emptyCounts, OUTBOX_STATES, studyProgressQuery } from './study-progress.js';

/**
 * local-only: never queued; failed: some upload failed or conflicts; partial: some delivered, some on
 * their way; pending: none delivered yet; synced: all delivered; synced-with-cancellations: all delivered
 * but the cancelled ones; cancelled: all cancelled.
 */
export type SyncState = 'local-only' | 'failed' | 'partial' | 'pending' | 'synced' | 'synced-with-cancellations' | 'cancelled';

export interface DestinationSync {
  name: string;
  counts: Record<OutboxState, number>;
  state: SyncState;
}

export interface StudySync {
  studyUid: string;
  /** Over every destination. */
  state: SyncState;
  /** By name; '*' holds what was queued while no destination was configured. */
  destinations: DestinationSync[];
  /** The study's bytes in the local archive. */
  sizeBytes: number;
  /** Where its instances are; null when the index does not know the study. */
  location: StudyLocation | null;
  /** Instances known (here, or as the archive reported them) and those held here. */
  numInstances: number;
  numLocalInstances: number;
  pinned: boolean;
}

/** An instance's upload to one destination. */
export interface InstanceDelivery {
  /** The outbox entry. */
  id: number;
  /** '*' while no destination was configured when the instance arrived. */
  destination: string;
  state: OutboxState;
  attempts: number;
  lastError: string | null;
  failureReason: number | null;
  updatedAt: number;
}

/** A failed or conflicting upload of one of a study's instances. */
export interface StudyProblem extends InstanceDelivery {
  sopInstanceUid: string;
}

export interface InstanceState {
  sopInstanceUid: string;
  seriesUid: string;
  seriesNumber: number | null;
  instanceNumber: number | null;
  /** Where the instance is: here only, only in the archive, or both. */
  location: StudyLocation;
  /** One entry per destination; empty when the instance was never queued (here only, or fetched from the archive). */
  destinations: InstanceDelivery[];
}

export interface InstanceStatesPage {
  /** Instances of the study, all pages. */
  total: number;
  limit: number;
  offset: number;
  items: InstanceState[];
}

export interface SyncReads {
  /** Each study's sync state, in the order asked. */
  studySync(studyUids: readonly string[]): StudySync[];
  /** A study's failed and conflicting uploads, newest first (at most 500). */
  studyProblems(studyUid: string): StudyProblem[];
  /**
   * Every instance of a study with its delivery per destination, one page at a time. Failed or conflicting
   * instances come first (they are what a technician acts on), then series and instance order.
   */
  instanceStates(studyUid: string, page: { limit: number; offset: number }): InstanceStatesPage;
}

const DELIVERY = `id, destination, state, attempts, last_error AS lastError, failure_reason AS failureReason, updated_at AS updatedAt`;

export function syncReads(db: Db): SyncReads {
  const progressOf = studyProgressQuery(db);
  const studies = db.prepare(`SELECT study_uid, size_bytes, num_instances, num_local_instances, cloud_num_instances, pinned,
      EXISTS (SELECT 1 FROM instances i WHERE i.study_uid = studies.study_uid AND i.in_cloud = 1) AS in_cloud
    FROM studies WHERE study_uid IN (SELECT value FROM json_each(?))`);
  const problems = db.prepare(`SELECT id, sop_instance_uid AS sopInstanceUid, destination, state, attempts, last_error AS lastError,
    failure_reason AS failureReason, updated_at AS updatedAt FROM outbox
    WHERE study_uid = ? AND state IN ('failed','conflict') ORDER BY updated_at DESC LIMIT 500`);
  const instanceTotal = db.prepare('SELECT COUNT(*) FROM instances WHERE study_uid = ?').pluck();
  const instancePage = db.prepare(`SELECT i.sop_instance_uid AS sopInstanceUid, i.series_uid AS seriesUid, s.series_number AS seriesNumber,
    i.instance_number AS instanceNumber,
    CASE WHEN i.local = 0 THEN 'cloud' WHEN i.in_cloud = 1 THEN 'both' ELSE 'local' END AS location
    FROM instances i LEFT JOIN series s ON s.series_uid = i.series_uid
    WHERE i.study_uid = ?
    ORDER BY EXISTS (SELECT 1 FROM outbox o WHERE o.sop_instance_uid = i.sop_instance_uid AND o.state IN ('failed','conflict')) DESC,
             s.series_number, i.series_uid, i.instance_number, i.sop_instance_uid
    LIMIT ? OFFSET ?`);
  const deliveriesOf = db.prepare(`SELECT sop_instance_uid AS sopInstanceUid, ${DELIVERY} FROM outbox
    WHERE sop_instance_uid IN (SELECT value FROM json_each(?)) ORDER BY destination`);

  return {
    studySync: (studyUids) => {
      if (studyUids.length === 0) return [];
      const progress = progressOf(studyUids);
      const rows = studies.all(JSON.stringify(studyUids)) as Array<{ study_uid: string; size_bytes: number; num_instances: number;
        num_local_instances: number; cloud_num_instances: number | null; pinned: number; in_cloud: number }>;
      const indexed = new Map(rows.map((row) => [row.study_uid, row]));
      return studyUids.map((studyUid) => {
        const counts = emptyCounts();
        const mine = new Map(progress.filter((p) => p.studyUid === studyUid).map((p) => [p.destination, p.counts]));
        const destinations = [...mine.keys()].sort().map((name) => {
          const its = mine.get(name)!;
          for (const state of OUTBOX_STATES) counts[state] += its[state];
          return { name, counts: its, state: syncState(its) };
        });
        const row = indexed.get(studyUid);
        return {
          studyUid, state: syncState(counts), destinations, sizeBytes: row?.size_bytes ?? 0,
          location: row ? locationOf(row) : null,
          numInstances: row ? Math.max(row.num_instances, row.cloud_num_instances ?? 0) : 0,
          numLocalInstances: row?.num_local_instances ?? 0,
          pinned: row?.pinned === 1,
        };
      });
    },
    studyProblems: (studyUid) => problems.all(studyUid) as StudyProblem[],
    instanceStates: (studyUid, { limit, offset }) => {
      const total = instanceTotal.get(studyUid) as number;
      const instances = instancePage.all(studyUid, limit, offset) as Array<Omit<InstanceState, 'destinations'>>;
      const deliveries = new Map<string, InstanceDelivery[]>();
      if (instances.length > 0) {
        for (const { sopInstanceUid, ...delivery } of deliveriesOf.all(JSON.stringify(instances.map((i) => i.sopInstanceUid))) as StudyProblem[]) {
          const list = deliveries.get(sopInstanceUid) ?? [];
          list.push(delivery);
          deliveries.set(sopInstanceUid, list);
        }
      }
      return { total, limit, offset, items: instances.map((i) => ({ ...i, destinations: deliveries.get(i.sopInstanceUid) ?? [] })) };
    },
  };
}

function syncState(counts: Record<OutboxState, number>): SyncState {
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  if (total === 0) return 'local-only';
  if (counts.failed + counts.conflict > 0) return 'failed';
  if (counts.pending + counts.sending > 0) return counts.delivered ? 'partial' : 'pending';
  if (counts.delivered === total) return 'synced';
  return counts.delivered > 0 ? 'synced-with-cancellations' : 'cancelled';
}

