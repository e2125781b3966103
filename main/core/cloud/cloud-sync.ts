/**
 * Background sync with the archive destination (settings: cloud.changeFeed): at start and every
 * pollIntervalMs it follows the archive's change feed, batch by batch, each batch applied with its cursor in
 * one transaction (Archive.applyCloudChanges), so the cursor survives restarts and SIGKILL and no entry is
 * applied twice or skipped. An archive without a change feed (Orthanc: 404) is polled by QIDO-RS instead:
 * studies with a StudyDate from a day before the last poll, kept as cloud rows; updates and deletes are not
 * seen that way. Studies the index did not know are handed to `onNewStudies` (prefetch rules).
 *
 * The first start begins at the end of the feed (or polls from yesterday): the index learns about new cloud
 * studies from then on; older ones are found by federated queries and prefetch. Offline or refused, it backs
 * off (one more interval each time, doubling, at most 10 minutes beyond the interval), logs once per outage
 * and resumes where its cursor is.
 */
import type { Logger } from 'pino';
import { jsonString, type ReceivedDicomJson } from '../dicom/dicom-json-values.js';
import { tagOf } from '../dicom/dictionary.js';
import { uidProblem } from '../dicom/uid.js';
import type { ApplianceService } from '../service.js';
import type { CloudSettings } from '../contract/settings.js';
import type { Archive, CloudChange } from '../store/archive.js';
import { ArchiveReadError } from './archive-errors.js';
import type { ArchiveReader } from './archive-reader.js';
import { FEED_START, type ChangeFeedCursor, type ChangeFeedEntry } from './change-feed.js';
import { daysBefore, decodePosition, dicomDate, encodePosition, type SyncPosition } from './sync-position.js';
import { RoundLoop, type RoundFailure } from './round-loop.js';

/** What sync reads of the archive (ArchiveReader, or a test's stand-in). */
export type ArchiveSyncSource = Pick<ArchiveReader, 'name' | 'changesSince' | 'latestChange' | 'search'>;

export interface CloudSyncOptions {
  archive: Pick<Archive, 'applyCloudChanges' | 'cloud'>;
  /**
   * The archive destination's reader, asked at each round (it changes with settings); undefined while no
   * destination is the archive. Its name (the destination's) keys the saved cursor.
   */
  reader: () => ArchiveSyncSource | undefined;
  /** Read at each round, so an edit applies at the next one. */
  settings: () => CloudSettings['changeFeed'];
  logger: Logger;
  /** Studies the index learned about from the archive (new cloud studies). */
  onNewStudies?: (studyUids: string[]) => void;
  /** Studies whose local copies were dropped because the archive updated them (a pinned one wants them back). */
  onCopiesDropped?: (studyUids: string[]) => void;
  /** Today, for the QIDO poll's dates; default the clock. */
  now?: () => Date;
}

export interface SyncRound {
  /** disabled: cloud.changeFeed.enabled is off, or no destination is the archive. */
  mode: 'feed' | 'qido-date' | 'disabled';
  /** Change-feed entries applied, or studies the poll returned. */
  applied: number;
  newStudies: string[];
}

/** Beyond the poll interval, a failing archive is tried again at most this much later. */
const MAX_BACKOFF_MS = 10 * 60_000;
const QIDO_STUDY_FIELDS = ['IssuerOfPatientID', 'ModalitiesInStudy', 'StudyDescription', 'NumberOfStudyRelatedSeries',
  'NumberOfStudyRelatedInstances', 'AccessionNumber'].map(tagOf);
const STUDY_INSTANCE_UID = tagOf('StudyInstanceUID');
const QIDO_PAGE = 200;
/** Longest wait for one request of a round; a round that needs more is cut and tried again later. */
const REQUEST_TIMEOUT_MS = 60_000;

export class CloudSync implements ApplianceService {
  readonly name = 'cloud-sync';
  private readonly log: Logger;
  private readonly loop: RoundLoop<SyncRound> = new RoundLoop({
    round: () => this.round(),
    reports: {
      failed: (failure) => this.failed(failure),
      resumed: ({ failures, offlineMs }) => {
        this.log.info({ event: 'cloud-sync-resumed', failedRounds: failures, offlineMs }, 'sync with the archive resumed');
      },
    },
    nextDelay: () => this.nextDelay(),
    stopReason: 'cloud sync stopped',
  });
  /** Whether this archive has a change feed, once known (asked again at each start). */
  private feedSupported: boolean | undefined;
  private lastReader: ArchiveSyncSource | undefined;

  constructor(private readonly options: CloudSyncOptions) {
    this.log = options.logger.child({ component: 'cloud-sync' });
  }

  async start(): Promise<string[]> {
    this.loop.start();
    return [];
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }

  /** One round now (or after the one running): the feed until caught up, or one poll. */
  syncOnce(): Promise<SyncRound> {
    return this.loop.runOnce();
  }

  /** One scheduled round: a failure is logged (once per outage) and counted for the backoff, never thrown. */
  tick(): Promise<SyncRound | undefined> {
    return this.loop.reportedRound();
  }

  /** Milliseconds until the next scheduled round: the interval, or longer while the archive fails. */
  nextDelay(): number {
    const interval = this.options.settings().pollIntervalMs;
    const failures = this.loop.failures;
    if (failures === 0) return interval;
    return Math.min(interval * 2 ** (failures - 1), interval + MAX_BACKOFF_MS);
  }

  /** Logged at the first failure of an outage, and again for a new reason unless the archive is just offline. */
  private failed({ error, reason, first, newReason }: RoundFailure): void {
    const kind = error instanceof ArchiveReadError ? error.kind : 'other';
    if (first) {
      this.log.warn({ event: 'cloud-sync-failed', kind, reason, retryInMs: this.nextDelay() }, 'sync with the archive failed; trying again later');
    } else if (newReason && kind !== 'offline') {
      this.log.warn({ event: 'cloud-sync-failed', kind, reason, retryInMs: this.nextDelay() }, 'sync with the archive still failing, for another reason');
    }
  }

  private async round(): Promise<SyncRound> {
    const settings = this.options.settings();
    const reader = this.options.reader();
    if (!settings.enabled || !reader) return { mode: 'disabled', applied: 0, newStudies: [] };
    if (reader !== this.lastReader) this.feedSupported = undefined; // another archive, or the same one anew
    this.lastReader = reader;
    const saved = this.options.archive.cloud.readCursor(reader.name);
    const position = saved ? decodePosition(saved.cursor) : undefined;
    if (this.feedSupported !== false) {
      const followed = await this.followFeed(reader, position?.kind === 'feed' ? position.cursor : undefined, settings.batchSize);
      if (followed) return followed;
    }
    return this.poll(reader, position);
  }

  /** The feed from `cursor` (from its end when there is none) until caught up; undefined without a feed. */
  private async followFeed(reader: ArchiveSyncSource, cursor: ChangeFeedCursor | undefined, batchSize: number): Promise<SyncRound | undefined> {
    const { archive } = this.options;
    const destination = reader.name;
    const log = this.log.child({ destination });
    const signal = this.loop.signal;
    if (cursor === undefined) {
      const latest = await reader.latestChange({ includeMetadata: false, timeoutMs: REQUEST_TIMEOUT_MS, signal });
      if (!latest.supported) return this.noFeed(reader, latest.status);
      const start: ChangeFeedCursor = latest.value
        ? { startTime: latest.value.timestamp, skip: 0, lastSequence: latest.value.sequence }
        : FEED_START;
      archive.cloud.saveCursor(destination, encodePosition({ kind: 'feed', cursor: start }));
      this.feedSupported = true;
      log.info({ event: 'change-feed-start', sequence: start.lastSequence }, 'following the archive change feed from its end');
      return { mode: 'feed', applied: 0, newStudies: [] };
    }
    const round: SyncRound = { mode: 'feed', applied: 0, newStudies: [] };
    for (;;) {
      if (signal.aborted) return round;
      const page = await reader.changesSince(cursor, { limit: batchSize, includeMetadata: true, timeoutMs: REQUEST_TIMEOUT_MS, signal });
      if (!page.supported) return this.noFeed(reader, page.status);
      this.feedSupported = true;
      const { entries, cursor: next, caughtUp } = page.value;
      const changes = this.changesOf(entries, log);
      const applied = await archive.applyCloudChanges(changes, () => archive.cloud.saveCursor(destination, encodePosition({ kind: 'feed', cursor: next })));
      const conflicts = applied.changes.filter((c) => c.outcome === 'conflict');
      for (const c of conflicts) {
        log.warn({ event: 'change-feed-conflict', action: c.action, studyUid: c.studyUid, sopInstanceUid: c.sopInstanceUid },
          'the archive changed an instance this site has not delivered yet; the local copy is kept');
      }
      if (entries.length > 0) {
        log.info({
          event: 'change-feed-applied', entries: entries.length, firstSequence: entries[0]!.sequence, lastSequence: next.lastSequence,
          refreshed: applied.changes.filter((c) => c.outcome === 'refreshed').length, removed: applied.changes.filter((c) => c.outcome === 'removed').length,
          conflicts: conflicts.length, newStudies: applied.newStudies.length,
        }, 'change-feed entries applied');
      }
      round.applied += changes.length;
      round.newStudies.push(...applied.newStudies);
      if (applied.newStudies.length > 0) this.options.onNewStudies?.(applied.newStudies);
      const dropped = [...new Set(applied.changes.filter((c) => c.outcome === 'refreshed').map((c) => c.studyUid))];
      if (dropped.length > 0) this.options.onCopiesDropped?.(dropped);
      cursor = next;
      if (caughtUp) return round;
    }
  }

  private noFeed(reader: ArchiveSyncSource, status: number): undefined {
    if (this.feedSupported !== false) {
      this.log.info({ event: 'change-feed-unsupported', destination: reader.name, status }, 'the archive has no change feed; polling it by study date instead');
    }
    this.feedSupported = false;
    return undefined;
  }

  /** Entries of this archive's space with usable UIDs; others are logged and passed over (the cursor moves on). */
  private changesOf(entries: readonly ChangeFeedEntry[], log: Logger): CloudChange[] {
    const changes: CloudChange[] = [];
    for (const entry of entries) {
      // The service-wide feed names entries of other partitions; our archive is the one in the base URL.
      if (entry.partitionName !== undefined) continue;
      const problem = [entry.studyInstanceUid, entry.seriesInstanceUid, entry.sopInstanceUid].map((uid) => uidProblem(uid)).find(Boolean);
      if (problem) {
        log.warn({ event: 'change-feed-entry-skipped', sequence: entry.sequence, sopInstanceUid: entry.sopInstanceUid, reason: problem },
          'change-feed entry with an unusable UID passed over');
        continue;
      }
      changes.push({
        action: entry.action, studyUid: entry.studyInstanceUid, seriesUid: entry.seriesInstanceUid, sopInstanceUid: entry.sopInstanceUid,
        ...(entry.metadata ? { metadata: entry.metadata } : {}),
      });
    }
    return changes;
  }

  /** QIDO-RS by StudyDate from a day before the last poll (yesterday at first); the poll's date is saved with its rows. */
  private async poll(reader: ArchiveSyncSource, position: SyncPosition | undefined): Promise<SyncRound> {
    const { archive } = this.options;
    const destination = reader.name;
    const today = dicomDate(this.options.now?.() ?? new Date());
    const from = daysBefore(position?.kind === 'qido-date' ? position.polledOn : today, 1);
    const studies = await reader.search({
      level: 'study', match: { StudyDate: `${from}-` }, includeFields: QIDO_STUDY_FIELDS, pageSize: QIDO_PAGE,
      timeoutMs: REQUEST_TIMEOUT_MS, signal: this.loop.signal,
    });
    const newStudies = archive.cloud.transaction(() => {
      const unknown = uniqueStudyUids(studies).filter((uid) => archive.cloud.studyLocation(uid) === undefined);
      archive.cloud.upsert('study', studies);
      archive.cloud.saveCursor(destination, encodePosition({ kind: 'qido-date', polledOn: today }));
      return unknown.filter((uid) => archive.cloud.studyLocation(uid) !== undefined);
    });
    this.log.info({ event: 'qido-poll', destination, from, studies: studies.length, newStudies: newStudies.length }, 'archive polled by study date');
    if (newStudies.length > 0) this.options.onNewStudies?.(newStudies);
    return { mode: 'qido-date', applied: studies.length, newStudies };
  }
}

function uniqueStudyUids(datasets: readonly ReceivedDicomJson[]): string[] {
  return [...new Set(datasets.map((d) => jsonString(d, STUDY_INSTANCE_UID)).filter((uid) => uid !== ''))];
}
