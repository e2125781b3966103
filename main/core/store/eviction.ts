import type { Logger } from 'pino';
import type { Db } from './database.js';

/** What eviction needs of the archive: its index to pick candidates, and the one way to remove an instance. */
export interface EvictableArchive {
  readonly db: Db;
  removeInstance(sopInstanceUid: string): Promise<boolean>;
}

/**
 * Frees at least `neededBytes` by removing instances of the oldest studies that every destination has
 * confirmed. An instance with any outbox row not 'delivered' (or with no destination yet) is never evicted.
 * Returns the bytes freed.
 */
export async function evictDelivered(archive: EvictableArchive, neededBytes: number, logger: Logger): Promise<number> {
  const candidates = archive.db
    .prepare(`
      SELECT i.sop_instance_uid AS uid, i.size_bytes AS size, i.study_uid AS study
      FROM instances i JOIN studies s ON s.study_uid = i.study_uid
      WHERE EXISTS (SELECT 1 FROM outbox o WHERE o.sop_instance_uid = i.sop_instance_uid)
        AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.sop_instance_uid = i.sop_instance_uid
                        AND (o.state <> 'delivered' OR o.destination = '*'))
      ORDER BY s.received_at, i.study_uid, i.series_uid, i.instance_number
      LIMIT 10000`)
    .all() as Array<{ uid: string; size: number; study: string }>;
  let freed = 0;
  for (const candidate of candidates) {
    if (freed >= Math.max(neededBytes, 1)) break;
    if (await archive.removeInstance(candidate.uid)) {
      freed += candidate.size;
      logger.info({ event: 'evicted', sopInstanceUid: candidate.uid, studyUid: candidate.study, sizeBytes: candidate.size }, 'delivered instance evicted');
    }
  }
  return freed;
}
