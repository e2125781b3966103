/**
 * Prefetch of priors in the index: one job per study to fetch from the archive in the background
 * (queued → fetching → done | failed, cloud/prefetch.ts drives them), the read model the app shows, and
 * what planning needs to know: a patient's studies here, and whether forwarding has work.
 */
import type { Statement } from 'better-sqlite3';
import { statementCache, type Db } from './database.js';

export type PrefetchState = 'queued' | 'fetching' | 'done' | 'failed';

export interface PrefetchJob {
  id: number;
  studyUid: string;
  patientId: string;
  issuerOfPatientId: string;
  /** The study whose arrival asked for it ('' for a new cloud study of a patient seen here). */
  triggerStudyUid: string;
  state: PrefetchState;
  attempts: number;
  /** Not tried again before (epoch ms), after a failure the archive may get over. */
  notBefore: number;
  instancesFetched: number;
  lastError: string | null;
  createdAt: number;
  updatedAt: number;
}

/** A job as the app lists it, with what the index knows of its study. */
export interface PrefetchJobView extends PrefetchJob {
  patientName: string;
  studyDate: string;
  studyDescription: string;
  modalities: string[];
  /** Instances the study has (as far as known: here or reported by the archive), and those here. */
  numInstances: number;
  numLocalInstances: number;
}

/** A study of a patient as planning weighs it. */
export interface PatientStudy {
  studyUid: string;
  studyDate: string;
  studyTime: string;
  /** Local series' modalities and those the archive reported. */
  modalities: string[];
  /** All of its known instances are here. */
  complete: boolean;
}

export interface PrefetchCounts {
  queued: number;
  fetching: number;
  done: number;
  failed: number;
}

const COLUMNS = `id, study_uid AS studyUid, patient_id AS patientId, issuer_of_patient_id AS issuerOfPatientId,
  trigger_study_uid AS triggerStudyUid, state, attempts, not_before AS notBefore, instances_fetched AS instancesFetched,
  last_error AS lastError, created_at AS createdAt, updated_at AS updatedAt`;

export class PrefetchJobs {
  private readonly prepared: (sql: string) => Statement;

  constructor(private readonly db: Db) {
    this.prepared = statementCache(db);
  }

  /**
   * Queues these studies. A study already queued or being fetched stays as it is; one done or failed before
   * is queued again (e.g. evicted since, or the archive was offline). Returns the studies queued now.
   */
  enqueue(jobs: ReadonlyArray<{ studyUid: string; patientId: string; issuerOfPatientId: string; triggerStudyUid: string }>, now = Date.now()): string[] {
    const insert = this.prepared(`
      INSERT INTO prefetch_jobs (study_uid, patient_id, issuer_of_patient_id, trigger_study_uid, state, created_at, updated_at)
      VALUES (@studyUid, @patientId, @issuerOfPatientId, @triggerStudyUid, 'queued', @now, @now)
      ON CONFLICT(study_uid) DO UPDATE SET
        state = 'queued', trigger_study_uid = excluded.trigger_study_uid, attempts = 0, not_before = 0,
        instances_fetched = 0, last_error = NULL, updated_at = excluded.updated_at
      WHERE prefetch_jobs.state IN ('done', 'failed')`);
    return this.db.transaction(() => jobs.filter((job) => insert.run({ ...job, now }).changes > 0).map((job) => job.studyUid))();
  }

  /** The next queued job due by `now`, now marked fetching; undefined when there is none. */
  claimNext(now = Date.now()): PrefetchJob | undefined {
    return this.prepared(`
      UPDATE prefetch_jobs SET state = 'fetching', attempts = attempts + 1, updated_at = @now
      WHERE id = (SELECT id FROM prefetch_jobs WHERE state = 'queued' AND not_before <= @now ORDER BY id LIMIT 1)
      RETURNING ${COLUMNS}`).get({ now }) as PrefetchJob | undefined;
  }

  /** When the next queued job is due (epoch ms); undefined when none is queued. */
  nextDue(): number | undefined {
    const row = this.prepared("SELECT MIN(not_before) AS due FROM prefetch_jobs WHERE state = 'queued'").get() as { due: number | null };
    return row.due ?? undefined;
  }

  progress(id: number, instancesFetched: number, now = Date.now()): void {
    this.prepared('UPDATE prefetch_jobs SET instances_fetched = ?, updated_at = ? WHERE id = ?').run(instancesFetched, now, id);
  }

  done(id: number, instancesFetched: number, now = Date.now()): void {
    this.prepared("UPDATE prefetch_jobs SET state = 'done', instances_fetched = ?, last_error = NULL, updated_at = ? WHERE id = ?")
      .run(instancesFetched, now, id);
  }

  failed(id: number, error: string, now = Date.now()): void {
    this.prepared("UPDATE prefetch_jobs SET state = 'failed', last_error = ?, updated_at = ? WHERE id = ?").run(error, now, id);
  }

  /** Back in the queue, not before `notBefore` (the archive could not be reached). */
  retryLater(id: number, error: string, notBefore: number, now = Date.now()): void {
    this.prepared("UPDATE prefetch_jobs SET state = 'queued', last_error = ?, not_before = ?, updated_at = ? WHERE id = ?").run(error, notBefore, now, id);
  }

  /** Fetches cut by a stop or crash are queued again. Returns how many. */
  resetInterrupted(now = Date.now()): number {
    return this.prepared("UPDATE prefetch_jobs SET state = 'queued', updated_at = ? WHERE state = 'fetching'").run(now).changes;
  }

  get(studyUid: string): PrefetchJob | undefined {
    return this.prepared(`SELECT ${COLUMNS} FROM prefetch_jobs WHERE study_uid = ?`).get(studyUid) as PrefetchJob | undefined;
  }

  counts(): PrefetchCounts {
    const counts: PrefetchCounts = { queued: 0, fetching: 0, done: 0, failed: 0 };
    for (const row of this.prepared('SELECT state, COUNT(*) AS n FROM prefetch_jobs GROUP BY state').all() as Array<{ state: PrefetchState; n: number }>) {
      counts[row.state] = row.n;
    }
    return counts;
  }

  /** Jobs for the app: the working ones first, then the most recently changed. */
  list(options: { state?: PrefetchState; limit: number; offset: number }): PrefetchJobView[] {
    const rows = this.prepared(`
      SELECT j.id, j.study_uid AS studyUid, j.patient_id AS patientId, j.issuer_of_patient_id AS issuerOfPatientId,
        j.trigger_study_uid AS triggerStudyUid, j.state, j.attempts, j.not_before AS notBefore, j.instances_fetched AS instancesFetched,
        j.last_error AS lastError, j.created_at AS createdAt, j.updated_at AS updatedAt,
        COALESCE(st.patient_name, '') AS patientName, COALESCE(st.study_date, '') AS studyDate,
        COALESCE(st.study_description, '') AS studyDescription, COALESCE(st.modalities_in_study, '') AS localModalities,
        COALESCE(st.cloud_modalities, '[]') AS cloudModalities,
        COALESCE(MAX(st.num_instances, COALESCE(st.cloud_num_instances, 0)), 0) AS numInstances,
        COALESCE(st.num_local_instances, 0) AS numLocalInstances
      FROM prefetch_jobs j LEFT JOIN studies st ON st.study_uid = j.study_uid
      WHERE @state IS NULL OR j.state = @state
      ORDER BY CASE j.state WHEN 'fetching' THEN 0 WHEN 'queued' THEN 1 ELSE 2 END, j.updated_at DESC, j.id DESC
      LIMIT @limit OFFSET @offset`).all({ state: options.state ?? null, limit: options.limit, offset: options.offset }) as Array<
      PrefetchJob & Omit<PrefetchJobView, 'modalities'> & { localModalities: string; cloudModalities: string }>;
    return rows.map(({ localModalities, cloudModalities, ...row }) => ({ ...row, modalities: modalitiesOf(localModalities, cloudModalities) }));
  }

  // ---- what planning reads ---------------------------------------------------------------------

  /** Who a study is for: PatientID and issuer ('' when it has none); undefined for an unknown study. */
  patientOf(studyUid: string): { patientId: string; issuerOfPatientId: string } | undefined {
    return this.prepared('SELECT patient_id AS patientId, issuer_of_patient_id AS issuerOfPatientId FROM studies WHERE study_uid = ?')
      .get(studyUid) as { patientId: string; issuerOfPatientId: string } | undefined;
  }

  /** The patient's studies in the index (local and cloud rows), same PatientID and same issuer. */
  studiesOfPatient(patientId: string, issuerOfPatientId: string): PatientStudy[] {
    const rows = this.prepared(`
      SELECT study_uid AS studyUid, study_date AS studyDate, study_time AS studyTime, modalities_in_study AS localModalities,
        cloud_modalities AS cloudModalities,
        num_local_instances > 0 AND num_local_instances >= MAX(num_instances, COALESCE(cloud_num_instances, 0)) AS complete
      FROM studies WHERE patient_id = ? AND issuer_of_patient_id = ?`).all(patientId, issuerOfPatientId) as Array<{
      studyUid: string; studyDate: string; studyTime: string; localModalities: string; cloudModalities: string; complete: number }>;
    return rows.map((r) => ({
      studyUid: r.studyUid, studyDate: r.studyDate, studyTime: r.studyTime,
      modalities: modalitiesOf(r.localModalities, r.cloudModalities), complete: r.complete === 1,
    }));
  }

  /** Some study of the patient has local instances (the patient is seen at this site). */
  patientHasLocalStudies(patientId: string, issuerOfPatientId: string): boolean {
    return this.prepared('SELECT 1 FROM studies WHERE patient_id = ? AND issuer_of_patient_id = ? AND num_local_instances > 0 LIMIT 1')
      .get(patientId, issuerOfPatientId) !== undefined;
  }

  /**
   * Forwarding to `destination` has something to send now: a row being sent, or one pending and due.
   * (Rows waiting out a backoff do not count: forwarding is not using the link then.)
   */
  forwardingBusy(destination: string, now = Date.now()): boolean {
    return this.prepared(`
      SELECT 1 FROM outbox WHERE destination = @destination
        AND (state = 'sending' OR (state = 'pending' AND next_attempt_at <= @now)) LIMIT 1`).get({ destination, now }) !== undefined;
  }
}

function modalitiesOf(local: string, cloud: string): string[] {
  let reported: unknown = [];
  try {
    reported = JSON.parse(cloud);
  } catch {
    // an unreadable value counts as none reported
  }
  const all = [...local.split('\\'), ...(Array.isArray(reported) ? reported.filter((m): m is string => typeof m === 'string') : [])];
  return [...new Set(all.filter((m) => m !== ''))].sort();
}
