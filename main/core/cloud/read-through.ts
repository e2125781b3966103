/**
 * Read-through retrieve: a study, series or instance that is not (all) here is fetched from the archive
 * destination and written through the normal durable ingest (origin 'cloud': never queued for forwarding,
 * marked as held by the archive), and each instance is handed to the caller as soon as it is committed, so
 * the caller can stream it on (WADO-RS to a browser, C-MOVE to a workstation) while the rest arrives.
 *
 * One fetch per study at a time serves everyone: a request whose scope lies inside a running fetch (the
 * study, or the series or instance that fetch is for) follows it instead of starting another. A request for
 * what is already here is answered from here. A fetch cut mid-way leaves only whole, indexed instances (the
 * ingest spools to a temp file and renames it only once complete), and the next request fetches the rest.
 *
 * The reader that starts a fetch is given the archive's parts as they arrive (WADO-RS, C-MOVE), and those parts
 * wait in spool files for their ingest until that reader is done, up to a limit: the reader goes at the
 * archive's pace while the durable ingest, which costs far more of a small box's cores, runs right after.
 * Readers that follow such a fetch read the parts from their spool files meanwhile (`spooled-part.ts`).
 *
 * What is fetched: when nothing of the scope is here, one WADO-RS request for the whole scope (one round
 * trip, streamed: the cold read). When part of it is here (a fetch that was cut, a study partly evicted),
 * instance-level requests for just the missing instances, a few at a time: a cut at 90% of a large study
 * costs the missing 10% again, not the whole study, and a cut instance costs only itself.
 */
import type { Logger } from 'pino';
import { jsonString, type ReceivedDicomJson } from '../dicom/dicom-json-values.js';
import { CannotUnderstandError, MismatchError, StudyMismatchError } from '../store/errors.js';
import type { Archive, IngestSource } from '../store/archive.js';
import { WrittenTempFile } from '../store/temp-file.js';
import type { InstanceLocation, InstanceLocations, InstanceScope } from '../store/instance-locations.js';
import { ArchiveReadError } from './archive-errors.js';
import type { ArchiveReader } from './archive-reader.js';
import { withScope } from './federated-query.js';
import { FetchFlight, type AnswerPart, type SpooledPart } from './fetch-flight.js';
import { LiveTap, type LiveLane, type LivePart, type LiveNext } from './live-tap.js';
import { IngestFeed, LagBudget } from './ingest-feed.js';
import { PartSpool } from './part-spool.js';
import { openSpooledPart } from './spooled-part.js';
import { metaTransferSyntax } from '../dicom/header.js';
import { uidProblem } from '../dicom/uid.js';
import { tagsOf } from '../dicom/dictionary.js';

export type { InstanceLocation, InstanceScope } from '../store/instance-locations.js';
export type { LivePart } from './live-tap.js';

/** An instance of a streamed retrieve: here (a file to read), or arriving from the archive (bytes as they come). */
export type Retrieved = { instance: InstanceLocation } | { live: LivePart };

export interface ReadThroughOptions {
  archive: Archive;
  /** The archive destination's reader, or undefined when none is configured (then everything is local only). */
  reader: () => ArchiveReader | undefined;
  logger: Logger;
  /** Instance-level requests at a time when completing a partly local scope; default 4. */
  instanceConcurrency?: number;
  /** Bytes a fetch reads ahead of its ingests, at most (default 8 MB), when no reader takes its parts live. */
  ingestLagBytes?: number;
  /** Bytes of the parts a live reader was given that a fetch keeps on disk for their ingest, at most (default 512 MB). */
  maxSpooledBytes?: number;
}

const DEFAULT_INGEST_LAG_BYTES = 8 * 1024 * 1024;
/**
 * Bytes of the parts a live reader was given that one fetch keeps on disk for their ingest, at most: a study of a few
 * hundred MB is read at the archive's pace, and a larger one (or a huge instance) costs that much disk, not its size.
 */
const DEFAULT_MAX_SPOOLED_BYTES = 512 * 1024 * 1024;
/**
 * Bytes of one part kept on disk for its ingest, at most: a larger part (a whole-slide or long multi-frame
 * instance) is ingested from there on as it arrives, since waiting would only make its ingest read it back.
 */
const MAX_SPOOLED_PART_BYTES = 64 * 1024 * 1024;
/** Spooled parts whose ingests run at once, once their reader is done. */
const SPOOLED_INGESTS_AT_ONCE = 4;

/** Attributes asked for when listing a scope's instances: the UIDs and what the index keeps of them. */
const LISTED_FIELDS = [
  'StudyInstanceUID', 'SeriesInstanceUID', 'SOPInstanceUID', 'SOPClassUID', 'InstanceNumber', 'NumberOfFrames', 'Modality', 'SeriesNumber',
];
/** The Azure DICOM service answers at most 200 results per QIDO request. */
const LIST_PAGE_SIZE = 200;

const TAG = tagsOf('StudyInstanceUID', 'SeriesInstanceUID', 'SOPInstanceUID', 'NumberOfStudyRelatedInstances', 'NumberOfSeriesRelatedInstances');

/** The two scopes name the same study, series or instance. */
function sameScope(a: InstanceScope, b: InstanceScope): boolean {
  return a.studyUid === b.studyUid && a.seriesUid === b.seriesUid && a.sopInstanceUid === b.sopInstanceUid;
}

/** An instance is in the scope. */
function within(scope: InstanceScope, instance: Pick<InstanceLocation, 'studyUid' | 'seriesUid' | 'sopInstanceUid'>): boolean {
  return instance.studyUid === scope.studyUid
    && (scope.seriesUid === undefined || instance.seriesUid === scope.seriesUid)
    && (scope.sopInstanceUid === undefined || instance.sopInstanceUid === scope.sopInstanceUid);
}

/** The UIDs of a DICOM JSON dataset. */
function identify(dataset: ReceivedDicomJson): Pick<InstanceLocation, 'studyUid' | 'seriesUid' | 'sopInstanceUid'> {
  return { studyUid: jsonString(dataset, TAG.StudyInstanceUID), seriesUid: jsonString(dataset, TAG.SeriesInstanceUID), sopInstanceUid: jsonString(dataset, TAG.SOPInstanceUID) };
}

/** Not readable here, and the archive holds it. */
function fetchable(instance: InstanceLocation): boolean {
  return !instance.local && instance.inCloud;
}

function describe(scope: InstanceScope): Record<string, string> {
  const ids: Record<string, string> = { studyUid: scope.studyUid };
  if (scope.seriesUid !== undefined) ids.seriesUid = scope.seriesUid;
  if (scope.sopInstanceUid !== undefined) ids.sopInstanceUid = scope.sopInstanceUid;
  return ids;
}

/** Bytes of a part's start kept while its meta header is read, at most; a part longer in the header goes committed. */
const MAX_SNIFFED_BYTES = 64 * 1024;

/**
 * One part's bytes on their way to the tap. A part whose Content-Type names no transfer syntax (Orthanc
 * names none) is offered once its meta header has arrived and names one; its first bytes wait for that.
 */
class TappedPart {
  private lane: LiveLane | undefined;
  private decided: boolean;
  private sniffed: Buffer[] = [];
  private sniffedBytes = 0;

  /** The part's transfer syntax, once known (named by the archive, or read from its meta header). */
  transferSyntax: string | undefined;

  constructor(private readonly tap: LiveTap, named: string | undefined) {
    this.decided = named !== undefined && uidProblem(named) === undefined;
    if (this.decided) {
      this.transferSyntax = named;
      this.lane = tap.offer(named);
    }
  }

  /** Whether the reader is taking this part (it was offered and not declined). */
  get given(): boolean {
    return this.lane?.taking === true;
  }

  /** The part was committed as this instance. */
  committed(sopInstanceUid: string): void {
    this.lane?.committed(sopInstanceUid);
  }

  write(chunk: Buffer): Promise<void> | undefined {
    if (this.decided) return this.lane?.write(chunk);
    this.sniffed.push(chunk);
    this.sniffedBytes += chunk.length;
    const syntax = metaTransferSyntax(this.sniffed.length === 1 ? chunk : Buffer.concat(this.sniffed));
    if (syntax === 'need-more-bytes' && this.sniffedBytes < MAX_SNIFFED_BYTES) return undefined;
    return this.decide(syntax === 'need-more-bytes' ? undefined : syntax);
  }

  end(): void {
    // A part shorter than its meta header: the ingest will refuse it, and the reader does not get it.
    if (!this.decided) this.decide(undefined);
    this.lane?.end();
  }

  fail(error: unknown): void {
    this.lane?.fail(error);
  }

  private decide(syntax: string | undefined): Promise<void> | undefined {
    this.decided = true;
    this.transferSyntax = syntax;
    this.lane = this.tap.offer(syntax);
    const kept = this.sniffed;
    this.sniffed = [];
    const lane = this.lane;
    if (!lane) return undefined;
    return Promise.all(kept.map((bytes) => lane.write(bytes))).then(() => undefined);
  }
}

/** A spooled part dropped without its ingest: followers no longer read it from there. */
function dropSpool(spool: PartSpool, published: SpooledPart | undefined): void {
  if (published) published.taken = true;
  void spool.discard();
}

/** A listing of the archive that starts when first needed; `settled` is its outcome, whenever it starts. */
class PutOffListing {
  readonly settled: Promise<number>;
  private start!: () => void;

  constructor(list: () => Promise<number>) {
    this.settled = new Promise<void>((resolve) => (this.start = resolve)).then(list);
    this.settled.catch(() => undefined); // awaited by whoever needs it
  }

  /** Starts the listing (once); returns its outcome. */
  need(): Promise<number> {
    this.start();
    return this.settled;
  }
}

/** Waits for `promise`, or rejects with the signal's reason once it aborts. */
function untilAborted<T>(promise: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return promise;
  signal.throwIfAborted();
  return new Promise<T>((resolve, reject) => {
    const abort = () => reject(signal.reason);
    signal.addEventListener('abort', abort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', abort));
  });
}

/**
 * Instances of one stream whose commits may be under way while the next ones are read (each holds its first
 * bytes, up to 256 KB, until it commits): enough to keep reading while the archive lists a large study.
 */
const MAX_COMMITTING = 64;

/** A part's first bytes from its spool file, then the rest as the fetch queues it. */
async function* spooledThenQueued(spool: PartSpool, feed: IngestFeed): AsyncGenerator<Uint8Array | readonly Uint8Array[]> {
  for await (const chunk of spool.source()) yield chunk as Buffer;
  yield* feed.source();
}

export class ReadThrough {
  private readonly locations: InstanceLocations;
  private readonly flights = new Map<string, Set<FetchFlight>>();
  private readonly log: Logger;
  private closed = false;

  constructor(private readonly options: ReadThroughOptions) {
    this.locations = options.archive.locations;
    this.log = options.logger.child({ component: 'read-through' });
  }

  /** Every instance of the scope the index knows, here or only in the archive. */
  known(scope: InstanceScope): InstanceLocation[] {
    return this.locations.inScope(scope);
  }

  /**
   * Whether a retrieve of `scope` would go to the archive: an archive is configured and the scope is not
   * all here (some instance is only in the archive, the archive reported more than the index knows, or
   * the index does not know the scope at all), or a fetch inside which it lies is running.
   */
  needsArchive(scope: InstanceScope): boolean {
    if (this.coveringFlight(scope)) return true;
    return this.options.reader() !== undefined && this.incomplete(scope);
  }

  /**
   * The instances of `scope`, each once, as they become readable here: those already here first, then those
   * fetched, as each one commits. Rejects, after the instances it could deliver, with the fetch's failure
   * (an ArchiveReadError: offline, auth, not-found, other; or an ingest error). Ends without error when the
   * archive holds nothing more of the scope. Leaving early does not stop a fetch others may follow; `signal`
   * stops the waiting.
   */
  async *retrieve(scope: InstanceScope, options: { signal?: AbortSignal } = {}): AsyncGenerator<InstanceLocation> {
    const flight = this.flightFor(scope);
    const sent = new Set<string>();
    for (const instance of this.locations.inScope(scope)) {
      if (!instance.local) continue;
      sent.add(instance.sopInstanceUid);
      yield instance;
    }
    if (!flight) return;
    for await (const instance of flight.follow(options.signal)) {
      if (!within(scope, instance) || sent.has(instance.sopInstanceUid)) continue;
      sent.add(instance.sopInstanceUid);
      yield instance;
    }
    // Committed meanwhile by another fetch of the same study (a narrower one that ran alongside).
    for (const instance of this.locations.inScope(scope)) {
      if (!instance.local || sent.has(instance.sopInstanceUid)) continue;
      sent.add(instance.sopInstanceUid);
      yield instance;
    }
  }

  /**
   * Like `retrieve`, for a reader that passes the bytes on (WADO-RS): when this call starts the fetch of a
   * scope of which nothing is here, each part of the archive's answer whose syntax `accepts` takes is given
   * as it arrives (`live`), while the same bytes are written through the ingest; the reader does not wait
   * for their commits. Everything else comes as in `retrieve`, after it is committed, and so does a part the
   * reader declines part-way (`LivePart.decline`, e.g. one too large to hold). A reader that follows a fetch of
   * the same scope is given, the same way, each part that waits whole in its spool file for its ingest. A part
   * given live may still fail to commit (logged); the reader then has sent the archive's bytes, as the archive
   * sent them.
   */
  async *stream(scope: InstanceScope, options: { signal?: AbortSignal; accepts: (transferSyntax: string) => boolean }): AsyncGenerator<Retrieved> {
    const tap = new LiveTap(options.accepts);
    const flight = this.flightFor(scope, tap);
    const sent = new Set<string>();
    for (const instance of this.locations.inScope(scope)) {
      if (!instance.local) continue;
      sent.add(instance.sopInstanceUid);
      yield { instance };
    }
    if (!flight) return;
    const own = flight.tap === tap;
    if (own) {
      let end: LiveNext | undefined;
      try {
        for (;;) {
          const next = await untilAborted(tap.next(), options.signal);
          if ('end' in next) {
            end = next;
            break;
          }
          yield { live: next.part };
        }
      } finally {
        if (!end) tap.leave();
      }
      if (end.end === 'complete') return;
    }
    const skip = (sop: string) => sent.has(sop) || (own && tap.deliveredSops.has(sop));
    // A reader following another's fetch of the same scope reads the parts that wait on disk for their ingest.
    // It is done once it has every part of the answer, from a spool file or committed, without waiting for the
    // fetch's end (the other parts' ingests, the listing).
    const fromSpool = !own && sameScope(flight.scope, scope);
    const served = new Set<AnswerPart>();
    for await (const item of flight.followWithSpooled(options.signal, fromSpool, () => flight.givenAll(served))) {
      if ('spooled' in item) {
        const { spooled } = item;
        if (!options.accepts(spooled.transferSyntax)) continue;
        const opened = await openSpooledPart(spooled);
        if (!opened) continue;
        if (skip(opened.sopInstanceUid)) {
          opened.close();
          continue;
        }
        sent.add(opened.sopInstanceUid);
        served.add(spooled.answerPart);
        let declined = false;
        const live: LivePart = { transferSyntax: spooled.transferSyntax, body: opened.body, decline: () => { declined = true; opened.close(); } };
        try {
          yield { live };
        } finally {
          opened.close();
        }
        if (declined) {
          // Too large to hold, e.g.: it comes again committed.
          sent.delete(opened.sopInstanceUid);
          served.delete(spooled.answerPart);
        }
        continue;
      }
      const { instance } = item;
      if (!within(scope, instance) || skip(instance.sopInstanceUid)) continue;
      sent.add(instance.sopInstanceUid);
      yield { instance };
    }
    for (const instance of this.locations.inScope(scope)) {
      if (!instance.local || skip(instance.sopInstanceUid)) continue;
      sent.add(instance.sopInstanceUid);
      yield { instance };
    }
  }

  /** One instance, once it is here (fetched if need be); undefined when neither here nor in the archive. */
  async instance(scope: InstanceScope & { seriesUid: string; sopInstanceUid: string }, options: { signal?: AbortSignal } = {}): Promise<InstanceLocation | undefined> {
    for await (const instance of this.retrieve(scope, options)) return instance;
    return undefined;
  }

  /**
   * The index's instances of the scope, after asking the archive for the list when the index does not know
   * them all (nothing is fetched). Rejects with an ArchiveReadError when it must ask and cannot.
   */
  async list(scope: InstanceScope, options: { signal?: AbortSignal; timeoutMs?: number } = {}): Promise<InstanceLocation[]> {
    const reader = this.options.reader();
    // A running fetch lists the scope itself: wait for its listing rather than asking the archive twice
    // (and ask it here after all if that fetch failed before its listing was in).
    const flight = this.coveringFlight(scope);
    flight?.wantListing();
    if (flight) await untilAborted(flight.listed, options.signal).catch(() => undefined);
    if (reader && this.unlisted(scope)) await this.listAtArchive(reader, scope, options.signal, options.timeoutMs);
    return this.locations.inScope(scope);
  }

  /**
   * The archive's WADO-RS metadata of the scope (DICOM JSON, one dataset per instance; no pixel data is
   * fetched), kept as cloud rows; undefined when no archive is configured. Rejects with an ArchiveReadError.
   */
  async archiveMetadata(scope: InstanceScope, options: { signal?: AbortSignal; timeoutMs?: number } = {}): Promise<ReceivedDicomJson[] | undefined> {
    const reader = this.options.reader();
    if (!reader) return undefined;
    const datasets = withScope(scope, await reader.metadata(scope, options)).filter((dataset) => within(scope, identify(dataset)));
    const kept = this.options.archive.cloud.upsert('instance', datasets);
    if (kept.skipped.length > 0) {
      this.log.warn({ event: 'read-through-metadata-skipped', ...describe(scope), skipped: kept.skipped.slice(0, 10) }, 'archive metadata without valid UIDs');
    }
    return datasets;
  }

  /** Stops every fetch (their followers see the abort) and waits for them to end. */
  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.flights.values()].flatMap((set) => [...set]);
    for (const flight of all) flight.controller.abort(new Error('the appliance is stopping'));
    await Promise.all(all.map((flight) => flight.finished));
  }

  // ---- fetches -------------------------------------------------------------------------------

  private coveringFlight(scope: InstanceScope): FetchFlight | undefined {
    for (const flight of this.flights.get(scope.studyUid) ?? []) if (flight.covers(scope)) return flight;
    return undefined;
  }

  /** The index does not know every instance the archive may hold for the scope. */
  private unlisted(scope: InstanceScope): boolean {
    const known = this.locations.inScope(scope).length;
    return known === 0 || (this.locations.reportedCount(scope) ?? 0) > known;
  }

  /**
   * The index knows no instance of the scope, here or in the archive: a study a search found (what a viewer
   * opens right after finding it), or one nothing here has ever named (a C-MOVE or a WADO-RS URL of a prior
   * study). Nothing of it is here, so all of it is fetched, in one request that need not wait for the listing.
   * Not an instance named without its series: the request needs the series, which only the listing gives.
   */
  private knowsNone(scope: InstanceScope): boolean {
    if (scope.sopInstanceUid !== undefined && scope.seriesUid === undefined) return false;
    return this.locations.inScope(scope).length === 0;
  }

  private incomplete(scope: InstanceScope): boolean {
    return this.unlisted(scope) || this.locations.inScope(scope).some(fetchable);
  }

  /**
   * The running fetch that covers the scope, or a new one when the scope needs the archive; else none.
   * A new fetch feeds `tap` as its answer arrives.
   */
  private flightFor(scope: InstanceScope, tap?: LiveTap): FetchFlight | undefined {
    const running = this.coveringFlight(scope);
    if (running) return running;
    const reader = this.options.reader();
    if (this.closed || !reader || !this.incomplete(scope)) return undefined;
    const flight = new FetchFlight({ ...scope }, (f) => this.fetch(f, reader), tap);
    let set = this.flights.get(scope.studyUid);
    if (!set) this.flights.set(scope.studyUid, (set = new Set()));
    set.add(flight);
    void flight.finished.then(() => {
      set.delete(flight);
      if (set.size === 0 && this.flights.get(scope.studyUid) === set) this.flights.delete(scope.studyUid);
    });
    return flight;
  }

  private async fetch(flight: FetchFlight, reader: ArchiveReader): Promise<void> {
    const { scope } = flight;
    const signal = flight.controller.signal;
    const started = Date.now();
    const ids = describe(scope);
    try {
      if (this.knowsNone(scope)) {
        await this.fetchUnlisted(flight, reader);
        return;
      }
      // Cloud rows first: a file whose commit a crash cuts short is then recovered as the archive's copy.
      if (this.unlisted(scope)) await this.listAtArchive(reader, scope, signal);
      flight.listingDone();
      const rows = this.locations.inScope(scope);
      const missing = rows.filter(fetchable);
      if (missing.length === 0) {
        this.log.info({ event: 'read-through-nothing', ...ids, archive: reader.name }, 'the archive holds nothing more of this');
        return;
      }
      const whole = missing.length === rows.length;
      this.log.info({ event: 'read-through-start', ...ids, archive: reader.name, missing: missing.length, local: rows.length - missing.length,
        requests: whole ? 'one' : 'per-instance' }, 'fetching from the archive');
      if (whole) await this.streamInto(flight, reader, scope, false, flight.tap);
      else flight.tap?.release();
      if (!whole) await this.eachLimited(missing, (row) => this.streamInto(flight, reader, { studyUid: row.studyUid, seriesUid: row.seriesUid, sopInstanceUid: row.sopInstanceUid }, true), signal);
      this.log.info({ event: 'read-through-done', ...ids, archive: reader.name, instances: flight.committed.length, ms: Date.now() - started }, 'fetched from the archive');
    } catch (error) {
      const failure = error as Error;
      this.log.warn({ event: 'read-through-failed', ...ids, archive: reader.name, instances: flight.committed.length, ms: Date.now() - started,
        kind: error instanceof ArchiveReadError ? error.kind : failure?.name, reason: failure?.message }, 'fetch from the archive failed');
      throw error;
    }
  }

  /**
   * Nothing of the scope here or listed: one request for the whole scope, sent without waiting for the archive
   * to list it. Each instance is renamed into place only once the listing's cloud rows are written, so a crash
   * between the two still leaves the file recovered as the archive's copy, never as local data. With a reader
   * taking the answer live, the listing waits until the first ingest (which that reader's end starts) or until
   * someone asks for it (a C-MOVE's count): a QIDO of every instance costs the archive about as much as the
   * retrieve, and on a small box both would take the cores the reader needs. A scope the archive does not hold
   * answers 404 and lists nothing: the fetch ends empty.
   */
  private async fetchUnlisted(flight: FetchFlight, reader: ArchiveReader): Promise<void> {
    const { scope } = flight;
    const started = Date.now();
    const ids = describe(scope);
    const listing = new PutOffListing(() => this.listAtArchive(reader, scope, flight.controller.signal));
    listing.settled.then(() => flight.listingDone(), (error: unknown) => flight.listingDone(error)); // also awaited below, and by each commit
    flight.listWhenWanted(() => listing.need());
    if (!flight.tap) listing.need();
    this.log.info({ event: 'read-through-start', ...ids, archive: reader.name, missing: 'unlisted', local: 0, requests: 'one' }, 'fetching from the archive');
    try {
      await this.streamInto(flight, reader, scope, false, flight.tap, listing);
    } catch (error) {
      listing.need();
      if (error instanceof ArchiveReadError && error.kind === 'not-found' && (await listing.settled.catch(() => undefined)) === 0) {
        this.log.info({ event: 'read-through-nothing', ...ids, archive: reader.name }, 'the archive holds nothing more of this');
        return;
      }
      throw error;
    }
    listing.need();
    await listing.settled;
    this.log.info({ event: 'read-through-done', ...ids, archive: reader.name, instances: flight.committed.length, ms: Date.now() - started }, 'fetched from the archive');
  }

  /**
   * Asks the archive which instances the scope has and keeps them as cloud rows (and the count it found);
   * resolves with the number it listed.
   */
  private async listAtArchive(reader: ArchiveReader, scope: InstanceScope, signal?: AbortSignal, timeoutMs?: number): Promise<number> {
    const listed = await reader.search({
      level: 'instance', studyUid: scope.studyUid, seriesUid: scope.seriesUid,
      match: scope.sopInstanceUid !== undefined ? { SOPInstanceUID: scope.sopInstanceUid } : undefined,
      includeFields: LISTED_FIELDS, pageSize: LIST_PAGE_SIZE, signal, timeoutMs,
    });
    const datasets = withScope(scope, listed).filter((dataset) => within(scope, identify(dataset)));
    const cloud = this.options.archive.cloud;
    const result = cloud.upsert('instance', datasets);
    if (result.skipped.length > 0) {
      this.log.warn({ event: 'read-through-list-skipped', ...describe(scope), skipped: result.skipped.slice(0, 10) }, 'archive listed instances without valid UIDs');
    }
    // What the archive holds now replaces an older count, so a stale one does not make every read list again.
    if (scope.sopInstanceUid === undefined && datasets.length > 0) {
      const count = { vr: 'IS', Value: [datasets.length] };
      const study = { [TAG.StudyInstanceUID]: { vr: 'UI', Value: [scope.studyUid] } };
      if (scope.seriesUid === undefined) cloud.upsert('study', [{ ...study, [TAG.NumberOfStudyRelatedInstances]: count }]);
      else cloud.upsert('series', [{ ...study, [TAG.SeriesInstanceUID]: { vr: 'UI', Value: [scope.seriesUid] }, [TAG.NumberOfSeriesRelatedInstances]: count }]);
    }
    return datasets.length;
  }

  /**
   * One WADO-RS request for `target`, every part written through the ingest and announced once committed.
   * An instance the archive no longer has (404 for a single instance) is skipped; a part that is not a
   * valid instance of the scope is logged and skipped; a cut connection fails the fetch. With `tap`, each part
   * is also handed to the reader that started the fetch as its bytes arrive; with `listing`, no instance
   * is renamed into place before it has settled (and none at all if it fails), and the first ingest starts it.
   */
  private async streamInto(
    flight: FetchFlight, reader: ArchiveReader, target: InstanceScope, oneOfMany = false, tap?: LiveTap, listing?: PutOffListing,
  ): Promise<void> {
    const signal = flight.controller.signal;
    const archive = this.options.archive;
    const lag = new LagBudget(this.options.ingestLagBytes ?? DEFAULT_INGEST_LAG_BYTES);
    // An instance's commit waits for its fsyncs; the next part is read meanwhile, so one stream's instances
    // share commits as concurrent senders' do, instead of paying one fsync round each in turn.
    const committing: Array<Promise<{ error?: unknown }>> = [];
    // Parts the live reader was given, on disk until that reader is done (or gone), then ingested.
    const spooled: Array<{ spool: PartSpool; tapped: TappedPart; answerPart: AnswerPart; published?: SpooledPart }> = [];
    const settle = async (outcome: Promise<{ error?: unknown }>) => {
      const { error } = await outcome;
      if (error !== undefined) throw error;
    };
    const ingest = (source: IngestSource, tapped: TappedPart | undefined, upstreamFailure: () => unknown, answerPart: AnswerPart): Promise<{ error?: unknown }> => archive.ingest(source, {
      callingAe: reader.name, peer: reader.baseUrl, origin: 'cloud', commitAfter: listing?.need(),
      expect: { studyInstanceUid: target.studyUid, ...(target.sopInstanceUid !== undefined ? { sopInstanceUid: target.sopInstanceUid } : {}) },
    }).then(
      (result): { error?: unknown } => {
        tapped?.committed(result.header.sopInstanceUid);
        const instance = this.locations.one(result.header.sopInstanceUid);
        if (instance && within(flight.scope, instance)) flight.add(instance);
        return {};
      },
      (error: unknown): { error?: unknown } => {
        if (upstreamFailure() !== undefined) return { error: upstreamFailure() };
        if (tapped?.given) {
          this.log.warn({ event: 'read-through-streamed-not-kept', ...describe(target), archive: reader.name, reason: (error as Error)?.message },
            'a part streamed to the reader could not be kept here');
        }
        if (error instanceof CannotUnderstandError || error instanceof MismatchError || error instanceof StudyMismatchError) {
          this.log.error({ event: 'read-through-part-refused', ...describe(target), archive: reader.name, reason: error.message }, 'the archive sent a part that is not an instance of this scope');
          return {};
        }
        return { error };
      },
    ).then((outcome) => {
      flight.partSettled(answerPart, outcome.error !== undefined);
      return outcome;
    });
    // Each spooled part leaves the list as its ingest starts, so a failure part-way leaves the rest listed.
    const ingestSpooled = async (failFast: boolean) => {
      while (spooled.length > 0) {
        if (signal.aborted) {
          // Stopping: what waits on disk is dropped, not ingested.
          for (const { spool, published } of spooled.splice(0)) dropSpool(spool, published);
          signal.throwIfAborted();
        }
        const { spool, tapped, answerPart, published } = spooled.shift()!;
        if (published) published.taken = true;
        // The ingest takes the spool file itself into place: no second copy of its bytes.
        committing.push(ingest(new WrittenTempFile(spool.path), tapped, () => undefined, answerPart).finally(() => spool.discard()));
        // A few at a time, as parts arriving would come: dozens of ingests reading and writing at once only contend.
        while (committing.length >= SPOOLED_INGESTS_AT_ONCE) {
          const outcome = committing.shift()!;
          if (failFast) await settle(outcome);
          else await outcome;
        }
      }
    };
    // Bytes this fetch has put on disk to be ingested later; past the limit, it goes at the ingest's pace instead.
    let spooledBytes = 0;
    const maxSpooledBytes = this.options.maxSpooledBytes ?? DEFAULT_MAX_SPOOLED_BYTES;
    try {
      for await (const part of reader.retrieve(target, { signal })) {
        const answerPart = flight.partStarted();
        let upstreamFailure: unknown;
        const tapped = tap?.listening ? new TappedPart(tap, part.transferSyntax) : undefined;
        // With a reader taking the parts live, each part goes to a spool file and its ingest waits for that reader
        // to be done: on a small box the durable write, the hash and the commits would take the cores it needs.
        // Otherwise the ingest takes the part's bytes from a queue as they come, at its own pace, the fetch at most
        // the lag budget ahead of it. Chunks read from a socket are never reused, so they are handed over, not copied.
        let spool = tapped && spooledBytes < maxSpooledBytes ? new PartSpool(archive.paths.spoolFile()) : undefined;
        let partSpooledBytes = 0;
        let feed: IngestFeed | undefined;
        const feedIngest = (source: IngestSource, onEnd: () => Promise<void> | void) => {
          // An ingest refused before it read anything leaves its queue to drop.
          const queue = feed!;
          committing.push(ingest(source, tapped, () => upstreamFailure, answerPart).finally(async () => {
            queue.close();
            await onEnd();
          }));
        };
        if (!spool) {
          feed = new IngestFeed(lag);
          feedIngest(feed.source(), () => undefined);
        }
        try {
          for await (const chunk of part.body) {
            // The reader and the spool or the ingest's queue take each chunk at the same time; the next waits for both.
            const taken = tapped?.write(chunk as Buffer);
            let room: Promise<void> | undefined;
            if (spool) {
              room = spool.write(chunk as Buffer);
              spooledBytes += (chunk as Buffer).length;
              partSpooledBytes += (chunk as Buffer).length;
            } else {
              room = feed?.push(chunk as Buffer);
            }
            if (taken) await taken;
            if (room) await room;
            if (spool && (spooledBytes >= maxSpooledBytes || partSpooledBytes >= MAX_SPOOLED_PART_BYTES)) {
              // This part's ingest starts now, from what is on disk and then from the queue; the whole parts before it
              // follow once this one is read (started here, their commits could wait ahead of this part's end).
              const head = spool;
              spool = undefined;
              await head.end();
              if (head.failed) {
                // The file lacks some of the part's bytes: the rest goes to the reader only, and the part is not kept.
                this.log.warn({ event: 'read-through-streamed-not-kept', ...describe(target), archive: reader.name, reason: head.failed.message },
                  'a part streamed to the reader could not be kept here');
                flight.partSettled(answerPart, false);
                void head.discard();
              } else {
                feed = new IngestFeed(lag);
                feedIngest(spooledThenQueued(head, feed), () => head.discard());
              }
            }
          }
          tapped?.end();
          feed?.end();
        } catch (error) {
          // The ingest reports a broken source as its own error; the archive's classified one is the cause.
          upstreamFailure = error;
          tapped?.fail(error);
          feed?.fail(error);
          flight.partSettled(answerPart, true);
          if (spool) void spool.discard();
          throw error;
        }
        if (spool) {
          await spool.end();
          if (!spool.failed) {
            // Whole on disk: readers following the fetch may read it from here until its ingest takes it.
            const published = tapped!.transferSyntax !== undefined
              ? { path: spool.path, transferSyntax: tapped!.transferSyntax, taken: false, answerPart } : undefined;
            if (published) flight.addSpooled(published);
            spooled.push({ spool, tapped: tapped!, answerPart, published });
          } else {
            this.log.warn({ event: 'read-through-streamed-not-kept', ...describe(target), archive: reader.name, reason: spool.failed.message },
              'a part streamed to the reader could not be kept here');
            flight.partSettled(answerPart, false);
            void spool.discard();
          }
        }
        // The reader left, or the fetch has spooled all it may: what waits on disk is ingested now, and the parts
        // after it go straight to the ingest.
        if (spooled.length > 0 && (!tap!.listening || spooledBytes >= maxSpooledBytes)) await ingestSpooled(true);
        while (committing.length >= MAX_COMMITTING) await settle(committing.shift()!);
      }
      // The whole answer is read: once the reader given it live has taken it all (or left), the parts it was given
      // are ingested.
      if (!oneOfMany && sameScope(target, flight.scope)) flight.answerWhole();
      tap?.finish();
      await tap?.allTaken();
      await ingestSpooled(true);
      while (committing.length > 0) await settle(committing.shift()!);
    } catch (error) {
      // Whole instances already received still commit, spooled ones too, so a cut fetch leaves them indexed and
      // nothing half; unless the appliance is stopping, when spooled parts are dropped rather than ingested.
      if (signal.aborted) for (const { spool, published } of spooled.splice(0)) dropSpool(spool, published);
      else await ingestSpooled(false).catch(() => undefined);
      await Promise.all(committing);
      if (oneOfMany && error instanceof ArchiveReadError && error.kind === 'not-found') {
        this.log.warn({ event: 'read-through-gone', ...describe(target), archive: reader.name }, 'the archive no longer has this instance');
        return;
      }
      throw error;
    }
  }

  /** Runs `work` for each item, at most `instanceConcurrency` at a time; the first failure stops the rest. */
  private async eachLimited<T>(items: readonly T[], work: (item: T) => Promise<void>, signal: AbortSignal): Promise<void> {
    let next = 0;
    let failed = false;
    const lane = async () => {
      while (!failed && next < items.length) {
        signal.throwIfAborted();
        const item = items[next++]!;
        try {
          await work(item);
        } catch (error) {
          failed = true;
          throw error;
        }
      }
    };
    const lanes = Array.from({ length: Math.min(this.options.instanceConcurrency ?? 4, items.length) }, lane);
    const results = await Promise.allSettled(lanes);
    const rejected = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (rejected) throw rejected.reason;
  }
}
