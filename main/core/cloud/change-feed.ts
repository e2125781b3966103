/**
 * The archive's change feed, after the Azure DICOM service v2 (change-feed overview): GET {base}/changefeed
 * with startTime (inclusive), endTime (exclusive), offset (entries of that window to skip), limit (1..200)
 * and includeMetadata, in time order; GET {base}/changefeed/latest. A base URL with /partitions/{name}
 * reads that partition's feed. An archive without one (Orthanc: 404) is reported as unsupported, not as a
 * failure, so a poller can fall back to QIDO by date.
 */
import type { ReceivedDicomJson } from '../dicom/dicom-json-values.js';
import { ArchiveReadError } from './archive-errors.js';
import { Deadline, type ArchiveClient } from './archive-client.js';

export type ChangeAction = 'create' | 'update' | 'delete';
export type ChangeState = 'current' | 'replaced' | 'deleted';

export interface ChangeFeedEntry {
  sequence: number;
  /** Named by the service-wide feed for entries outside the default partition. */
  partitionName?: string;
  studyInstanceUid: string;
  seriesInstanceUid: string;
  sopInstanceUid: string;
  action: ChangeAction;
  /** As the archive wrote it (ISO 8601, UTC); kept as text so its full precision can be sent back as startTime. */
  timestamp: string;
  /** What the instance is now: this version (current), a later one (replaced), or gone (deleted). */
  state: ChangeState;
  /** The instance's current DICOM JSON, when asked for and it exists. */
  metadata?: ReceivedDicomJson;
}

export interface ChangeFeedQuery {
  offset?: number;
  /** 1..200; the service's default is 100. */
  limit?: number;
  startTime?: string;
  endTime?: string;
  /** Default true (the service's default). */
  includeMetadata?: boolean;
  timeoutMs?: number;
  signal?: AbortSignal;
}

export type ChangeFeedAnswer<T> = { supported: true; value: T } | { supported: false; status: number; reason: string };

/** Statuses that mean "no change feed here" (the route does not exist), not "the feed failed". */
const UNSUPPORTED = new Set([404, 405, 501]);

/** One page of the feed, or unsupported. Other failures reject with an ArchiveReadError. */
export async function readChangeFeed(client: ArchiveClient, query: ChangeFeedQuery = {}): Promise<ChangeFeedAnswer<ChangeFeedEntry[]>> {
  const params = new URLSearchParams();
  if (query.startTime !== undefined) params.set('startTime', query.startTime);
  if (query.endTime !== undefined) params.set('endTime', query.endTime);
  if (query.offset !== undefined) params.set('offset', String(query.offset));
  if (query.limit !== undefined) params.set('limit', String(query.limit));
  if (query.includeMetadata !== undefined) params.set('includeMetadata', String(query.includeMetadata));
  const url = client.url('/changefeed', params);
  const answer = await getFeed(client, url, 'change feed', query);
  if (!answer.supported) return answer;
  const parsed = answer.value;
  if (parsed === undefined) return { supported: true, value: [] };
  if (!Array.isArray(parsed)) throw malformed(url, 'the answer is not a JSON array');
  return { supported: true, value: parsed.map((item, index) => toEntry(item, url, index)) };
}

/** The feed's last entry (undefined when the feed is empty), or unsupported. */
export async function latestChange(client: ArchiveClient, query: Pick<ChangeFeedQuery, 'includeMetadata' | 'timeoutMs' | 'signal'> = {}): Promise<ChangeFeedAnswer<ChangeFeedEntry | undefined>> {
  const params = new URLSearchParams();
  if (query.includeMetadata !== undefined) params.set('includeMetadata', String(query.includeMetadata));
  const url = client.url('/changefeed/latest', params);
  const answer = await getFeed(client, url, 'latest change-feed entry', query);
  if (!answer.supported) return answer;
  return { supported: true, value: answer.value === undefined || answer.value === null ? undefined : toEntry(answer.value, url, 0) };
}

async function getFeed(client: ArchiveClient, url: string, what: string, query: Pick<ChangeFeedQuery, 'timeoutMs' | 'signal'>): Promise<ChangeFeedAnswer<unknown>> {
  const deadline = new Deadline(query.timeoutMs, query.signal);
  try {
    const response = await client.get(url, 'application/json', what, deadline);
    if (UNSUPPORTED.has(response.status)) {
      const failure = await client.failure(response, what);
      return { supported: false, status: response.status, reason: failure.message };
    }
    if (response.status === 204) {
      await response.body.dump();
      return { supported: true, value: undefined };
    }
    if (response.status !== 200) throw await client.failure(response, what);
    const text = await client.text(response, what, deadline);
    if (text.trim() === '') return { supported: true, value: undefined };
    try {
      return { supported: true, value: JSON.parse(text) as unknown };
    } catch (error) {
      throw malformed(url, `the answer is not JSON (${(error as Error).message})`);
    }
  } finally {
    deadline.clear();
  }
}

function malformed(url: string, problem: string): ArchiveReadError {
  return new ArchiveReadError('other', `change feed at ${url}: ${problem}`, { url, status: 200, retryable: false });
}

const ACTIONS: readonly ChangeAction[] = ['create', 'update', 'delete'];
const STATES: readonly ChangeState[] = ['current', 'replaced', 'deleted'];

/** Field names as the service writes them (PascalCase); other casings are accepted too. */
function toEntry(item: unknown, url: string, index: number): ChangeFeedEntry {
  if (item === null || typeof item !== 'object' || Array.isArray(item)) throw malformed(url, `entry ${index} is not an object`);
  const fields = new Map(Object.entries(item as Record<string, unknown>).map(([k, v]) => [k.toLowerCase(), v]));
  const text = (name: string): string => {
    const value = fields.get(name.toLowerCase());
    if (typeof value !== 'string' || value === '') throw malformed(url, `entry ${index} has no ${name}`);
    return value;
  };
  const sequence = fields.get('sequence');
  if (typeof sequence !== 'number' || !Number.isSafeInteger(sequence)) throw malformed(url, `entry ${index} has no integer Sequence`);
  const action = text('Action').toLowerCase() as ChangeAction;
  if (!ACTIONS.includes(action)) throw malformed(url, `entry ${index} has the unknown Action ${JSON.stringify(text('Action'))}`);
  const state = text('State').toLowerCase() as ChangeState;
  if (!STATES.includes(state)) throw malformed(url, `entry ${index} has the unknown State ${JSON.stringify(text('State'))}`);
  const timestamp = text('Timestamp');
  if (Number.isNaN(Date.parse(timestamp))) throw malformed(url, `entry ${index} has the Timestamp ${JSON.stringify(timestamp)}, not a date-time`);
  const metadata = fields.get('metadata');
  const partition = fields.get('partitionname');
  return {
    sequence,
    ...(typeof partition === 'string' && partition !== '' ? { partitionName: partition } : {}),
    studyInstanceUid: text('StudyInstanceUid'),
    seriesInstanceUid: text('SeriesInstanceUid'),
    sopInstanceUid: text('SopInstanceUid'),
    action,
    timestamp,
    state,
    ...(metadata !== null && typeof metadata === 'object' && !Array.isArray(metadata) ? { metadata: metadata as ReceivedDicomJson } : {}),
  };
}

// ---- following the feed --------------------------------------------------------------------

/**
 * Where a reader of the feed is: the Timestamp of the last entry it handled (as sent, full precision), how many
 * handled entries carry exactly that Timestamp, and the last Sequence. v2 pages by offset within a time window,
 * so the next read starts at that Timestamp (inclusive) and skips the entries already handled there.
 */
export interface ChangeFeedCursor {
  startTime?: string;
  skip: number;
  lastSequence: number;
}

export const FEED_START: ChangeFeedCursor = { startTime: undefined, skip: 0, lastSequence: 0 };

/** The cursor as text, for CloudIndex.saveCursor. */
export function encodeCursor(cursor: ChangeFeedCursor): string {
  return JSON.stringify({ v: 2, ...cursor });
}

/** A cursor saved by encodeCursor; a text that is not one is an error (never silently the start of the feed). */
export function decodeCursor(text: string): ChangeFeedCursor {
  let value: Record<string, unknown>;
  try {
    value = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new RangeError(`the change-feed cursor ${JSON.stringify(text.slice(0, 80))} is not JSON`);
  }
  const { v, startTime, skip, lastSequence } = value;
  if (v !== 2 || (startTime !== undefined && typeof startTime !== 'string') || !Number.isSafeInteger(skip) || !Number.isSafeInteger(lastSequence)) {
    throw new RangeError(`the change-feed cursor ${JSON.stringify(text.slice(0, 80))} is not a version-2 cursor`);
  }
  return { startTime: startTime as string | undefined, skip: skip as number, lastSequence: lastSequence as number };
}

/**
 * The next entries after `cursor` (at most `limit`), and the cursor after them. Fewer than `limit` entries
 * means the reader has caught up. Entries the archive sends again (same Timestamp, Sequence already handled)
 * are left out.
 */
export async function readChangesSince(
  client: ArchiveClient,
  cursor: ChangeFeedCursor,
  options: { limit: number; includeMetadata?: boolean; timeoutMs?: number; signal?: AbortSignal },
): Promise<ChangeFeedAnswer<{ entries: ChangeFeedEntry[]; cursor: ChangeFeedCursor; caughtUp: boolean }>> {
  const page = await readChangeFeed(client, {
    startTime: cursor.startTime, offset: cursor.skip, limit: options.limit,
    includeMetadata: options.includeMetadata, timeoutMs: options.timeoutMs, signal: options.signal,
  });
  if (!page.supported) return page;
  const fresh = page.value.filter((e) => !(e.timestamp === cursor.startTime && e.sequence <= cursor.lastSequence));
  let next = cursor;
  for (const entry of page.value) {
    next = entry.timestamp === next.startTime
      ? { startTime: next.startTime, skip: next.skip + 1, lastSequence: Math.max(next.lastSequence, entry.sequence) }
      : { startTime: entry.timestamp, skip: 1, lastSequence: Math.max(next.lastSequence, entry.sequence) };
  }
  return { supported: true, value: { entries: fresh, cursor: next, caughtUp: page.value.length < options.limit } };
}
