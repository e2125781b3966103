/**
 * UPS-RS Change State requests for cloud worklist items (PS3.18 11.7), queued durably in the transaction in
 * which MPPS moved the item and sent by cloud/ups-state-sync.ts. The claim (IN PROGRESS) carries a new
 * Transaction UID, kept on the item; COMPLETED and CANCELED carry the same one. Changes of one workitem go
 * out in the order they were queued.
 */
import type { WorklistItem } from '../contract/api/worklist.js';
import { statementCache, type Db } from './database.js';
import { generatedUid } from './worklist.js';

export type UpsTargetState = 'IN PROGRESS' | 'COMPLETED' | 'CANCELED';

export interface UpsStateChange {
  id: number;
  worklistItemId: number;
  workitemUid: string;
  destination: string;
  targetState: UpsTargetState;
  transactionUid: string;
  state: 'queued' | 'done' | 'failed';
  attempts: number;
  nextAttemptAt: number;
  lastError: string | null;
  createdAt: number;
  updatedAt: number;
}

const COLUMNS = `id, worklist_item_id AS worklistItemId, workitem_uid AS workitemUid, destination, target_state AS targetState,
  transaction_uid AS transactionUid, state, attempts, next_attempt_at AS nextAttemptAt, last_error AS lastError,
  created_at AS createdAt, updated_at AS updatedAt`;

export class UpsStateChanges {
  private readonly prepared: ReturnType<typeof statementCache>;

  constructor(private readonly db: Db) {
    this.prepared = statementCache(db);
  }

  /**
   * Queues the change for a cloud item that moved to `itemState` (call inside the transaction that moved
   * it); nothing for a local item. A claim makes the Transaction UID; a final state without a claim before
   * it (the item was never IN PROGRESS here) queues the claim first.
   */
  queueFor(item: WorklistItem, itemState: WorklistItem['state'], now: number): UpsStateChange[] {
    if (item.source !== 'cloud') return [];
    const target: UpsTargetState | undefined =
      itemState === 'IN PROGRESS' ? 'IN PROGRESS' : itemState === 'COMPLETED' ? 'COMPLETED' : itemState === 'DISCONTINUED' ? 'CANCELED' : undefined;
    if (!target) return [];
    const { transactionUid, destination } = this.prepared('SELECT transaction_uid AS transactionUid, workitem_destination AS destination FROM worklist_items WHERE id = ?')
      .get(item.id) as { transactionUid: string; destination: string };
    const queued: UpsStateChange[] = [];
    let claim = transactionUid;
    if (claim === '') {
      claim = generatedUid();
      this.prepared('UPDATE worklist_items SET transaction_uid = ? WHERE id = ?').run(claim, item.id);
      queued.push(this.insert(item, destination, 'IN PROGRESS', claim, now));
    }
    if (target !== 'IN PROGRESS') queued.push(this.insert(item, destination, target, claim, now));
    return queued;
  }

  /** Queued changes due by `now`, each the oldest queued one of its workitem (so a completion never overtakes its claim). */
  due(now: number, limit = 20): UpsStateChange[] {
    return this.prepared(`SELECT ${COLUMNS} FROM ups_state_changes AS c WHERE state = 'queued' AND next_attempt_at <= ?
        AND NOT EXISTS (SELECT 1 FROM ups_state_changes AS e WHERE e.workitem_uid = c.workitem_uid AND e.state = 'queued' AND e.id < c.id)
        ORDER BY next_attempt_at, id LIMIT ?`).all(now, limit) as UpsStateChange[];
  }

  /** When the next queued change is due; undefined when none is queued. */
  nextDueAt(): number | undefined {
    const row = this.prepared("SELECT MIN(next_attempt_at) AS at FROM ups_state_changes WHERE state = 'queued'").get() as { at: number | null };
    return row.at ?? undefined;
  }

  done(id: number, now: number): void {
    this.prepared("UPDATE ups_state_changes SET state = 'done', attempts = attempts + 1, last_error = NULL, updated_at = ? WHERE id = ? AND state = 'queued'")
      .run(now, id);
  }

  /** Not taken now (offline, 5xx): tried again at `nextAttemptAt`. */
  retryLater(id: number, reason: string, nextAttemptAt: number, now: number): void {
    this.prepared("UPDATE ups_state_changes SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?, updated_at = ? WHERE id = ? AND state = 'queued'")
      .run(reason, nextAttemptAt, now, id);
  }

  /** Refused: never sent again, nor the changes of the same workitem queued after it (they carry its Transaction UID). */
  failed(id: number, reason: string, now: number): UpsStateChange[] {
    return this.db.transaction(() => {
      const change = this.get(id);
      if (!change || change.state !== 'queued') return [];
      this.prepared("UPDATE ups_state_changes SET state = 'failed', attempts = attempts + 1, last_error = ?, updated_at = ? WHERE id = ?").run(reason, now, id);
      const later = this.prepared(`SELECT ${COLUMNS} FROM ups_state_changes WHERE workitem_uid = ? AND state = 'queued' AND id > ? ORDER BY id`)
        .all(change.workitemUid, id) as UpsStateChange[];
      this.prepared("UPDATE ups_state_changes SET state = 'failed', last_error = ?, updated_at = ? WHERE workitem_uid = ? AND state = 'queued' AND id > ?")
        .run(`not sent: the earlier ${change.targetState} change of this workitem was refused`, now, change.workitemUid, id);
      return later;
    })();
  }

  get(id: number): UpsStateChange | undefined {
    return this.prepared(`SELECT ${COLUMNS} FROM ups_state_changes WHERE id = ?`).get(id) as UpsStateChange | undefined;
  }

  /** Every change of a workitem, or all, in queue order. */
  list(workitemUid?: string): UpsStateChange[] {
    return workitemUid === undefined
      ? this.prepared(`SELECT ${COLUMNS} FROM ups_state_changes ORDER BY id`).all() as UpsStateChange[]
      : this.prepared(`SELECT ${COLUMNS} FROM ups_state_changes WHERE workitem_uid = ? ORDER BY id`).all(workitemUid) as UpsStateChange[];
  }

  /** A change after one the archive refused is recorded as failed at once: it would carry a Transaction UID the archive never took. */
  private insert(item: WorklistItem, destination: string, target: UpsTargetState, transactionUid: string, now: number): UpsStateChange {
    const refused = this.prepared("SELECT target_state AS targetState FROM ups_state_changes WHERE workitem_uid = ? AND state = 'failed' ORDER BY id LIMIT 1")
      .get(item.workitemUid) as { targetState: string } | undefined;
    const info = this.prepared(`INSERT INTO ups_state_changes (worklist_item_id, workitem_uid, destination, target_state, transaction_uid, state,
        last_error, next_attempt_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?)`)
      .run(item.id, item.workitemUid, destination, target, transactionUid, refused ? 'failed' : 'queued',
        refused ? `not sent: the earlier ${refused.targetState} change of this workitem was refused` : null, now, now);
    return this.get(Number(info.lastInsertRowid))!;
  }
}
