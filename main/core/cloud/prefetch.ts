/**
 * Prefetch of priors (settings: cloud.prefetch): when a study arrives here for a patient (PatientID plus
 * IssuerOfPatientID), or the archive reports a new study of a patient seen here (cloud-sync.ts), the
 * archive is searched for that patient's studies, they are kept as cloud rows, and the priors the rules
 * choose (prefetch-plan.ts) are queued as jobs in the index (store/prefetch-jobs.ts): queued → fetching →
 * done | failed, which the app shows.
 *
 * Forwarding goes first: a fetch starts only while forwarding to the archive destination has nothing to send
 * now, and at most cloud.prefetch.concurrency fetches run at once (default 1). A fetch already running
 * finishes its study. A fetch that cannot reach the archive is queued again later (backing off); one that
 * fails otherwise, or keeps failing, is failed with the reason. Data fetched is cloud-origin (never
 * forwarded), so it triggers no prefetch of its own.
 */
import type { Logger } from 'pino';
import { jsonString, type ReceivedDicomJson } from '../dicom/dicom-json-values.js';
import { tagOf, tagsOf } from '../dicom/dictionary.js';
import type { ApplianceService } from '../service.js';
import type { CloudSettings } from '../contract/settings.js';
import type { Archive } from '../store/archive.js';
import type { PrefetchJob } from '../store/prefetch-jobs.js';
import { ArchiveReadError } from './archive-errors.js';
import type { ArchiveReader } from './archive-reader.js';
import { choosePriors } from './prefetch-plan.js';
import type { ReadThrough } from './read-through.js';

/**
 * Makes a study local (read-through retrieve of the whole study); resolves with the instances it has here
 * afterwards. `onInstance` is told the running count.
 */
export type FetchStudy = (studyUid: string, options: { signal: AbortSignal; onInstance: (count: number) => void }) => Promise<number>;

/** A whole study through read-through retrieve: what is here counts, what is not is fetched and ingested. */
export function fetchThrough(readThrough: Pick<ReadThrough, 'retrieve'>): FetchStudy {
  return async (studyUid, { signal, onInstance }) => {
    let count = 0;
    for await (const _instance of readThrough.retrieve({ studyUid }, { signal })) onInstance(++count);
    return count;
  };
}

export interface PrefetchOptions {
  archive: Pick<Archive, 'events' | 'cloud' | 'prefetch'>;
  /** The archive destination's reader, asked each time; undefined while no destination is the archive. */
  reader: () => Pick<ArchiveReader, 'name' | 'search'> | undefined;
  fetchStudy: FetchStudy;
  /** Read at each use. */
  settings: () => CloudSettings['prefetch'];
  logger: Logger;
  /** Today, for the rules' maximum age; default the clock. */
  now?: () => Date;
  /** How often a blocked queue looks again whether forwarding is done (it also wakes on outbox events). */
  recheckMs?: number;
}

const TAG = tagsOf('PatientID', 'IssuerOfPatientID', 'StudyInstanceUID');
const SEARCH_FIELDS = ['IssuerOfPatientID', 'ModalitiesInStudy', 'StudyDate', 'StudyTime', 'StudyDescription',
  'NumberOfStudyRelatedSeries', 'NumberOfStudyRelatedInstances'].map(tagOf);
const SEARCH_LIMIT = 500;
const SEARCH_TIMEOUT_MS = 30_000;
const RETRY_BASE_MS = 30_000;
const RETRY_CAP_MS = 30 * 60_000;
/** A fetch the archive keeps refusing or cannot serve is given up after this many attempts. */
const MAX_ATTEMPTS = 8;
const PROGRESS_EVERY_MS = 500;

export class Prefetcher implements ApplianceService {
  readonly name = 'prefetch';
  private readonly log: Logger;
  private readonly unsubscribe: Array<() => void> = [];
  private readonly controller = new AbortController();
  private readonly running = new Set<Promise<void>>();
  /** Planning runs one patient at a time, in arrival order. */
  private planning: Promise<void> = Promise.resolve();
  /** Studies planned for in this run (an arriving study's later instances plan nothing more). */
  private readonly planned = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private stopped = true;
  private offlineSince: number | undefined;

  constructor(private readonly options: PrefetchOptions) {
    this.log = options.logger.child({ component: 'prefetch' });
  }

  async start(): Promise<string[]> {
    this.stopped = false;
    const resumed = this.options.archive.prefetch.resetInterrupted();
    if (resumed > 0) this.log.info({ event: 'prefetch-resumed', jobs: resumed }, 'prefetches cut by a stop or crash are queued again');
    const { events } = this.options.archive;
    this.unsubscribe.push(events.on('instance-stored', (stored) => {
      if (stored.origin === 'local') this.studyArrived(stored.studyUid);
    }));
    // Forwarding's progress may open the way for a fetch.
    this.unsubscribe.push(events.on('outbox-changed', (change) => {
      if (change.state !== 'pending') this.pump();
    }));
    this.pump();
    return [];
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const off of this.unsubscribe.splice(0)) off();
    if (this.timer) clearTimeout(this.timer);
    this.controller.abort(new Error('prefetch stopped'));
    await this.planning.catch(() => undefined);
    await Promise.allSettled([...this.running]);
  }

  /** A study arrived here (its first instance in this run): plan for its patient. */
  studyArrived(studyUid: string): void {
    if (this.stopped || this.planned.has(studyUid)) return;
    this.remember(studyUid);
    this.enqueuePlanning(async () => {
      const patient = this.options.archive.prefetch.patientOf(studyUid);
      if (patient) await this.planFor(patient, studyUid);
    });
  }

  /** The archive reported studies the index did not know: plan for their patients who are seen here. */
  cloudStudiesAppeared(studyUids: readonly string[]): void {
    if (this.stopped) return;
    this.enqueuePlanning(async () => {
      const seen = new Set<string>();
      for (const studyUid of studyUids) {
        const patient = this.options.archive.prefetch.patientOf(studyUid);
        if (!patient || patient.patientId === '') continue;
        const key = `${patient.patientId}\u0000${patient.issuerOfPatientId}`;
        if (seen.has(key) || !this.options.archive.prefetch.patientHasLocalStudies(patient.patientId, patient.issuerOfPatientId)) continue;
        seen.add(key);
        await this.planFor(patient, '');
      }
    });
  }

  /**
   * The archive updated these studies and their stale local copies were dropped: a pinned ("keep local")
   * study is queued to be fetched again, in its new version.
   */
  copiesDropped(studyUids: readonly string[]): void {
    if (this.stopped) return;
    const { cloud, prefetch } = this.options.archive;
    const jobs = studyUids.filter((uid) => cloud.studyLocation(uid)?.pinned).map((studyUid) => {
      const patient = prefetch.patientOf(studyUid) ?? { patientId: '', issuerOfPatientId: '' };
      return { studyUid, ...patient, triggerStudyUid: '' };
    });
    if (jobs.length === 0) return;
    const queued = prefetch.enqueue(jobs);
    this.log.info({ event: 'prefetch-pinned-refresh', queued }, 'pinned studies updated in the archive are fetched again');
    this.pump();
  }

  /** Resolves once planning asked for so far is done (for tests and an orderly stop). */
  idle(): Promise<void> {
    return this.planning;
  }

  private remember(studyUid: string): void {
    this.planned.add(studyUid);
    if (this.planned.size > 10_000) this.planned.delete(this.planned.values().next().value!);
  }

  private enqueuePlanning(work: () => Promise<void>): void {
    this.planning = this.planning.then(work).catch((error: unknown) => {
      const kind = error instanceof ArchiveReadError ? error.kind : 'other';
      this.log.warn({ event: 'prefetch-plan-failed', kind, reason: (error as Error)?.message ?? String(error) },
        'priors could not be looked up in the archive; this arrival prefetches nothing');
    });
  }

  /** Searches the archive for the patient's studies, keeps them as cloud rows, and queues the chosen priors. */
  private async planFor(patient: { patientId: string; issuerOfPatientId: string }, triggerStudyUid: string): Promise<void> {
    const { rules } = this.options.settings();
    const reader = this.options.reader();
    if (rules.length === 0 || !reader || patient.patientId === '' || this.stopped) return;
    const { archive } = this.options;
    const answers = await reader.search({
      level: 'study', match: { PatientID: patient.patientId, ...(patient.issuerOfPatientId ? { IssuerOfPatientID: patient.issuerOfPatientId } : {}) },
      includeFields: SEARCH_FIELDS, limit: SEARCH_LIMIT, timeoutMs: SEARCH_TIMEOUT_MS, signal: this.controller.signal,
    });
    const samePatient = answers.filter((d) => isPatient(d, patient)).map((d) => withIssuer(d, patient.issuerOfPatientId));
    archive.cloud.upsert('study', samePatient);
    const studies = archive.prefetch.studiesOfPatient(patient.patientId, patient.issuerOfPatientId);
    const chosen = choosePriors(rules, studies, { exclude: new Set([triggerStudyUid]), today: this.options.now?.() ?? new Date() });
    const queued = archive.prefetch.enqueue(chosen.map((studyUid) => ({ studyUid, ...patient, triggerStudyUid })));
    this.log.info({ event: 'prefetch-planned', triggerStudyUid, archiveStudies: samePatient.length, chosen, queued }, 'priors chosen for prefetch');
    this.pump();
  }

  /** Starts fetches while there is room, queued work and forwarding has nothing to send. */
  private pump(): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const { prefetch } = this.options.archive;
    while (this.running.size < this.options.settings().concurrency) {
      const reader = this.options.reader();
      if (!reader) return;
      const now = Date.now();
      if (prefetch.forwardingBusy(reader.name, now)) {
        if (prefetch.nextDue() !== undefined) this.wakeIn(this.options.recheckMs ?? 1000);
        return;
      }
      const job = prefetch.claimNext(now);
      if (!job) {
        const due = prefetch.nextDue();
        if (due !== undefined) this.wakeIn(Math.max(due - now, 10));
        return;
      }
      const run = this.fetch(job).finally(() => {
        this.running.delete(run);
        this.pump();
      });
      this.running.add(run);
    }
  }

  private wakeIn(ms: number): void {
    this.timer = setTimeout(() => this.pump(), ms);
    this.timer.unref?.();
  }

  private async fetch(job: PrefetchJob): Promise<void> {
    const { prefetch } = this.options.archive;
    const log = this.log.child({ studyUid: job.studyUid, attempt: job.attempts });
    log.info({ event: 'prefetch-fetching' }, 'prefetching a prior study');
    let lastProgress = 0;
    try {
      const count = await this.options.fetchStudy(job.studyUid, {
        signal: this.controller.signal,
        onInstance: (n) => {
          if (Date.now() - lastProgress < PROGRESS_EVERY_MS) return;
          lastProgress = Date.now();
          prefetch.progress(job.id, n);
        },
      });
      if (count === 0) throw new ArchiveReadError('not-found', `the archive holds no instances of study ${job.studyUid}`, { url: '', retryable: false });
      prefetch.done(job.id, count);
      if (this.offlineSince !== undefined) log.info({ event: 'prefetch-online', offlineMs: Date.now() - this.offlineSince }, 'the archive answers prefetches again');
      this.offlineSince = undefined;
      log.info({ event: 'prefetch-done', instances: count }, 'prior study prefetched');
    } catch (error) {
      const reason = (error as Error)?.message ?? String(error);
      if (this.controller.signal.aborted) {
        prefetch.retryLater(job.id, 'interrupted by a stop', 0);
        return;
      }
      const retryable = error instanceof ArchiveReadError && error.retryable;
      if (retryable && job.attempts < MAX_ATTEMPTS) {
        const delay = Math.min(RETRY_CAP_MS, RETRY_BASE_MS * 2 ** (job.attempts - 1));
        prefetch.retryLater(job.id, reason, Date.now() + delay);
        if (this.offlineSince === undefined) {
          this.offlineSince = Date.now();
          log.warn({ event: 'prefetch-offline', reason, retryInMs: delay }, 'the archive cannot be reached for prefetch; trying again later');
        }
        return;
      }
      prefetch.failed(job.id, reason);
      log.warn({ event: 'prefetch-failed', reason }, 'prefetch of a prior study failed');
    }
  }
}

/** The same PatientID, exactly (QIDO matching may be wider), and the same issuer where the answer names one. */
function isPatient(dataset: ReceivedDicomJson, patient: { patientId: string; issuerOfPatientId: string }): boolean {
  if (jsonString(dataset, TAG.PatientID) !== patient.patientId || jsonString(dataset, TAG.StudyInstanceUID) === '') return false;
  const issuer = jsonString(dataset, TAG.IssuerOfPatientID);
  return issuer === patient.issuerOfPatientId || (issuer === '' && patient.issuerOfPatientId !== '');
}

/** An answer to a search by issuer that does not repeat it still is of that issuer. */
function withIssuer(dataset: ReceivedDicomJson, issuer: string): ReceivedDicomJson {
  if (issuer === '' || jsonString(dataset, TAG.IssuerOfPatientID) !== '') return dataset;
  return { ...dataset, [TAG.IssuerOfPatientID]: { vr: 'LO', Value: [issuer] } };
}
