/**
 * The outbox as forward/ works it: claim batches, record outcomes, retry/cancel/overwrite, counts and
 * per-study progress. Every state change of a claimed row is guarded by `state = 'sending'`, so a row that
 * was re-queued by a newer ingest, or cancelled, while its request was in flight keeps its new state.
 *
 * replaces_earlier: 0 = first copy; 1 = the local copy replaced an earlier one (45070 means conflict);
 * 2 = a user chose "overwrite" (or upsert applies): send with PUT.
 */
import type { Statement } from 'better-sqlite3';
import { commitWithoutSync, statementCache, type Db } from './database.js';
import type { OutboxState } from './events.js';
import { UNROUTED_DESTINATION } from './index-writer.js';
import { emptyCounts, studyProgressQuery, type StudyProgress } from './read-models/study-progress.js';

export const REPLACES_EARLIER = { no: 0, yes: 1, overwrite: 2 } as const;

export interface ClaimedRow {
  id: number;
  sop_instance_uid: string;
  study_uid: string;
  series_uid: string;
  sop_class_uid: string;
  destination: string;
  replaces_earlier: number;
  attempts: number;
  size_bytes: number;
  path: string | null;
  file_missing: number | null;
}

export interface RowFilter {
  destination?: string;
  studyUid?: string;
  sopInstanceUid?: string;
}

export interface UnroutedInstance {
  sopInstanceUid: string;
  studyUid: string;
  seriesUid: string;
  modality: string;
  callingAe: string;
  sopClassUid: string;
  sizeBytes: number;
  replacesEarlier: number;
}

function where(filter: RowFilter, states: readonly OutboxState[]): { sql: string; params: unknown[] } {
  const clauses = [`state IN (${states.map(() => '?').join(',')})`, `destination <> '${UNROUTED_DESTINATION}'`];
  const params: unknown[] = [...states];
  if (filter.destination) { clauses.push('destination = ?'); params.push(filter.destination); }
  if (filter.studyUid) { clauses.push('study_uid = ?'); params.push(filter.studyUid); }
  if (filter.sopInstanceUid) { clauses.push('sop_instance_uid = ?'); params.push(filter.sopInstanceUid); }
  return { sql: clauses.join(' AND '), params };
}

export class OutboxWorkerQueries {
  private readonly prepared: (sql: string) => Statement;

  private readonly studyProgress: (studyUids: readonly string[]) => StudyProgress[];

  constructor(private readonly db: Db) {
    this.prepared = statementCache(db);
    this.studyProgress = studyProgressQuery(db);
  }

  /**
   * Runs outbox updates as one transaction without waiting for fsync. Safe here, and only here: losing a
   * claim or an outcome to power loss just sends the instance again (and 45070 absorbs it); the next
   * durable commit (an ingest) syncs these too, in order. better-sqlite3 is synchronous, so no ingest
   * can commit while the setting is relaxed.
   */
  inTransaction<T>(work: () => T): T {
    return commitWithoutSync(this.db, work);
  }

  /** Rows left in 'sending' by a crash or shutdown: no response said anything, so they are pending again. */
  resetInterrupted(): number {
    return this.db.prepare("UPDATE outbox SET state = 'pending', updated_at = ? WHERE state = 'sending'").run(Date.now()).changes;
  }

  /** Rows queued while no destination was configured, with what the route filter needs. */
  unrouted(limit = 1000, afterId = 0): Array<UnroutedInstance & { id: number }> {
    return this.db.prepare(`
      SELECT o.id, o.sop_instance_uid AS sopInstanceUid, o.study_uid AS studyUid, i.series_uid AS seriesUid,
             COALESCE(s.modality, '') AS modality, i.calling_ae AS callingAe, i.sop_class_uid AS sopClassUid,
             o.size_bytes AS sizeBytes, o.replaces_earlier AS replacesEarlier
      FROM outbox o JOIN instances i ON i.sop_instance_uid = o.sop_instance_uid
      LEFT JOIN series s ON s.series_uid = i.series_uid
      WHERE o.destination = ? AND o.state = 'pending' AND o.id > ? ORDER BY o.id LIMIT ?`)
      .all(UNROUTED_DESTINATION, afterId, limit) as Array<UnroutedInstance & { id: number }>;
  }

  /** Moves one '*' row to its real destinations (in one transaction with the caller's other moves). */
  assign(rows: ReadonlyArray<{ id: number; destinations: string[] } & UnroutedInstance>, now: number): void {
    const insert = this.db.prepare(`
      INSERT INTO outbox (sop_instance_uid, study_uid, destination, state, replaces_earlier, size_bytes, created_at, updated_at)
      SELECT sop_instance_uid, study_uid, ?, 'pending', replaces_earlier, size_bytes, created_at, ? FROM outbox WHERE id = ?
      ON CONFLICT(sop_instance_uid, destination) DO NOTHING`);
    const remove = this.db.prepare('DELETE FROM outbox WHERE id = ?');
    this.db.transaction(() => {
      for (const row of rows) {
        if (row.destinations.length === 0) continue;
        for (const destination of row.destinations) insert.run(destination, now, row.id);
        remove.run(row.id);
      }
    })();
  }

  /** The study whose oldest due row is oldest (or, with newest, the study of the newest due row). */
  pickStudy(destination: string, now: number, newest: boolean): string | undefined {
    const row = this.prepared(`
      SELECT study_uid FROM outbox WHERE destination = ? AND state = 'pending' AND next_attempt_at <= ?
      ORDER BY created_at ${newest ? 'DESC' : 'ASC'}, id ${newest ? 'DESC' : 'ASC'} LIMIT 1`).get(destination, now) as { study_uid: string } | undefined;
    return row?.study_uid;
  }

  /**
   * Claims up to maxCount due rows of one study (at least one, at most maxBytes unless a single row is larger):
   * they become 'sending' and their attempts go up by one.
   */
  claim(destination: string, studyUid: string, now: number, maxCount: number, maxBytes: number): ClaimedRow[] {
    return this.inTransaction(() => {
      const candidates = this.prepared(`
        SELECT o.id, o.sop_instance_uid, o.study_uid, COALESCE(i.series_uid, '') AS series_uid,
               COALESCE(i.sop_class_uid, '') AS sop_class_uid, o.destination, o.replaces_earlier, o.attempts,
               COALESCE(i.size_bytes, o.size_bytes) AS size_bytes, i.path, i.file_missing
        FROM outbox o LEFT JOIN instances i ON i.sop_instance_uid = o.sop_instance_uid
        WHERE o.destination = ? AND o.study_uid = ? AND o.state = 'pending' AND o.next_attempt_at <= ?
        ORDER BY o.created_at, o.id LIMIT ?`).all(destination, studyUid, now, maxCount) as ClaimedRow[];
      const chosen: ClaimedRow[] = [];
      let bytes = 0;
      for (const row of candidates) {
        if (chosen.length > 0 && bytes + row.size_bytes > maxBytes) break;
        chosen.push(row);
        bytes += row.size_bytes;
      }
      const mark = this.prepared("UPDATE outbox SET state = 'sending', attempts = attempts + 1, updated_at = ? WHERE id = ?");
      for (const row of chosen) {
        mark.run(now, row.id);
        row.attempts += 1;
      }
      return chosen;
    });
  }

  delivered(id: number, warningReason: number | null, now: number): boolean {
    return this.prepared(`
      UPDATE outbox SET state = 'delivered', warning_reason = ?, failure_reason = NULL, last_error = NULL, updated_at = ?
      WHERE id = ? AND state = 'sending'`).run(warningReason, now, id).changes > 0;
  }

  failed(id: number, failureReason: number | null, message: string, now: number): boolean {
    return this.prepared(`
      UPDATE outbox SET state = 'failed', failure_reason = ?, last_error = ?, updated_at = ?
      WHERE id = ? AND state = 'sending'`).run(failureReason, message, now, id).changes > 0;
  }

  conflict(id: number, message: string, now: number): boolean {
    return this.prepared(`
      UPDATE outbox SET state = 'conflict', failure_reason = 45070, last_error = ?, updated_at = ?
      WHERE id = ? AND state = 'sending'`).run(message, now, id).changes > 0;
  }

  /** Back to pending, due at nextAttemptAt; `message`/`failureReason` are kept as the last error. */
  release(id: number, nextAttemptAt: number, now: number, message: string | null = null, failureReason: number | null = null, options: { refundAttempt?: boolean; replacesEarlier?: number } = {}): boolean {
    return this.prepared(`
      UPDATE outbox SET state = 'pending', next_attempt_at = ?, last_error = COALESCE(?, last_error),
        failure_reason = COALESCE(?, failure_reason), attempts = attempts - ?, replaces_earlier = COALESCE(?, replaces_earlier), updated_at = ?
      WHERE id = ? AND state = 'sending'`)
      .run(nextAttemptAt, message, failureReason, options.refundAttempt ? 1 : 0, options.replacesEarlier ?? null, now, id).changes > 0;
  }

  /** Earliest next_attempt_at among pending rows of a destination (undefined when none). */
  nextDue(destination: string): number | undefined {
    const row = this.prepared("SELECT MIN(next_attempt_at) AS due FROM outbox WHERE destination = ? AND state = 'pending'").get(destination) as { due: number | null };
    return row.due ?? undefined;
  }

  /** All due pending rows of a destination become due at `at` (the destination went offline). */
  postponeAll(destination: string, at: number): void {
    this.prepared("UPDATE outbox SET next_attempt_at = ? WHERE destination = ? AND state = 'pending' AND next_attempt_at < ?").run(at, destination, at);
  }

  /** Makes every pending row of a destination due now (it came back online, or a user resumed it). */
  makeDueNow(destination: string, now: number): void {
    this.prepared("UPDATE outbox SET next_attempt_at = ? WHERE destination = ? AND state = 'pending' AND next_attempt_at > ?").run(now, destination, now);
  }

  counts(destination: string): { counts: Record<OutboxState, number>; pendingBytes: number } {
    const counts = emptyCounts();
    let pendingBytes = 0;
    const rows = this.prepared('SELECT state, COUNT(*) AS n, COALESCE(SUM(size_bytes),0) AS bytes FROM outbox WHERE destination = ? GROUP BY state')
      .all(destination) as Array<{ state: OutboxState; n: number; bytes: number }>;
    for (const row of rows) {
      counts[row.state] = row.n;
      if (row.state === 'pending' || row.state === 'sending') pendingBytes += row.bytes;
    }
    return { counts, pendingBytes };
  }

  /** failed/conflict/cancelled → pending, due now, attempts and errors reset. */
  retry(filter: RowFilter, now: number): Array<{ destination: string; study_uid: string; sop_instance_uid: string }> {
    return this.transition(filter, ['failed', 'conflict', 'cancelled'],
      "state = 'pending', attempts = 0, next_attempt_at = ?, last_error = NULL, failure_reason = NULL, updated_at = ?", [now, now]);
  }

  /** conflict → pending with PUT. */
  overwrite(filter: RowFilter, now: number): Array<{ destination: string; study_uid: string; sop_instance_uid: string }> {
    return this.transition(filter, ['conflict'],
      `state = 'pending', replaces_earlier = ${REPLACES_EARLIER.overwrite}, attempts = 0, next_attempt_at = ?, last_error = NULL, failure_reason = NULL, updated_at = ?`, [now, now]);
  }

  /** pending/sending/failed/conflict → cancelled (a row in flight keeps 'cancelled' when its answer comes). */
  cancel(filter: RowFilter, now: number): Array<{ destination: string; study_uid: string; sop_instance_uid: string }> {
    return this.transition(filter, ['pending', 'sending', 'failed', 'conflict'], "state = 'cancelled', updated_at = ?", [now]);
  }

  private transition(filter: RowFilter, from: readonly OutboxState[], set: string, setParams: unknown[]) {
    const { sql, params } = where(filter, from);
    return this.db.transaction(() => {
      const rows = this.db.prepare(`SELECT id, destination, study_uid, sop_instance_uid FROM outbox WHERE ${sql}`).all(...params) as Array<{ id: number; destination: string; study_uid: string; sop_instance_uid: string }>;
      const update = this.db.prepare(`UPDATE outbox SET ${set} WHERE id = ?`);
      for (const row of rows) update.run(...setParams, row.id);
      return rows;
    })();
  }

  /** Rows of a study not yet settled for a destination (pending or sending). */
  openRowsOfStudy(destination: string, studyUid: string): number {
    return (this.db.prepare("SELECT COUNT(*) AS n FROM outbox WHERE destination = ? AND study_uid = ? AND state IN ('pending','sending')")
      .get(destination, studyUid) as { n: number }).n;
  }

  deliveredOfStudy(destination: string, studyUid: string): string[] {
    return (this.db.prepare("SELECT sop_instance_uid FROM outbox WHERE destination = ? AND study_uid = ? AND state = 'delivered'")
      .all(destination, studyUid) as Array<{ sop_instance_uid: string }>).map((r) => r.sop_instance_uid);
  }

  /** delivered → pending for instances the destination turned out not to have. */
  requeue(destination: string, sopInstanceUids: readonly string[], now: number): number {
    const update = this.db.prepare(`
      UPDATE outbox SET state = 'pending', next_attempt_at = ?, last_error = 'missing on the destination after delivery', updated_at = ?
      WHERE destination = ? AND sop_instance_uid = ? AND state = 'delivered'`);
    return this.db.transaction(() => sopInstanceUids.reduce((n, uid) => n + update.run(now, now, destination, uid).changes, 0))();
  }

  /** Per-study progress to one destination (or each), newest study first; rows waiting for a destination ('*') left out. */
  progress(filter: { destination?: string; studyUid?: string; limit?: number }): StudyProgress[] {
    const clauses = [`destination <> '${UNROUTED_DESTINATION}'`];
    const params: unknown[] = [];
    if (filter.destination) { clauses.push('destination = ?'); params.push(filter.destination); }
    if (filter.studyUid) { clauses.push('study_uid = ?'); params.push(filter.studyUid); }
    const pairs = this.db.prepare(`
      SELECT study_uid, destination FROM outbox WHERE ${clauses.join(' AND ')}
      GROUP BY study_uid, destination ORDER BY MAX(created_at) DESC LIMIT ?`).all(...params, filter.limit ?? 100) as Array<{ study_uid: string; destination: string }>;
    const progress = new Map(this.studyProgress([...new Set(pairs.map((p) => p.study_uid))]).map((p) => [`${p.studyUid}\u0000${p.destination}`, p]));
    return pairs.map((p) => progress.get(`${p.study_uid}\u0000${p.destination}`)!);
  }
}
