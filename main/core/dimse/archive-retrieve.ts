/**
 * C-MOVE and C-GET of what is only in the archive destination. The fetch of each scope the archive must
 * serve starts at once, and each instance is handed on as soon as its bytes are whole (the archive's own
 * bytes, while the read-through writes them through the durable ingest), or as it commits when another
 * reader's fetch is already bringing it or when it is too large to hold in memory. Meanwhile the archive is
 * asked for the list of what it holds of the scopes (joining the fetch's own listing), which gives the count
 * of sub-operations and the UIDs of those that never arrive.
 */
import type { Logger } from 'pino';
import { sniffSopUids } from '../dicom/header.js';
import type { LivePart, ReadThrough } from '../cloud/read-through.js';
import type { QueryLevel } from '../dicom/keywords.js';
import type { ArchiveReads } from '../store/read-models/archive-reads.js';
import type { InstanceScope } from '../store/instance-locations.js';
import type { Target } from './sub-operations.js';

/** What C-MOVE and C-GET need of the archive's read-through. */
export type CloudReads = Pick<ReadThrough, 'list' | 'stream' | 'needsArchive'>;

/** An instance ready to send: a local file, or its bytes as the archive sent them. */
export type Ready = Pick<Target, 'sopInstanceUid' | 'sopClassUid' | 'transferSyntaxUid'> & { path?: string; bytes?: Buffer };

/** What the fetches yield: an instance to send, or a scope whose fetch failed (its instances not yet sent fail). */
export type Arrival = { ready: Ready } | { failed: InstanceScope; reason: string };

/** Scopes fetched at once: a C-MOVE of many instances or studies does not wait on them one by one. */
const PARALLEL_SCOPES = 4;
/**
 * Bytes of whole instances received ahead of the sub-operations, at most: the fetch keeps reading while one
 * is being sent, and waits beyond this.
 */
const MAX_AHEAD_BYTES = 64 * 1024 * 1024;

/**
 * What a retrieve from the archive holds of one instance, at most. An instance that arrives no larger is
 * sent from its bytes as soon as they are whole; a larger one (multi-frame, whole-slide) is declined part-way
 * and sent from its file once committed, streamed as local instances are, so memory stays bounded whatever
 * the instance's size. A module option so tests can lower it; not a setting.
 */
export const archiveRetrieveLimits = { heldInstanceBytes: 32 * 1024 * 1024 };

/** Bytes of an instance's start read for its UIDs when it is declined. */
const SNIFF_BYTES = 64 * 1024;

const uidList = (value: string | undefined): string[] => (value ?? '').split('\\').map((v) => v.trim()).filter((v) => v !== '');

/** An instance is in the scope. */
export function inScope(scope: InstanceScope, target: Pick<Target, 'studyUid' | 'seriesUid' | 'sopInstanceUid'>): boolean {
  return target.studyUid === scope.studyUid
    && (scope.seriesUid === undefined || target.seriesUid === scope.seriesUid)
    && (scope.sopInstanceUid === undefined || target.sopInstanceUid === scope.sopInstanceUid);
}

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
 * know (a scope being fetched waits for its fetch's listing). Returns why it could not for the scopes it
 * could not (offline, refused); those keep what the index already knew of them.
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
 * The instances to send as they can be sent: `local` at once, then every instance of the `fromArchive`
 * scopes as it arrives (those here first, then the archive's, each as soon as its bytes are whole, or once
 * committed when it is larger than `archiveRetrieveLimits.heldInstanceBytes`). The
 * fetches start now, before the first value is read. A scope whose fetch fails comes as `failed`, after the
 * instances it did deliver. Ends early, without failures, when `signal` aborts.
 */
export function arrivals(
  local: readonly Ready[], fromArchive: readonly InstanceScope[], reads: CloudReads | undefined, absolute: (relative: string) => string,
  signal: AbortSignal, logger: Logger,
): AsyncIterable<Arrival> {
  const channel = new Channel<Arrival>(MAX_AHEAD_BYTES, (arrival) => ('ready' in arrival ? arrival.ready.bytes?.length ?? 0 : 0));
  for (const ready of local) void channel.push({ ready });
  if (fromArchive.length === 0 || !reads) {
    channel.end();
    return channel;
  }
  void eachLimited(fromArchive, async (scope) => {
    try {
      for await (const item of reads.stream(scope, { signal, accepts: () => true })) {
        if ('instance' in item) {
          const { instance } = item;
          await channel.push({ ready: { sopInstanceUid: instance.sopInstanceUid, sopClassUid: instance.sopClassUid,
            transferSyntaxUid: instance.transferSyntaxUid, path: absolute(instance.path) } });
          continue;
        }
        const held = await holdWhole(item.live, archiveRetrieveLimits.heldInstanceBytes);
        if ('declined' in held) {
          logger.info({ event: 'retrieve-archive-part-from-file', ...scope, ...sniffSopUids(held.declined), limitBytes: archiveRetrieveLimits.heldInstanceBytes },
            'an instance too large to hold is sent from its file once committed');
          continue;
        }
        const { bytes } = held;
        const { sopClassUid, sopInstanceUid } = sniffSopUids(bytes);
        if (!sopClassUid || !sopInstanceUid) {
          // The ingest refuses it too; should it be kept after all, the end of the retrieve sends it from here.
          logger.warn({ event: 'retrieve-archive-part-unreadable', ...scope }, 'a part the archive sent names no SOP instance');
          continue;
        }
        await channel.push({ ready: { sopInstanceUid, sopClassUid, transferSyntaxUid: item.live.transferSyntax, bytes } });
      }
    } catch (error) {
      if (signal.aborted) return;
      const reason = `fetch from the archive failed: ${(error as Error)?.message ?? String(error)}`;
      logger.warn({ event: 'retrieve-archive-fetch-failed', ...scope, reason }, 'the archive did not deliver all of this');
      await channel.push({ failed: scope, reason });
    }
  }).finally(() => channel.end());
  return channel;
}

/**
 * A live part's bytes, whole; or, once they pass `limit`, the part declined (it comes again committed) and
 * its first bytes, for the log.
 */
async function holdWhole(part: LivePart, limit: number): Promise<{ bytes: Buffer } | { declined: Buffer }> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of part.body) {
    if (size + chunk.length > limit) {
      part.decline();
      return { declined: Buffer.concat(chunks, Math.min(size, SNIFF_BYTES)) };
    }
    chunks.push(chunk);
    size += chunk.length;
  }
  return { bytes: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks) };
}

/** Runs `work` for each item, PARALLEL_SCOPES at a time. */
async function eachLimited<T>(items: readonly T[], work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < items.length) await work(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL_SCOPES, items.length) }, lane));
}

/**
 * Items pushed by several producers, read in the order they came by one consumer. A push resolves once the
 * items waiting weigh less than `maxWeight` (the first one always goes in), so producers slow down to the
 * consumer's pace.
 */
class Channel<T> implements AsyncIterable<T> {
  private readonly items: T[] = [];
  private weight = 0;
  private ended = false;
  private wake: (() => void) | undefined;
  private readonly roomWaiters: Array<() => void> = [];

  constructor(private readonly maxWeight: number, private readonly weigh: (item: T) => number) {}

  async push(item: T): Promise<void> {
    while (this.weight > 0 && this.weight >= this.maxWeight && !this.ended) await new Promise<void>((resolve) => this.roomWaiters.push(resolve));
    this.items.push(item);
    this.weight += this.weigh(item);
    this.wake?.();
  }

  end(): void {
    this.ended = true;
    this.wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<T> {
    try {
      for (;;) {
        while (this.items.length > 0) {
          const item = this.items.shift()!;
          this.weight -= this.weigh(item);
          this.roomWaiters.splice(0).forEach((wake) => wake());
          yield item;
        }
        if (this.ended) return;
        await new Promise<void>((resolve) => (this.wake = resolve));
        this.wake = undefined;
      }
    } finally {
      // The consumer left: producers waiting for room go on (and are stopped by the retrieve's signal).
      this.items.length = 0;
      this.weight = 0;
      this.ended = true;
      this.roomWaiters.splice(0).forEach((wake) => wake());
    }
  }
}
