import { InstanceLocations } from './instance-locations.js';
import { randomUUID } from 'node:crypto';
import { mkdir, rename, rm, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';
import { DicomParseError, parseInstanceHeader, type InstanceHeader } from '../dicom/header.js';
import { InvalidUidError, uidProblem } from '../dicom/uid.js';
import { commitWithoutSync, openDatabase, walFile, type Db } from './database.js';
import { CannotUnderstandError, IngestError, MismatchError, OutOfResourcesError, StudyMismatchError } from './errors.js';
import { ArchiveEvents } from './events.js';
import { IndexWriter, type ExistingInstance, type IngestOrigin, type StoredFile } from './index-writer.js';
import { KeyedLock } from './keyed-lock.js';
import { Outbox } from './outbox.js';
import { OutboxWorkerQueries } from './outbox-worker-queries.js';
import { archiveReads, type ArchiveReads } from './read-models/archive-reads.js';
import { CloudIndex } from './cloud-index.js';
import { CloudChangeRows, type AppliedCloudChanges, type CloudChange } from './cloud-changes.js';
import { Commitments } from './commitments.js';
import { Worklist } from './worklist.js';
import { MppsSteps } from './mpps.js';
import { CloudWorklist } from './cloud-worklist.js';
import { UpsStateChanges } from './ups-state-changes.js';
import { PrefetchJobs } from './prefetch-jobs.js';
import { ArchivePaths } from './paths.js';
import { checkRoom, FreeSpaceGauge, freeBytes, roomShortfall, type Incoming, type QuotaLimits } from './quota.js';
import { readInstanceHeader } from './header-reader.js';
import { headPrefixes, spoolToTempFile, TEMP_SUFFIX, type SpooledFile, type SpoolSource } from './temp-file.js';
import { recoverArchive, type RecoveryReport } from './recovery.js';
import { Replacements } from './replacements.js';
import { readWithoutWriting, type UnwrittenInstance } from './unwritten.js';
import { evictDelivered } from './eviction.js';
import { CommitNotDurableError, GroupCommitter, type CommitTicket } from './group-commit.js';
import { DirectorySync, WalSync } from './coalesced-sync.js';
import { InstanceMetadataRows, type StoredMetadata } from './instance-metadata.js';
import { IngestThread, type IngestWork } from './ingest-thread.js';

export type IngestSource = SpoolSource;
export type { IngestOrigin };
export type { AppliedCloudChanges, CloudChange, CloudChangeOutcome } from './cloud-changes.js';

export interface IngestContext {
  /** Calling AE title for DIMSE, or a label such as 'STOW-RS' for HTTP. */
  callingAe: string;
  /** Peer address, for the log. */
  peer: string;
  /** What the sender declared; a differing dataset is refused. */
  expect?: { sopClassUid?: string; sopInstanceUid?: string; studyInstanceUid?: string };
  /**
   * 'cloud': fetched from the archive destination. It is never queued for forwarding and is marked as held by
   * the archive; a local copy already here is kept (outcome 'duplicate'), so a fetch never replaces local data.
   * Default 'local'.
   */
  origin?: IngestOrigin;
  /**
   * The file is renamed into place and indexed only once this settles, and not at all if it rejects (the
   * ingest then fails with its reason): for rows that must be written first, such as the archive's cloud
   * rows, which make a file whose commit a crash cuts short recover as the archive's copy.
   */
  commitAfter?: Promise<unknown>;
}

export type IngestOutcome = 'stored' | 'replaced' | 'duplicate';

export interface IngestResult {
  outcome: IngestOutcome;
  header: InstanceHeader;
  sizeBytes: number;
  sha256: string;
  relativePath: string;
}

/**
 * New bytes for an instance that is already stored, received and checked but not yet in place: the
 * stored instance stays exactly as it was until `commit()`; `drop()` forgets the new bytes. Exactly one
 * of them is called.
 */
export interface HeldReplacement extends Omit<IngestResult, 'outcome'> {
  outcome: 'held';
  /** Replaces the stored instance, as `ingest` would have; resolves once that is durable and indexed. */
  commit(): Promise<IngestResult>;
  drop(): Promise<void>;
}

export interface InstanceInfo {
  sopInstanceUid: string;
  seriesUid: string;
  studyUid: string;
  modality: string;
  callingAe: string;
  sopClassUid: string;
}

export interface ArchiveOptions {
  dataDir: string;
  limits: QuotaLimits & { evictDelivered: boolean };
  logger: Logger;
  /** Which destinations an instance is queued for. Empty: none configured, it waits under '*'. */
  route?: (instance: InstanceInfo) => string[];
  /**
   * How the free space of the archive's filesystem is measured (default: statfs, at most every 250 ms);
   * tests give a disk of their own.
   */
  disk?: { free: (dir: string) => Promise<number>; maxAgeMs?: number };
  /** Where each instance's DICOM JSON (and a fetched one's hash) is made (default: the ingest thread); tests give one of their own. */
  ingestWork?: IngestWork;
}

/**
 * The archive: original bytes on disk plus the SQLite index and outbox. Every way in (DIMSE, STOW-RS)
 * calls `ingest`; nothing is acknowledged before the file is fsynced, renamed into place and the
 * index and outbox rows are committed together.
 */
export class Archive {
  readonly paths: ArchivePaths;
  readonly events = new ArchiveEvents();
  /** Every read the rooms above make of the index and outbox; no SQL runs outside store/. */
  readonly reads: ArchiveReads;
  /** The outbox as forward/ works it. */
  readonly outboxWork: OutboxWorkerQueries;
  readonly outbox: Outbox;
  /** What the archive destination holds, access times, pins and change-feed cursors. */
  readonly cloud: CloudIndex;
  /** Where each instance of a scope is (here, or only in the archive), for reading through. */
  readonly locations: InstanceLocations;
  /** Background fetches of priors from the archive (cloud/prefetch.ts), and what planning them reads. */
  readonly prefetch: PrefetchJobs;
  /** Storage Commitment transactions (dimse/ records, decides and closes them). */
  readonly commitments: Commitments;
  /** The local worklist (Modality Worklist, MPPS, /api/worklist). */
  readonly worklist: Worklist;
  /** Modality Performed Procedure Steps, linked to worklist items. */
  readonly mpps: MppsSteps;
  /** The archive's UPS-RS workitems kept as worklist items (refreshed by cloud/cloud-worklist.ts). */
  readonly cloudWorklist: CloudWorklist;
  /** UPS-RS state changes of cloud items, queued by MPPS, sent by cloud/ups-state-sync.ts. */
  readonly upsChanges: UpsStateChanges;
  private readonly db: Db;
  private readonly index: IndexWriter;
  private readonly replacements: Replacements;
  private readonly metadataRows: InstanceMetadataRows;
  private readonly ingestWork: IngestWork;
  private backfilling?: Promise<void>;
  private readonly lock = new KeyedLock();
  private readonly directorySync = new DirectorySync();
  private readonly committer: GroupCommitter;
  private readonly walSync: WalSync;
  private readonly inFlight = new Set<Promise<unknown>>();
  private closed = false;
  private route: (instance: InstanceInfo) => string[];
  private limits: ArchiveOptions['limits'];
  private readonly logger: Logger;
  private archiveBytes = 0;
  private readonly freeSpace: FreeSpaceGauge;

  private constructor(options: ArchiveOptions, db: Db) {
    this.paths = new ArchivePaths(options.dataDir);
    this.db = db;
    this.reads = archiveReads(db);
    this.outboxWork = new OutboxWorkerQueries(db);
    this.outbox = new Outbox(db);
    this.index = new IndexWriter(db);
    this.replacements = new Replacements(db);
    this.metadataRows = new InstanceMetadataRows(db);
    this.ingestWork = options.ingestWork ?? new IngestThread({
      onError: (error) => this.logger.error({ event: 'ingest-thread-error', err: error }, 'the ingest thread failed outside a task'),
    });
    this.cloud = new CloudIndex(db, this.paths);
    this.locations = new InstanceLocations(db);
    this.prefetch = new PrefetchJobs(db);
    this.commitments = new Commitments(db);
    this.worklist = new Worklist(db);
    this.cloudWorklist = new CloudWorklist(db);
    this.upsChanges = new UpsStateChanges(db);
    this.mpps = new MppsSteps(db, (id) => this.worklist.get(id), this.upsChanges);
    this.route = options.route ?? (() => []);
    this.limits = options.limits;
    this.freeSpace = new FreeSpaceGauge(this.paths.root, options.disk?.maxAgeMs, options.disk?.free ?? freeBytes);
    this.logger = options.logger.child({ component: 'archive' });
    this.archiveBytes = this.totalBytes();
    this.walSync = new WalSync(walFile(this.paths.databaseFile));
    this.committer = new GroupCommitter(
      (body) => commitWithoutSync(db, body),
      (body) => db.transaction(body)(), // nested: better-sqlite3 uses a savepoint
      () => this.walSync.sync(),
    );
  }

  /** Opens the index, creates the folders and recovers from an earlier crash. */
  static async open(options: ArchiveOptions): Promise<{ archive: Archive; recovery: RecoveryReport }> {
    const paths = new ArchivePaths(options.dataDir);
    for (const shard of paths.tempShards) await mkdir(shard, { recursive: true });
    const db = openDatabase(paths.databaseFile, (reason) => options.logger.warn(
      { event: 'index-opened-exclusive', reason },
      'the disk is full: the index is open for this process only, until the next start',
    ));
    const archive = new Archive(options, db);
    try {
      // The first instance must not wait for the ingest thread to start and load its parser; recovery may need it too.
      await archive.ingestWork.ready();
    } catch (error) {
      await archive.ingestWork.close().catch(() => undefined);
      db.close();
      throw error;
    }
    const recovery = await recoverArchive(
      { paths: archive.paths, db, indexExistingFile: (path, size) => archive.indexExistingFile(path, size) }, options.logger);
    archive.archiveBytes = archive.totalBytes();
    return { archive, recovery };
  }

  setRoute(route: (instance: InstanceInfo) => string[]): void {
    this.route = route;
  }

  setLimits(limits: ArchiveOptions['limits']): void {
    this.limits = limits;
  }

  get usedBytes(): number {
    return this.archiveBytes;
  }

  /**
   * Streams one Part 10 instance into the archive. Resolves only once it is durable and indexed.
   * `source` may yield chunks, or batches of chunks that it hands over (never reuses), written with one writev each.
   */
  ingest(source: IngestSource, context: IngestContext): Promise<IngestResult> {
    return this.track(() => this.ingestNow(source, context, (file, header, ticket, metadata) => this.commit(file, header, context, ticket, metadata)));
  }

  /**
   * Like `ingest`, but new bytes for an instance already stored are held instead of replacing it: for a
   * request of many instances (STOW-RS) that must leave what was stored untouched if it fails.
   */
  ingestOrHold(source: IngestSource, context: IngestContext): Promise<IngestResult | HeldReplacement> {
    return this.track(() => this.ingestNow(source, context, async (file, header, ticket, metadata) =>
      this.replaces(file, header) ? this.hold(file, header, context, metadata) : this.commit(file, header, context, ticket, metadata)));
  }

  private track<T>(start: () => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new OutOfResourcesError('the archive is shutting down'));
    const work = start();
    this.inFlight.add(work);
    const forget = () => this.inFlight.delete(work);
    work.then(forget, forget);
    return work;
  }

  /** `settle` runs under the instance's lock and renames or removes the spooled file (or keeps it, held). */
  private async ingestNow<R extends IngestResult | HeldReplacement>(
    source: IngestSource, context: IngestContext,
    settle: (spooled: SpooledFile, header: InstanceHeader, ticket: CommitTicket, metadata: StoredMetadata | undefined) => Promise<R>,
  ): Promise<R | IngestResult> {
    const log = this.logger.child({ peer: context.peer, callingAe: context.callingAe });
    let spooled: SpooledFile | undefined;
    let ticket: CommitTicket | undefined;
    try {
      // Checked before anything is written, so a full disk is not asked to take a file it cannot hold.
      const noRoom = await this.roomRefusal();
      let result: R | IngestResult;
      if (noRoom) {
        result = await this.duplicateOrRefuse(source, context, noRoom);
      } else {
        // Data from the archive is hashed in the ingest thread, from the file, with its description: the event loop
        // that streams it on to its reader neither hashes nor parses it. A sender's bytes are hashed as they arrive.
        const fetched = context.origin === 'cloud';
        spooled = await this.spool(source, fetched, !fetched);
        this.freeSpace.wrote(spooled.sizeBytes);
        const digest = fetched ? this.ingestWork.digest(spooled) : undefined;
        digest?.catch(() => undefined); // awaited below, unless the ingest fails first
        await context.commitAfter;
        ticket = this.committer.announce();
        const { header, head } = await this.parse(spooled);
        checkExpectations(header, context);
        let metadata: StoredMetadata | undefined;
        if (digest) {
          const digested = await digest;
          spooled = { ...spooled, sha256: digested.sha256 };
          metadata = digested.metadata;
          if (digested.undescribed !== undefined) logUndescribed(log, header, digested.undescribed);
        }
        const file = spooled;
        const fileTicket = ticket;
        await this.ensureRoomFor(file, header, context);
        if (!digest) metadata = await this.describe({ path: file.path, sizeBytes: file.sizeBytes, head }, header, log);
        result = await this.lock.run(header.sopInstanceUid, () => settle(file, header, fileTicket, metadata));
        spooled = undefined; // renamed, removed, or held
      }
      logIngest(log, result);
      return result;
    } catch (error) {
      if (spooled) await unlink(spooled.path).catch(() => undefined);
      throw logFailure(log, error, context.expect?.sopInstanceUid);
    } finally {
      ticket?.withdraw();
    }
  }

  /**
   * With no room, nothing may be written; but an instance the archive already holds is still answered as
   * a duplicate (a sender re-sending after a lost answer must not be refused). It is hashed as it arrives.
   */
  private async duplicateOrRefuse(source: IngestSource, context: IngestContext, refusal: OutOfResourcesError): Promise<IngestResult> {
    const received = await readWithoutWriting(source);
    let header: InstanceHeader;
    try {
      ({ header } = await this.parse(received));
      checkExpectations(header, context);
    } catch {
      throw refusal;
    }
    const relativePath = this.instancePath(header);
    const origin = context.origin ?? 'local';
    const kept = await this.lock.run(header.sopInstanceUid, async () => {
      const existing = this.index.existing(header.sopInstanceUid);
      if (!existing || !isKeptOver(existing, received, relativePath, origin)) return false;
      if (origin === 'cloud' && !existing.in_cloud) this.markInCloud(header.sopInstanceUid);
      return true;
    });
    if (!kept) throw refusal;
    return { outcome: 'duplicate', header, sizeBytes: received.sizeBytes, sha256: received.sha256, relativePath };
  }

  /** Whether `spooled` would replace a stored instance (and not just repeat it). */
  private replaces(spooled: SpooledFile, header: InstanceHeader): boolean {
    const existing = this.index.existing(header.sopInstanceUid);
    return existing !== undefined && existing.local === 1 && !isSameFile(existing, spooled, this.instancePath(header));
  }

  private hold(spooled: SpooledFile, header: InstanceHeader, context: IngestContext, metadata: StoredMetadata | undefined): HeldReplacement {
    const log = this.logger.child({ peer: context.peer, callingAe: context.callingAe });
    let settled = false;
    const settleOnce = () => {
      if (settled) throw new Error(`the held replacement of ${header.sopInstanceUid} was already committed or dropped`);
      settled = true;
    };
    const remove = () => unlink(spooled.path).catch(() => undefined);
    return {
      outcome: 'held', header, sizeBytes: spooled.sizeBytes, sha256: spooled.sha256, relativePath: this.instancePath(header),
      commit: async () => {
        settleOnce();
        try {
          return await this.track(() => this.commitHeld(spooled, header, context, log, metadata));
        } catch (error) {
          await remove(); // renamed into place only when the commit succeeded
          throw error;
        }
      },
      drop: async () => {
        settleOnce();
        await remove();
        log.info({ event: 'ingest-dropped', sopInstanceUid: header.sopInstanceUid }, 'held replacement dropped; the stored instance is kept');
      },
    };
  }

  /** Its own step, so a test can land a sender's abort while the temp file opens. */
  /**
   * Cloud data has no sender waiting on each write, so it is synced once per file (see SpoolOptions);
   * either way the file is durable before it is renamed into place.
   */
  private spool(source: IngestSource, syncOnce = false, hash = true): Promise<SpooledFile> {
    return spoolToTempFile(source, this.paths.nextTempDir(), { syncOnce, hash });
  }

  /**
   * `spooled.path` is read only when the kept first bytes do not hold the whole header; without it, such a header is refused.
   * Also returns the first bytes the header was read from (they hold everything before Pixel Data, unless deflated).
   */
  private async parse(spooled: UnwrittenInstance & { path?: string }): Promise<{ header: InstanceHeader; head: Buffer }> {
    let header: InstanceHeader;
    let head: Buffer = Buffer.alloc(0);
    try {
      // Usually the bytes kept while spooling hold the whole header; the file is read only when they do not.
      let parsed: InstanceHeader | undefined;
      for (head of headPrefixes(spooled.headChunks)) {
        const kept = parseInstanceHeader(head, spooled.sizeBytes, spooled.tail);
        if (kept.kind === 'parsed') {
          parsed = kept.header;
          break;
        }
        if (kept.kind === 'check-pixel-data-end') {
          // Only the file tells whether what follows the Pixel Data is padding or the rest of a cut-off item.
          if (!spooled.path) throw new CannotUnderstandError('truncated dataset: encapsulated Pixel Data has no sequence delimiter');
          break;
        }
      }
      if (!parsed && !spooled.path) throw new CannotUnderstandError('the header is longer than the bytes kept while receiving');
      header = parsed ?? await readInstanceHeader(spooled.path!, spooled.sizeBytes, { head, tail: spooled.tail });
    } catch (error) {
      if (error instanceof DicomParseError) throw new CannotUnderstandError(error.message);
      throw error;
    }
    for (const [name, value] of [
      ['SOP Instance UID (0008,0018)', header.sopInstanceUid],
      ['SOP Class UID (0008,0016)', header.sopClassUid],
      ['Study Instance UID (0020,000D)', header.studyInstanceUid],
      ['Series Instance UID (0020,000E)', header.seriesInstanceUid],
    ] as const) {
      const problem = uidProblem(value);
      if (problem) throw new CannotUnderstandError(value ? `${name} ${JSON.stringify(value)} ${problem}` : `missing ${name}`);
    }
    return { header, head };
  }

  /** Why nothing can be received now (not one byte of room, even after eviction), or undefined. */
  private async roomRefusal(): Promise<OutOfResourcesError | undefined> {
    try {
      await this.ensureRoom();
      return undefined;
    } catch (error) {
      if (error instanceof OutOfResourcesError) return error;
      throw error;
    }
  }

  /** Room for a spooled instance; a copy of one already stored needs none, whatever the disk holds. */
  private async ensureRoomFor(spooled: SpooledFile, header: InstanceHeader, context: IngestContext): Promise<void> {
    const existing = this.index.existing(header.sopInstanceUid);
    if (existing && isKeptOver(existing, spooled, this.instancePath(header), context.origin ?? 'local')) return;
    await this.ensureRoom({ spooledBytes: spooled.sizeBytes, replacedBytes: existing && isLocalCopy(existing) ? existing.size_bytes : 0 });
  }

  /**
   * Makes room for `incoming` (see checkRoom) under the quota and the disk reserve, or throws OutOfResourcesError. With
   * evictDelivered, the least recently used confirmed studies go first, as many as the shortfall needs (which
   * may exceed the incoming bytes: a lowered quota, a disk filled by others); the refusal comes only when no
   * more can go. Undelivered and pinned studies are never candidates.
   */
  private async ensureRoom(incoming?: Incoming): Promise<void> {
    if (this.limits.evictDelivered) {
      for (;;) {
        const shortfall = await roomShortfall(this.freeSpace, this.limits, this.archiveBytes, incoming);
        if (shortfall === 0 || (await evictDelivered(this, shortfall, this.logger)) === 0) break;
      }
    }
    await checkRoom(this.freeSpace, this.limits, this.archiveBytes, incoming);
  }

  private async commitHeld(
    spooled: SpooledFile, header: InstanceHeader, context: IngestContext, log: Logger, metadata: StoredMetadata | undefined,
  ): Promise<IngestResult> {
    const ticket = this.committer.announce();
    try {
      const result = await this.lock.run(header.sopInstanceUid, () => this.commit(spooled, header, context, ticket, metadata));
      logIngest(log, result);
      return result;
    } catch (error) {
      throw logFailure(log, error, header.sopInstanceUid);
    } finally {
      ticket.withdraw();
    }
  }

  /** The archive destination holds this instance too. */
  private markInCloud(sopInstanceUid: string): void {
    this.db.prepare('UPDATE instances SET in_cloud = 1 WHERE sop_instance_uid = ?').run(sopInstanceUid);
  }

  private instancePath(header: InstanceHeader): string {
    return this.paths.relativeInstancePath(header.studyInstanceUid, header.seriesInstanceUid, header.sopInstanceUid);
  }

  private async commit(
    spooled: SpooledFile, header: InstanceHeader, context: IngestContext, ticket: CommitTicket, metadata: StoredMetadata | undefined,
  ): Promise<IngestResult> {
    const relativePath = this.instancePath(header);
    const existing = this.index.existing(header.sopInstanceUid);
    const base = { header, sizeBytes: spooled.sizeBytes, sha256: spooled.sha256, relativePath };
    const origin = context.origin ?? 'local';
    if (existing && isKeptOver(existing, spooled, relativePath, origin)) {
      await unlink(spooled.path);
      if (origin === 'cloud' && !existing.in_cloud) this.markInCloud(header.sopInstanceUid);
      return { outcome: 'duplicate', ...base };
    }
    const finalPath = this.paths.absolute(relativePath);
    const replaced = existing?.local === 1 ? existing : undefined;
    // Durable before the new bytes take the old ones' place: a crash from here until the index describes
    // them leaves the row, and recovery re-indexes the file (its size alone may not show the change).
    if (replaced) {
      await this.committer.commit(() => this.replacements.begin({ sopInstanceUid: header.sopInstanceUid, path: relativePath, oldPath: replaced.path }));
    }
    // The series folder usually exists already: try the rename first and create the folder only when it is missing.
    let firstCreated: string | undefined;
    try {
      await rename(spooled.path, finalPath);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      firstCreated = await mkdir(dirname(finalPath), { recursive: true });
      await rename(spooled.path, finalPath);
    }
    await this.directorySync.sync(dirname(finalPath));
    if (firstCreated) {
      // New study/series folders must survive power loss too: sync each parent up to the archive root.
      for (let dir = dirname(dirname(finalPath)); dir.length >= this.paths.root.length; dir = dirname(dir)) {
        await this.directorySync.sync(dir);
        if (dir === this.paths.root) break;
      }
    }
    const file: StoredFile = {
      relativePath, sizeBytes: spooled.sizeBytes, sha256: spooled.sha256, callingAe: context.callingAe, receivedAt: Date.now(),
    };
    const committed = ticket.commit(() => {
      const rows = this.writeRows(header, file, existing, origin, metadata);
      if (replaced?.path === relativePath) this.replacements.finish(header.sopInstanceUid);
      return rows;
    });
    const { counts, queuedFor } = await committed.catch(async (error: unknown) => {
      // A new file whose rows did not commit must not linger unindexed (a replaced one is re-indexed at start).
      // Rows committed but not synced may survive, and must keep their file.
      if (!existing && !(error instanceof CommitNotDurableError)) await rm(finalPath, { force: true });
      throw error;
    });
    this.archiveBytes += spooled.sizeBytes - (replaced?.size_bytes ?? 0);
    if (replaced && replaced.path !== relativePath) {
      // Finished only once the old file is gone: recovery would otherwise index it again as this instance.
      await rm(this.paths.absolute(replaced.path), { force: true });
      await this.committer.commit(() => this.replacements.finish(header.sopInstanceUid));
    }
    // A cloud-only row that gets its file is a first local copy, not a replacement.
    const outcome: IngestOutcome = replaced ? 'replaced' : 'stored';
    this.emitStored(header, context.callingAe, origin, outcome, spooled.sizeBytes, counts, queuedFor, existing);
    return { outcome, ...base };
  }

  /** The index rows, the description and the outbox rows of one stored file; callers run it inside one transaction. */
  private writeRows(
    header: InstanceHeader, file: StoredFile, existing: ExistingInstance | undefined, origin: IngestOrigin, metadata: StoredMetadata | undefined,
  ) {
    const counts = this.index.write(header, file, existing, origin);
    this.metadataRows.write(header.sopInstanceUid, file.sha256, metadata);
    // Data from the archive is never sent back to it (or anywhere): no outbox rows at all.
    if (origin === 'cloud') return { counts, queuedFor: [] as string[] };
    const destinations = this.route({
      sopInstanceUid: header.sopInstanceUid, seriesUid: header.seriesInstanceUid, studyUid: header.studyInstanceUid,
      modality: header.modality, callingAe: file.callingAe, sopClassUid: header.sopClassUid,
    });
    const queuedFor = this.outbox.enqueue(
      { sopInstanceUid: header.sopInstanceUid, studyUid: header.studyInstanceUid, sizeBytes: file.sizeBytes,
        replacesEarlier: existing?.local === 1, now: file.receivedAt },
      destinations,
    );
    return { counts, queuedFor };
  }

  private emitStored(
    header: InstanceHeader, callingAe: string, origin: IngestOrigin, outcome: 'stored' | 'replaced', sizeBytes: number,
    counts: { numSeries: number; numInstances: number }, queuedFor: string[], existing?: ExistingInstance,
  ): void {
    const ids = { sopInstanceUid: header.sopInstanceUid, seriesUid: header.seriesInstanceUid, studyUid: header.studyInstanceUid };
    this.events.emit('instance-stored', { ...ids, callingAe, outcome, sizeBytes, origin });
    this.events.emit('study-updated', { studyUid: header.studyInstanceUid, ...counts });
    if (existing && existing.study_uid !== header.studyInstanceUid) {
      this.events.emit('study-updated', { studyUid: existing.study_uid, numSeries: -1, numInstances: -1 });
    }
    for (const destination of queuedFor) {
      this.events.emit('outbox-changed', { studyUid: header.studyInstanceUid, destination, sopInstanceUids: [header.sopInstanceUid], state: 'pending' });
    }
    if (origin === 'local') this.linkWorklist(header);
  }

  /** A study acquired here is linked to the worklist item it was done for (Study Instance UID or Accession Number). */
  private linkWorklist(header: InstanceHeader): void {
    try {
      const linked = this.worklist.linkArrivedStudy({ studyUid: header.studyInstanceUid, accessionNumber: header.accessionNumber }, Date.now());
      if (linked > 0) {
        this.logger.info({ event: 'worklist-study-arrived', studyUid: header.studyInstanceUid, accessionNumber: header.accessionNumber, items: linked },
          'a study arrived for a worklist item');
      }
    } catch (error) {
      // The instance is stored and acknowledged either way; the link is for the worklist screen.
      this.logger.warn({ event: 'worklist-link-failed', studyUid: header.studyInstanceUid, reason: (error as Error).message }, 'worklist item not linked');
    }
  }

  /** Removes an instance's file and rows (and its outbox rows). Used by DELETE and eviction. */
  async removeInstance(sopInstanceUid: string): Promise<boolean> {
    return this.lock.run(sopInstanceUid, async () => {
      const existing = this.index.existing(sopInstanceUid);
      if (!existing) return false;
      this.db.transaction(() => {
        this.db.prepare('DELETE FROM outbox WHERE sop_instance_uid = ?').run(sopInstanceUid);
        this.index.remove(existing, Date.now());
      })();
      if (existing.local) {
        this.archiveBytes -= existing.size_bytes;
        await rm(this.paths.absolute(existing.path), { force: true });
      }
      this.events.emit('instance-deleted', { sopInstanceUid, seriesUid: existing.series_uid, studyUid: existing.study_uid });
      return true;
    });
  }

  /**
   * Drops the local copy of an instance to free space. One the archive destination holds (in_cloud) keeps its
   * rows as cloud-only, so it stays findable and can be fetched again; any other is removed as before.
   * The rows change before the file goes: a crash in between leaves a file that recovery adopts again.
   * Returns the bytes freed.
   */
  async evictInstance(sopInstanceUid: string): Promise<number> {
    const existing = this.index.existing(sopInstanceUid);
    if (!existing?.local) return 0;
    if (!existing.in_cloud) return (await this.removeInstance(sopInstanceUid)) ? existing.size_bytes : 0;
    return this.lock.run(sopInstanceUid, async () => {
      const current = this.index.existing(sopInstanceUid);
      if (!current?.local || !current.in_cloud) return 0;
      this.db.transaction(() => this.index.markEvicted(current, Date.now()))();
      this.archiveBytes -= current.size_bytes;
      await rm(this.paths.absolute(current.path), { force: true });
      this.events.emit('instance-evicted', { sopInstanceUid, seriesUid: current.series_uid, studyUid: current.study_uid });
      return current.size_bytes;
    });
  }

  /**
   * Applies changes reported by the archive destination (store/cloud-changes.ts says what each does) and,
   * in the same transaction, `saveCursor` (e.g. CloudIndex.saveCursor of the change feed's position). Copies
   * to drop are first moved out of the archive into a temp file (which recovery removes) and that is synced,
   * then the rows and the cursor commit, then the moved files go: after a crash either the batch and its
   * cursor are in the index or neither is, and a dropped copy never comes back (a delete never turns into a
   * new local instance to forward, an update never leaves the old version cached).
   */
  async applyCloudChanges(changes: readonly CloudChange[], saveCursor: () => void): Promise<AppliedCloudChanges> {
    const uids = [...new Set(changes.map((c) => c.sopInstanceUid))].sort();
    return this.track(() => this.lockAll(uids, async () => {
      const rows = new CloudChangeRows(this.db, this.index, this.cloud);
      const drops = rows.copiesToDrop(changes);
      const moved: Array<{ from: string; to: string }> = [];
      try {
        for (const instance of drops.values()) {
          const from = this.paths.absolute(instance.path);
          const to = join(this.paths.nextTempDir(), `${randomUUID()}${TEMP_SUFFIX}`);
          try {
            await rename(from, to);
          } catch (error) {
            if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
            continue; // already gone (a crash after an earlier attempt moved it)
          }
          moved.push({ from, to });
        }
        for (const dir of new Set(moved.flatMap((m) => [dirname(m.from), dirname(m.to)]))) await this.directorySync.sync(dir);
      } catch (error) {
        await restore(moved);
        throw error;
      }
      let applied: AppliedCloudChanges;
      try {
        applied = rows.write(changes, drops, saveCursor);
      } catch (error) {
        await restore(moved);
        throw error;
      }
      // Every copy to drop lost its local row (refreshed or removed), so its bytes no longer count.
      for (const instance of drops.values()) this.archiveBytes -= instance.size_bytes;
      await Promise.all(moved.map((m) => rm(m.to, { force: true })));
      for (const change of applied.changes) {
        const ids = { sopInstanceUid: change.sopInstanceUid, studyUid: change.studyUid };
        const seriesUid = changes.find((c) => c.sopInstanceUid === change.sopInstanceUid)?.seriesUid ?? '';
        if (change.outcome === 'refreshed') this.events.emit('instance-evicted', { ...ids, seriesUid });
        if (change.outcome === 'removed') this.events.emit('instance-deleted', { ...ids, seriesUid });
      }
      for (const studyUid of applied.touchedStudies) {
        const counts = this.db.prepare('SELECT num_series, num_instances FROM studies WHERE study_uid = ?').get(studyUid) as
          | { num_series: number; num_instances: number } | undefined;
        this.events.emit('study-updated', { studyUid, numSeries: counts?.num_series ?? -1, numInstances: counts?.num_instances ?? -1 });
      }
      return applied;
    }));
  }

  /** Runs `task` holding the lock of every key (taken in sorted order, so two callers cannot deadlock). */
  private lockAll<T>(keys: readonly string[], task: () => Promise<T>): Promise<T> {
    if (keys.length === 0) return task();
    const [first, ...rest] = keys;
    return this.lock.run(first!, () => this.lockAll(rest, task));
  }

  /**
   * Re-indexes a file already at its final path (recovery after a crash between rename and commit). A file
   * whose row is cloud-only came from the archive (a fetch or an eviction cut short) and is indexed as such.
   */
  async indexExistingFile(relativePath: string, sizeBytes: number): Promise<InstanceHeader> {
    const absolutePath = this.paths.absolute(relativePath);
    const header = await readInstanceHeader(absolutePath, sizeBytes);
    const expectedPath = this.paths.relativeInstancePath(header.studyInstanceUid, header.seriesInstanceUid, header.sopInstanceUid);
    if (expectedPath !== relativePath) throw new CannotUnderstandError(`file's UIDs point to ${expectedPath}`);
    const { sha256, metadata, undescribed } = await this.ingestWork.digest({ path: absolutePath, sizeBytes });
    if (undescribed !== undefined) logUndescribed(this.logger, header, undescribed);
    const existing = this.index.existing(header.sopInstanceUid);
    const file: StoredFile = { relativePath, sizeBytes, sha256, callingAe: '', receivedAt: Date.now() };
    const origin: IngestOrigin = existing && !existing.local ? 'cloud' : 'local';
    this.db.transaction(() => this.writeRows(header, file, existing, origin, metadata))();
    return header;
  }

  /**
   * The instance's DICOM JSON for the index, made in the describe thread from the first bytes the header was read
   * from (the file is read only when the attributes before Pixel Data run past them). An instance that cannot
   * be described, or whose description fails in the thread, is stored all the same: /metadata then reads its
   * file, and the next start's backfill describes it.
   */
  private async describe(file: { path: string; sizeBytes: number; head?: Buffer }, header: InstanceHeader, log: Logger): Promise<StoredMetadata | undefined> {
    try {
      const { encoding, json } = await this.ingestWork.describe(file);
      return { encoding, json };
    } catch (error) {
      logUndescribed(log, header, (error as Error).message);
      return undefined;
    }
  }

  /**
   * Describes an indexed instance from its file (read up to Pixel Data) and keeps the description, as long as
   * the instance still has these bytes. For instances stored before descriptions were kept. Returns its text.
   */
  async describeStored(instance: { sopInstanceUid: string; sha256: string; path: string; sizeBytes: number }): Promise<string> {
    const { text, ...metadata } = await this.ingestWork.describe({ path: this.paths.absolute(instance.path), sizeBytes: instance.sizeBytes }, { withText: true });
    this.keepDescriptions([{ sopInstanceUid: instance.sopInstanceUid, sha256: instance.sha256, metadata }]);
    return text!;
  }

  /**
   * Written without waiting for the disk (the next durable commit syncs them): a description lost to a power
   * cut is made again from the file. A full disk only postpones them.
   */
  private keepDescriptions(described: ReadonlyArray<{ sopInstanceUid: string; sha256: string; metadata: StoredMetadata }>): number {
    if (this.closed || described.length === 0) return 0;
    try {
      return commitWithoutSync(this.db, () => described.filter((d) => this.metadataRows.backfill(d.sopInstanceUid, d.sha256, d.metadata)).length);
    } catch (error) {
      this.logger.warn({ event: 'metadata-not-kept', instances: described.length, reason: (error as Error).message }, 'DICOM JSON not kept; made again later');
      return 0;
    }
  }

  /**
   * In the background, describes every local instance that has no description of its bytes (stored before
   * descriptions were kept, or by an older version): one at a time, yielding to other work between them, in
   * batches written together; stops when the archive closes. Logs once, with counts, when there was work.
   */
  startMetadataBackfill(options: { batch?: number } = {}): Promise<void> {
    this.backfilling ??= this.backfillMetadata(options.batch ?? 50).catch((error: unknown) => {
      this.logger.error({ event: 'metadata-backfill-failed', reason: (error as Error).message }, 'DICOM JSON backfill stopped');
    });
    return this.backfilling;
  }

  private async backfillMetadata(batchSize: number): Promise<void> {
    let described = 0;
    let unreadable = 0;
    let after = '';
    for (;;) {
      if (this.closed) break;
      const batch = this.metadataRows.undescribed(after, batchSize);
      if (batch.length === 0) break;
      const done: Array<{ sopInstanceUid: string; sha256: string; metadata: StoredMetadata }> = [];
      for (const instance of batch) {
        if (this.closed) break;
        after = instance.sopInstanceUid;
        await new Promise<void>((resolve) => setImmediate(resolve));
        try {
          const { encoding, json } = await this.ingestWork.describe({ path: this.paths.absolute(instance.path), sizeBytes: instance.sizeBytes });
          done.push({ ...instance, metadata: { encoding, json } });
        } catch (error) {
          unreadable++;
          this.logger.debug({ event: 'metadata-backfill-unreadable', sopInstanceUid: instance.sopInstanceUid, reason: (error as Error).message },
            'instance not described');
        }
      }
      described += this.keepDescriptions(done);
    }
    if (described + unreadable > 0) {
      this.logger.info({ event: 'metadata-backfill', described, unreadable, stopped: this.closed }, 'DICOM JSON of earlier instances kept');
    }
  }

  totalBytes(): number {
    return (this.db.prepare('SELECT COALESCE(SUM(size_bytes), 0) AS total FROM instances WHERE local = 1').get() as { total: number }).total;
  }

  /** Stops taking new work, waits for in-flight ingests, and closes the index. */
  async close(): Promise<void> {
    this.closed = true;
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
    await this.backfilling;
    await this.ingestWork.close();
    await this.walSync.close();
    this.db.close();
  }
}

/** Puts files moved aside back where they were (a batch that did not commit). */
async function restore(moved: ReadonlyArray<{ from: string; to: string }>): Promise<void> {
  for (const m of moved) await rename(m.to, m.from).catch(() => undefined);
}

/** An instance stored with these very bytes at this path: storing it again changes nothing. */
function isSameFile(existing: ExistingInstance, received: { sha256: string }, relativePath: string): boolean {
  return existing.sha256 === received.sha256 && existing.path === relativePath && !existing.file_missing;
}

/** A file of this site's own is at the row's path (not a cloud-only row, not a missing file). */
function isLocalCopy(existing: ExistingInstance): boolean {
  return existing.local === 1 && !existing.file_missing;
}

/**
 * The stored copy stays and the received bytes are not written: they repeat it, or they are a cloud fetch,
 * which never replaces a local copy (the local bytes are the ones this site acquired).
 */
function isKeptOver(existing: ExistingInstance, received: { sha256: string }, relativePath: string, origin: IngestOrigin): boolean {
  return isLocalCopy(existing) && (isSameFile(existing, received, relativePath) || origin === 'cloud');
}

function logIngest(log: Logger, result: IngestResult | HeldReplacement): void {
  const { header } = result;
  log.info(
    { event: 'ingest', outcome: result.outcome, studyUid: header.studyInstanceUid, seriesUid: header.seriesInstanceUid,
      sopInstanceUid: header.sopInstanceUid, sizeBytes: result.sizeBytes, transferSyntaxUid: header.transferSyntaxUid },
    `instance ${result.outcome}`,
  );
}

/** Logs a failed ingest and returns the error to throw. */
function logFailure(log: Logger, error: unknown, sopInstanceUid: string | undefined): IngestError {
  const failure = toIngestError(error);
  log.warn({ event: 'ingest-failed', reason: failure.name, status: failure.dimseStatus, sopInstanceUid }, failure.message);
  return failure;
}

function checkExpectations(header: InstanceHeader, context: IngestContext): void {
  const expect = context.expect;
  if (!expect) return;
  if (expect.sopInstanceUid && expect.sopInstanceUid !== header.sopInstanceUid) {
    throw new MismatchError(`SOP Instance UID in the dataset (${header.sopInstanceUid}) differs from the request's (${expect.sopInstanceUid})`);
  }
  if (expect.sopClassUid && expect.sopClassUid !== header.sopClassUid) {
    throw new MismatchError(`SOP Class UID in the dataset (${header.sopClassUid}) differs from the request's (${expect.sopClassUid})`);
  }
  if (expect.studyInstanceUid && expect.studyInstanceUid !== header.studyInstanceUid) {
    throw new StudyMismatchError(`Study Instance UID in the dataset (${header.studyInstanceUid}) differs from the URL's (${expect.studyInstanceUid})`);
  }
}

function toIngestError(error: unknown): IngestError {
  if (error instanceof IngestError) return error;
  if (error instanceof InvalidUidError) return new CannotUnderstandError(error.message);
  const code = (error as NodeJS.ErrnoException)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT') return new OutOfResourcesError(`disk full: ${code}`);
  return new OutOfResourcesError(`storage failure: ${(error as Error)?.message ?? String(error)}`);
}

function logUndescribed(log: Logger, header: InstanceHeader, reason: string): void {
  log.warn({ event: 'metadata-not-described', sopInstanceUid: header.sopInstanceUid, reason }, 'instance stored without its DICOM JSON; /metadata reads its file');
}
