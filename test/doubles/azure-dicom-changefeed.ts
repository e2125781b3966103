// Change feed of the Azure DICOM double (v2 API), after the service's change-feed overview:
// GET …/changefeed?startTime=&endTime=&offset=&limit=&includeMetadata= answers a JSON array of entries in
// time order; startTime is inclusive, endTime exclusive, offset counts entries of that window to skip,
// limit is 1..200 (default 100) and includeMetadata defaults to true. GET …/changefeed/latest answers the
// last entry, or 204 when there is none. Each entry has Sequence, StudyInstanceUid, SeriesInstanceUid,
// SopInstanceUid, Action (create, update, delete), Timestamp, State (current, replaced, deleted) and, while
// the instance exists, its current Metadata.
//
// Where the documentation leaves room, the double chooses: a PUT that replaces an instance is an 'update';
// under /partitions/{name} the feed holds that partition's changes only, while the feed at the service root
// holds every partition's, each entry outside the default partition naming it in PartitionName.
import { problem, type Exchange } from './azure-dicom-exchange.js';
import { DEFAULT_PARTITION, type ChangeRecord, type InstanceStore } from './azure-dicom-store.js';
import { instanceMetadata } from './dicom-metadata.js';

export interface ChangeFeedEntryJson {
  Sequence: number;
  PartitionName?: string;
  StudyInstanceUid: string;
  SeriesInstanceUid: string;
  SopInstanceUid: string;
  Action: 'create' | 'update' | 'delete';
  Timestamp: string;
  State: 'current' | 'replaced' | 'deleted';
  Metadata?: Record<string, unknown>;
}

/** `partition` undefined: the service-wide feed (request at /v2/changefeed). */
export function handleChangeFeed(ex: Exchange, store: InstanceStore, params: URLSearchParams, latest: boolean, partition: string | undefined): void {
  const param = caseInsensitive(params);
  const includeMetadata = param('includeMetadata');
  if (includeMetadata !== undefined && !/^(true|false)$/i.test(includeMetadata)) {
    return ex.reply(400, problem('BadRequest', `The value '${includeMetadata}' is not valid for includeMetadata.`));
  }
  const withMetadata = includeMetadata === undefined || includeMetadata.toLowerCase() === 'true';
  const scoped = store.changes.filter((c) => partition === undefined || c.partition === partition);
  if (latest) {
    const last = scoped.at(-1);
    if (!last) return ex.reply(204);
    return ex.reply(200, entryJson(last, store, withMetadata, partition === undefined), {}, 'application/json; charset=utf-8');
  }
  const offset = param('offset') === undefined ? 0 : Number(param('offset'));
  const limit = param('limit') === undefined ? 100 : Number(param('limit'));
  if (!Number.isSafeInteger(offset) || offset < 0) return ex.reply(400, problem('BadRequest', `The offset '${param('offset')}' must be 0 or more.`));
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > 200) {
    return ex.reply(400, problem('BadRequest', `The limit '${param('limit')}' must be between 1 and 200.`));
  }
  const start = param('startTime') === undefined ? -Infinity : Date.parse(param('startTime')!);
  const end = param('endTime') === undefined ? Infinity : Date.parse(param('endTime')!);
  if (Number.isNaN(start) || Number.isNaN(end)) return ex.reply(400, problem('BadRequest', 'startTime and endTime must be date-times.'));
  if (start >= end) return ex.reply(400, problem('BadRequest', 'startTime must be before endTime.'));
  const window = scoped
    .filter((c) => c.timestamp.getTime() >= start && c.timestamp.getTime() < end)
    .sort((a, b) => a.timestamp.getTime() - b.timestamp.getTime() || a.sequence - b.sequence);
  const page = window.slice(offset, offset + limit).map((c) => entryJson(c, store, withMetadata, partition === undefined));
  ex.reply(200, page, {}, 'application/json; charset=utf-8');
}

function entryJson(record: ChangeRecord, store: InstanceStore, withMetadata: boolean, serviceWide: boolean): ChangeFeedEntryJson {
  const current = store.get(record.partition, record.sopUid);
  const state = !current ? 'deleted' : current.watermark === record.watermark ? 'current' : 'replaced';
  return {
    Sequence: record.sequence,
    ...(serviceWide && record.partition !== DEFAULT_PARTITION ? { PartitionName: record.partition } : {}),
    StudyInstanceUid: record.studyUid,
    SeriesInstanceUid: record.seriesUid,
    SopInstanceUid: record.sopUid,
    Action: record.action,
    Timestamp: record.timestamp.toISOString(),
    State: state,
    ...(withMetadata && current ? { Metadata: instanceMetadata(current.bytes) } : {}),
  };
}

function caseInsensitive(params: URLSearchParams): (name: string) => string | undefined {
  const byName = new Map<string, string>();
  for (const [name, value] of params) byName.set(name.toLowerCase(), value);
  return (name) => byName.get(name.toLowerCase());
}
