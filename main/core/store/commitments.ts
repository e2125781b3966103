/**
 * Storage Commitment transactions in the index (PS3.4 Annex J): recorded when the N-ACTION arrives, decided
 * from what the index knows of each instance under the transaction's policy, and closed once the requesting
 * AE has taken the N-EVENT-REPORT. Rows survive restarts, so every transaction is reported after a crash too.
 */
import type { CommitmentPolicy } from '../contract/settings.js';
import { statementCache, type Db } from './database.js';

/** Failure Reason values (PS3.4 J.3.3.1.1); the same numbers as dicom/workflow-sop-classes.ts names. */
const NO_SUCH_OBJECT_INSTANCE = 0x0112;
const PROCESSING_FAILURE = 0x0110;
const CLASS_INSTANCE_CONFLICT = 0x0119;

export interface CommitmentItem {
  sopClassUid: string;
  sopInstanceUid: string;
}

export interface FailedCommitmentItem extends CommitmentItem {
  failureReason: number;
}

export interface CommitmentRequest {
  transactionUid: string;
  callingAe: string;
  policy: CommitmentPolicy;
  items: readonly CommitmentItem[];
  now: number;
  deadlineAt: number;
}

export interface OpenCommitment {
  transactionUid: string;
  callingAe: string;
  policy: CommitmentPolicy;
  receivedAt: number;
  deadlineAt: number;
  attempts: number;
  nextAttemptAt: number;
  lastError: string | null;
}

/** Where a transaction stands: `ready` once every instance is decided, or its time limit has passed. */
export interface CommitmentDecision {
  ready: boolean;
  committed: CommitmentItem[];
  failed: FailedCommitmentItem[];
  /** Instances still awaited (not here, or not yet delivered under the cloud policy). */
  waiting: number;
}

/** Open transactions of one calling AE, as the app lists them. */
export interface OpenCommitmentsOfAe {
  callingAe: string;
  transactions: number;
  instances: number;
  oldestReceivedAt: number;
}

interface ItemRow {
  sop_instance_uid: string;
  sop_class_uid: string;
  stored_class: string | null;
  local: number | null;
  file_missing: number | null;
  in_cloud: number | null;
  outbox_state: string | null;
}

const OPEN_COLUMNS = `transaction_uid AS transactionUid, calling_ae AS callingAe, policy, received_at AS receivedAt,
  deadline_at AS deadlineAt, attempts, next_attempt_at AS nextAttemptAt, last_error AS lastError`;

export class Commitments {
  private readonly prepared: ReturnType<typeof statementCache>;

  constructor(private readonly db: Db) {
    this.prepared = statementCache(db);
  }

  /**
   * Records a transaction and its instances in one commit. A Transaction UID seen before is 'duplicate' when
   * the same AE asked (a retried N-ACTION: it still gets one report), 'conflict' when another AE did.
   */
  record(request: CommitmentRequest): 'recorded' | 'duplicate' | 'conflict' {
    return this.db.transaction(() => {
      const existing = this.prepared('SELECT calling_ae FROM commitment_transactions WHERE transaction_uid = ?')
        .get(request.transactionUid) as { calling_ae: string } | undefined;
      if (existing) return existing.calling_ae === request.callingAe ? 'duplicate' : 'conflict';
      this.prepared(`INSERT INTO commitment_transactions (transaction_uid, calling_ae, policy, state, received_at, deadline_at)
        VALUES (?, ?, ?, 'pending', ?, ?)`).run(request.transactionUid, request.callingAe, request.policy, request.now, request.deadlineAt);
      const insert = this.prepared(`INSERT INTO commitment_items (transaction_uid, sop_instance_uid, sop_class_uid) VALUES (?, ?, ?)
        ON CONFLICT(transaction_uid, sop_instance_uid) DO NOTHING`);
      for (const item of request.items) insert.run(request.transactionUid, item.sopInstanceUid, item.sopClassUid);
      return 'recorded';
    })();
  }

  /** Open transactions whose next report attempt is due. */
  due(now: number): OpenCommitment[] {
    return this.prepared(`SELECT ${OPEN_COLUMNS} FROM commitment_transactions
      WHERE state = 'pending' AND next_attempt_at <= ? ORDER BY received_at`).all(now) as OpenCommitment[];
  }

  open(): OpenCommitment[] {
    return this.prepared(`SELECT ${OPEN_COLUMNS} FROM commitment_transactions WHERE state = 'pending' ORDER BY received_at`).all() as OpenCommitment[];
  }

  /** Open transactions per calling AE (the Cloud sync screen's "open commitments"). */
  openByCallingAe(): OpenCommitmentsOfAe[] {
    return this.prepared(`SELECT t.calling_ae AS callingAe, COUNT(DISTINCT t.transaction_uid) AS transactions,
        COUNT(i.sop_instance_uid) AS instances, MIN(t.received_at) AS oldestReceivedAt
      FROM commitment_transactions t JOIN commitment_items i ON i.transaction_uid = t.transaction_uid
      WHERE t.state = 'pending' GROUP BY t.calling_ae ORDER BY t.calling_ae`).all() as OpenCommitmentsOfAe[];
  }

  /**
   * Decides each instance of a transaction. `local`: committed once indexed here with its file (or held by
   * the archive after eviction). `cloud`: committed once the archive destination (`destination`) has it.
   * A class that differs from the stored one is 0119; a delivery the destination refused for good, or a file
   * lost, is 0110; past the time limit what is still awaited fails, 0112 when it never arrived.
   */
  decide(transactionUid: string, options: { destination: string | undefined; now: number }): CommitmentDecision | undefined {
    const transaction = this.prepared('SELECT policy, deadline_at FROM commitment_transactions WHERE transaction_uid = ?')
      .get(transactionUid) as { policy: CommitmentPolicy; deadline_at: number } | undefined;
    if (!transaction) return undefined;
    const expired = options.now >= transaction.deadline_at;
    const rows = this.prepared(`SELECT c.sop_instance_uid, c.sop_class_uid, i.sop_class_uid AS stored_class, i.local, i.file_missing,
        i.in_cloud, o.state AS outbox_state
      FROM commitment_items c
      LEFT JOIN instances i ON i.sop_instance_uid = c.sop_instance_uid
      LEFT JOIN outbox o ON o.sop_instance_uid = c.sop_instance_uid AND o.destination = ?
      WHERE c.transaction_uid = ? ORDER BY c.rowid`).all(options.destination ?? '', transactionUid) as ItemRow[];
    const decision: CommitmentDecision = { ready: false, committed: [], failed: [], waiting: 0 };
    for (const row of rows) {
      const item = { sopClassUid: row.sop_class_uid, sopInstanceUid: row.sop_instance_uid };
      const outcome = decideItem(row, transaction.policy);
      if (outcome === 'committed') decision.committed.push(item);
      else if (outcome !== 'waiting') decision.failed.push({ ...item, failureReason: outcome });
      else if (expired) decision.failed.push({ ...item, failureReason: row.stored_class === null ? NO_SUCH_OBJECT_INSTANCE : PROCESSING_FAILURE });
      else decision.waiting++;
    }
    decision.ready = decision.waiting === 0;
    return decision;
  }

  /** A report the requesting AE did not take; tried again from `nextAttemptAt`. */
  reportFailed(transactionUid: string, error: string, nextAttemptAt: number): void {
    this.prepared(`UPDATE commitment_transactions SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?
      WHERE transaction_uid = ? AND state = 'pending'`).run(error, nextAttemptAt, transactionUid);
  }

  /** Closes a transaction whose report was taken, with the outcome of each instance; false if it was closed already. */
  reported(transactionUid: string, outcome: { eventType: number; failed: readonly FailedCommitmentItem[]; now: number }): boolean {
    return this.db.transaction(() => {
      const changed = this.prepared(`UPDATE commitment_transactions SET state = 'reported', event_type = ?, reported_at = ?, last_error = NULL
        WHERE transaction_uid = ? AND state = 'pending'`).run(outcome.eventType, outcome.now, transactionUid).changes;
      if (changed === 0) return false;
      const mark = this.prepared('UPDATE commitment_items SET failure_reason = ? WHERE transaction_uid = ? AND sop_instance_uid = ?');
      for (const item of outcome.failed) mark.run(item.failureReason, transactionUid, item.sopInstanceUid);
      return true;
    })();
  }

  /** A closed transaction as it was reported, for tests and support. */
  reportOf(transactionUid: string): { state: string; eventType: number | null; failed: number } | undefined {
    return this.prepared(`SELECT state, event_type AS eventType,
        (SELECT COUNT(*) FROM commitment_items i WHERE i.transaction_uid = t.transaction_uid AND i.failure_reason IS NOT NULL) AS failed
      FROM commitment_transactions t WHERE transaction_uid = ?`).get(transactionUid) as { state: string; eventType: number | null; failed: number } | undefined;
  }
}

function decideItem(row: ItemRow, policy: CommitmentPolicy): 'committed' | 'waiting' | number {
  if (row.stored_class === null) return 'waiting';
  if (row.stored_class !== row.sop_class_uid) return CLASS_INSTANCE_CONFLICT;
  const durableHere = row.local === 1 && row.file_missing === 0;
  if (policy === 'local') return durableHere || row.in_cloud === 1 ? 'committed' : PROCESSING_FAILURE;
  if (row.in_cloud === 1 || row.outbox_state === 'delivered') return 'committed';
  if (row.outbox_state === 'failed' || row.outbox_state === 'conflict' || row.outbox_state === 'cancelled') return PROCESSING_FAILURE;
  return durableHere ? 'waiting' : PROCESSING_FAILURE;
}
