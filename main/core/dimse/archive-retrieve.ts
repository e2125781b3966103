/**
 * C-MOVE and C-GET of what is only in the archive destination. Before anything is counted, the index is
 * made to list the archive's instances of what the identifier names (so the first pending response has the
 * right number of remaining sub-operations); then each instance is handed on as soon as it can be sent:
 * those here at once, those in the archive as the read-through commits them, while the rest still arrives.
 */
import type { Logger } from 'pino';
import type { ReadThrough } from '../cloud/read-through.js';
import type { QueryLevel } from '../dicom/keywords.js';
import type { ArchiveReads } from '../store/read-models/archive-reads.js';
import type { InstanceScope } from '../store/instance-locations.js';
import type { Target } from './sub-operations.js';

/** What C-MOVE and C-GET need of the archive's read-through: the list of a scope, and its instances as they arrive. */
export type CloudReads = Pick<ReadThrough, 'list' | 'retrieve'>;

/** A sub-operation's instance, ready to send (with what its file says), or why it cannot be. */
export type Arrival =
  | { target: Target; ready: { path: string; sopClassUid: string; transferSyntaxUid: string } }
  | { target: Target; failure: string };

/** Scopes fetched at once: a C-MOVE of many instances or studies does not wait on them one by one. */
const PARALLEL_SCOPES = 4;

const uidList = (value: string | undefined): string[] => (value ?? '').split('\\').map((v) => v.trim()).filter((v) => v !== '');

/**
 * The studies, series or instances (by the retrieve level) that a retrieve identifier names: those the
 * index matches, and those named by UID that it does not know yet (the archive may).
 */
export function retrieveScopes(index: Pick<ArchiveReads, 'query'>, level: QueryLevel, keys: Record<string, string>): InstanceScope[] {
  const scopes = new Map<string, InstanceScope>();
  const add = (uid: string, scope: InstanceScope) => {
    if (!scopes.has(uid)) scopes.set(uid, scope);
  };
  for (const match of index.query({ level: level === 'PATIENT' ? 'STUDY' : level, keys })) {
    const studyUid = String(match.StudyInstanceUID);
    if (level === 'SERIES') add(String(match.SeriesInstanceUID), { studyUid, seriesUid: String(match.SeriesInstanceUID) });
    else if (level === 'IMAGE') add(String(match.SOPInstanceUID), { studyUid, seriesUid: String(match.SeriesInstanceUID), sopInstanceUid: String(match.SOPInstanceUID) });
    else add(studyUid, { studyUid });
  }
  const studies = uidList(keys.StudyInstanceUID);
  const series = uidList(keys.SeriesInstanceUID);
  if (level === 'STUDY') for (const studyUid of studies) add(studyUid, { studyUid });
  // Lower levels name their study by a single UID (PS3.4 C.4.2.1.4.1: the unique keys of the levels above).
  if (studies.length === 1) {
    const studyUid = studies[0]!;
    if (level === 'SERIES') for (const seriesUid of series) add(seriesUid, { studyUid, seriesUid });
    if (level === 'IMAGE') {
      for (const sopInstanceUid of uidList(keys.SOPInstanceUID)) {
        add(sopInstanceUid, { studyUid, ...(series.length === 1 ? { seriesUid: series[0] } : {}), sopInstanceUid });
      }
    }
  }
  return [...scopes.values()];
}

/**
 * Asks the archive, through the read-through, for the instances of each scope the index does not fully
 * know. Returns why it could not for the scopes it could not (offline, refused); those keep what the index
 * already knew of them.
 */
export async function listAtArchive(
  reads: CloudReads, scopes: readonly InstanceScope[], signal: AbortSignal, logger: Logger,
): Promise<string[]> {
  const failures: string[] = [];
  await eachLimited(scopes, async (scope) => {
    try {
      await reads.list(scope, { signal });
    } catch (error) {
      if (signal.aborted) return;
      const reason = (error as Error)?.message ?? String(error);
      failures.push(reason);
      logger.warn({ event: 'retrieve-archive-list-failed', ...scope, reason }, 'could not ask the archive what it holds of this');
    }
  });
  return failures;
}

/**
 * Every target once, as it can be sent: those here first, then those only in the archive as each one
 * arrives. A target the archive does not deliver (its fetch failed, or it no longer has it) comes with
 * the reason. Ends early, without failures, when `signal` aborts.
 */
export async function* arrivals(
  targets: readonly Target[], level: QueryLevel, reads: CloudReads | undefined, absolute: (relative: string) => string,
  signal: AbortSignal, logger: Logger,
): AsyncGenerator<Arrival> {
  const fromArchive: Target[] = [];
  for (const target of targets) {
    if (target.cloudOnly && reads) fromArchive.push(target);
    else yield { target, ready: { path: target.path ?? '', sopClassUid: target.sopClassUid, transferSyntaxUid: target.transferSyntaxUid } };
  }
  if (fromArchive.length === 0 || !reads) return;
  const groups = fetchGroups(fromArchive, level);
  const channel = new Channel<Arrival>();
  void eachLimited([...groups.values()], async ({ scope, wanted }) => {
    let reason = 'the archive did not send it';
    try {
      for await (const instance of reads.retrieve(scope, { signal })) {
        const target = wanted.get(instance.sopInstanceUid);
        if (!target) continue;
        wanted.delete(instance.sopInstanceUid);
        channel.push({ target, ready: { path: absolute(instance.path), sopClassUid: instance.sopClassUid, transferSyntaxUid: instance.transferSyntaxUid } });
      }
    } catch (error) {
      if (signal.aborted) return;
      reason = `fetch from the archive failed: ${(error as Error)?.message ?? String(error)}`;
    }
    if (wanted.size > 0) {
      logger.warn({ event: 'retrieve-archive-fetch-failed', ...scope, instances: wanted.size, reason }, 'instances the archive did not deliver');
    }
    for (const target of wanted.values()) channel.push({ target, failure: reason });
  }).finally(() => channel.end());
  yield* channel;
}

/** What to fetch: one scope per study, series or instance, as the retrieve asked. */
function fetchGroups(targets: readonly Target[], level: QueryLevel): Map<string, { scope: InstanceScope; wanted: Map<string, Target> }> {
  const groups = new Map<string, { scope: InstanceScope; wanted: Map<string, Target> }>();
  for (const target of targets) {
    const scope: InstanceScope =
      level === 'IMAGE' ? { studyUid: target.studyUid, seriesUid: target.seriesUid, sopInstanceUid: target.sopInstanceUid }
      : level === 'SERIES' ? { studyUid: target.studyUid, seriesUid: target.seriesUid }
      : { studyUid: target.studyUid };
    const key = scope.sopInstanceUid ?? scope.seriesUid ?? scope.studyUid;
    let group = groups.get(key);
    if (!group) groups.set(key, (group = { scope, wanted: new Map() }));
    group.wanted.set(target.sopInstanceUid, target);
  }
  return groups;
}

/** Runs `work` for each item, PARALLEL_SCOPES at a time. */
async function eachLimited<T>(items: readonly T[], work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < items.length) await work(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL_SCOPES, items.length) }, lane));
}

/** Items pushed by several producers, read in the order they came by one consumer. */
class Channel<T> implements AsyncIterable<T> {
  private readonly items: T[] = [];
  private ended = false;
  private wake: (() => void) | undefined;

  push(item: T): void {
    this.items.push(item);
    this.wake?.();
  }

  end(): void {
    this.ended = true;
    this.wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<T> {
    for (;;) {
      while (this.items.length > 0) yield this.items.shift()!;
      if (this.ended) return;
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = undefined;
    }
  }
}
