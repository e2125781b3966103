/**
 * How far each study has gone to each destination: outbox rows counted per study, destination and state.
 * The one derivation of it, for forward/'s progress and web/'s study sync.
 */
import type { Db } from '../database.js';
import type { OutboxState } from '../events.js';

/** Every outbox state, in the order counts of them are listed. */
export const OUTBOX_STATES: readonly OutboxState[] = ['pending', 'sending', 'delivered', 'failed', 'conflict', 'cancelled'];

/** A count for every outbox state, all 0, in the order the states go. */
export function emptyCounts(): Record<OutboxState, number> {
  return Object.fromEntries(OUTBOX_STATES.map((s) => [s, 0])) as Record<OutboxState, number>;
}

/** Progress of one study to one destination ('*': queued while no destination was configured). */
export interface StudyProgress {
  studyUid: string;
  destination: string;
  counts: Record<OutboxState, number>;
  totalBytes: number;
  deliveredBytes: number;
}

/** The progress of the given studies, one entry per study and destination that has outbox rows. */
export function studyProgressQuery(db: Db): (studyUids: readonly string[]) => StudyProgress[] {
  const rows = db.prepare(`
    SELECT study_uid AS studyUid, destination, state, COUNT(*) AS count, COALESCE(SUM(size_bytes),0) AS bytes FROM outbox
    WHERE study_uid IN (SELECT value FROM json_each(?)) GROUP BY study_uid, destination, state`);
  return (studyUids) => {
    if (studyUids.length === 0) return [];
    const byPair = new Map<string, StudyProgress>();
    for (const row of rows.all(JSON.stringify(studyUids)) as Array<{ studyUid: string; destination: string; state: OutboxState; count: number; bytes: number }>) {
      const key = `${row.studyUid}\u0000${row.destination}`;
      let entry = byPair.get(key);
      if (!entry) {
        entry = { studyUid: row.studyUid, destination: row.destination, counts: emptyCounts(), totalBytes: 0, deliveredBytes: 0 };
        byPair.set(key, entry);
      }
      entry.counts[row.state] = row.count;
      entry.totalBytes += row.bytes;
      if (row.state === 'delivered') entry.deliveredBytes += row.bytes;
    }
    return [...byPair.values()];
  };
}
