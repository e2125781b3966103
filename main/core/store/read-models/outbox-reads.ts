/**
 * What the rooms above read of the outbox: the queue per destination and state, and single entries.
 * Named queries, prepared once, answering in camelCase. Rows are queued by ingest (outbox.ts) and worked
 * by forward/ (outbox-worker-queries.ts).
 */
import type { Db } from '../database.js';
import type { OutboxState } from '../events.js';
import { OUTBOX_STATES } from './study-progress.js';
import type { InstanceScope } from './index-reads.js';

export interface Tally {
  count: number;
  bytes: number;
}

/** Outbox rows of one destination ('*': queued while no destination was configured) in one state. */
export interface OutboxCount extends Tally {
  destination: string;
  state: OutboxState;
}

/** The queue of one destination. */
export interface DestinationQueue {
  destination: string;
  counts: Record<OutboxState, Tally>;
  /** Rows delivered since the time asked about. */
  deliveredSince: Tally;
  /** The newest error recorded on any of its rows, and when. */
  lastError: { message: string; at: number } | null;
}

export interface OutboxSummary {
  totals: Record<OutboxState, Tally>;
  /** By name; every destination asked about, and every one with rows. */
  destinations: DestinationQueue[];
}

/** One outbox row: an instance on its way to one destination. */
export interface OutboxEntry {
  id: number;
  sopInstanceUid: string;
  studyUid: string;
  destination: string;
  state: OutboxState;
  /** 0: first copy; 1: replaced an earlier local copy; 2: a user chose overwrite (sent with PUT). */
  replacesEarlier: number;
  attempts: number;
  nextAttemptAt: number;
  lastError: string | null;
  failureReason: number | null;
  warningReason: number | null;
  sizeBytes: number;
  createdAt: number;
  updatedAt: number;
}

export interface OutboxReads {
  /** Rows per destination and state, with their bytes. */
  outboxCounts(): OutboxCount[];
  /** The queue of each destination: `names` (configured or running ones) and every destination with rows. */
  outboxSummary(deliveredSince: number, names: Iterable<string>): OutboxSummary;
  /** Whether any outbox row names this destination. */
  outboxHasDestination(destination: string): boolean;
  outboxEntry(id: number): OutboxEntry | undefined;
  /** Uploads of a scope's instances not yet delivered or cancelled. */
  uploadsWaiting(scope: InstanceScope): number;
}

export const OUTBOX_ENTRY = `id, sop_instance_uid AS sopInstanceUid, study_uid AS studyUid, destination, state,
  replaces_earlier AS replacesEarlier, attempts, next_attempt_at AS nextAttemptAt, last_error AS lastError,
  failure_reason AS failureReason, warning_reason AS warningReason, size_bytes AS sizeBytes, created_at AS createdAt,
  updated_at AS updatedAt`;

const emptyTallies = (): Record<OutboxState, Tally> =>
  Object.fromEntries(OUTBOX_STATES.map((state) => [state, { count: 0, bytes: 0 }])) as Record<OutboxState, Tally>;

export function outboxReads(db: Db): OutboxReads {
  const counts = db.prepare('SELECT destination, state, COUNT(*) AS count, COALESCE(SUM(size_bytes),0) AS bytes FROM outbox GROUP BY destination, state');
  const delivered = db.prepare(`SELECT destination, COUNT(*) AS count, COALESCE(SUM(size_bytes),0) AS bytes FROM outbox
    WHERE state = 'delivered' AND updated_at >= ? GROUP BY destination`);
  const lastErrors = db.prepare(`SELECT o.destination, o.last_error AS message, o.updated_at AS at FROM outbox o
    JOIN (SELECT destination, MAX(updated_at) AS at FROM outbox WHERE last_error IS NOT NULL GROUP BY destination) m
    ON m.destination = o.destination AND m.at = o.updated_at WHERE o.last_error IS NOT NULL`);
  const anyRow = db.prepare('SELECT 1 FROM outbox WHERE destination = ? LIMIT 1').pluck();
  const entry = db.prepare(`SELECT ${OUTBOX_ENTRY} FROM outbox WHERE id = ?`);
  const waiting = (instances: string) =>
    db.prepare(`SELECT COUNT(*) FROM outbox WHERE state NOT IN ('delivered','cancelled') AND sop_instance_uid IN
      (SELECT sop_instance_uid FROM instances WHERE ${instances})`).pluck();
  const waitingOfInstance = waiting('sop_instance_uid = ? AND series_uid = ? AND study_uid = ?');
  const waitingOfSeries = waiting('series_uid = ? AND study_uid = ?');
  const waitingOfStudy = waiting('study_uid = ?');

  const outboxCounts = () => counts.all() as OutboxCount[];
  return {
    outboxCounts,
    outboxSummary: (deliveredSince, names) => {
      const totals = emptyTallies();
      const queues = new Map<string, DestinationQueue>();
      const queue = (destination: string) => {
        let found = queues.get(destination);
        if (!found) queues.set(destination, (found = { destination, counts: emptyTallies(), deliveredSince: { count: 0, bytes: 0 }, lastError: null }));
        return found;
      };
      for (const name of names) queue(name);
      for (const row of outboxCounts()) {
        queue(row.destination).counts[row.state] = { count: row.count, bytes: row.bytes };
        totals[row.state].count += row.count;
        totals[row.state].bytes += row.bytes;
      }
      for (const row of delivered.all(deliveredSince) as Array<Tally & { destination: string }>) {
        queue(row.destination).deliveredSince = { count: row.count, bytes: row.bytes };
      }
      // Two rows may share the newest time; the first one found speaks for the destination.
      for (const row of lastErrors.all() as Array<{ destination: string; message: string; at: number }>) {
        const found = queue(row.destination);
        found.lastError ??= { message: row.message, at: row.at };
      }
      return { totals, destinations: [...queues.keys()].sort().map((name) => queues.get(name)!) };
    },
    outboxHasDestination: (destination) => anyRow.get(destination) !== undefined,
    outboxEntry: (id) => entry.get(id) as OutboxEntry | undefined,
    uploadsWaiting: (scope) => (scope.instance
      ? waitingOfInstance.get(scope.instance, scope.series, scope.study)
      : scope.series ? waitingOfSeries.get(scope.series, scope.study) : waitingOfStudy.get(scope.study)) as number,
  };
}

