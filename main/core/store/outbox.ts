import type { Db } from './database.js';
import type { OutboxState } from './events.js';
import { UNROUTED_DESTINATION } from './index-writer.js';

export interface OutboxRow {
  id: number;
  sop_instance_uid: string;
  study_uid: string;
  destination: string;
  state: OutboxState;
  replaces_earlier: number;
  attempts: number;
  next_attempt_at: number;
  last_error: string | null;
  failure_reason: number | null;
  warning_reason: number | null;
  size_bytes: number;
  created_at: number;
  updated_at: number;
}

/** The queue of instances to forward, one row per instance and destination. */
export class Outbox {
  private readonly enqueueStatement;
  private readonly dropUnroutedStatement;

  constructor(private readonly db: Db) {
    this.dropUnroutedStatement = db.prepare('DELETE FROM outbox WHERE sop_instance_uid = ? AND destination = ?');
    this.enqueueStatement = db.prepare(`
      INSERT INTO outbox (sop_instance_uid, study_uid, destination, state, replaces_earlier, size_bytes, created_at, updated_at)
      VALUES (@sopInstanceUid, @studyUid, @destination, 'pending', @replacesEarlier, @sizeBytes, @now, @now)
      ON CONFLICT(sop_instance_uid, destination) DO UPDATE SET
        study_uid = excluded.study_uid, state = 'pending', replaces_earlier = excluded.replaces_earlier,
        attempts = 0, next_attempt_at = 0, last_error = NULL, failure_reason = NULL, warning_reason = NULL,
        size_bytes = excluded.size_bytes, updated_at = excluded.updated_at`);
  }

  /** Queues an instance for each destination; with none configured it waits under '*'. */
  enqueue(entry: { sopInstanceUid: string; studyUid: string; sizeBytes: number; replacesEarlier: boolean; now: number }, destinations: string[]): string[] {
    const targets = destinations.length > 0 ? destinations : [UNROUTED_DESTINATION];
    if (destinations.length > 0) {
      this.dropUnroutedStatement.run(entry.sopInstanceUid, UNROUTED_DESTINATION);
    }
    for (const destination of targets) {
      this.enqueueStatement.run({ ...entry, destination, replacesEarlier: entry.replacesEarlier ? 1 : 0 });
    }
    return targets;
  }

  rowsFor(sopInstanceUid: string): OutboxRow[] {
    return this.db.prepare('SELECT * FROM outbox WHERE sop_instance_uid = ? ORDER BY destination').all(sopInstanceUid) as OutboxRow[];
  }
}
