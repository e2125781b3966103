/**
 * The index's view of the cloud archive: rows for what the archive holds (from QIDO-RS answers), which local
 * instances it holds too, access times and pins for eviction, and where a change feed was read up to.
 * Cloud rows never enter the outbox. File work (dropping a local copy) is Archive.evictInstance's.
 */
import type { Statement } from 'better-sqlite3';
import { jsonInteger, jsonString, jsonStrings, type ReceivedDicomJson } from '../dicom/dicom-json-values.js';
import { tagsOf } from '../dicom/dictionary.js';
import { uidProblem } from '../dicom/uid.js';
import { statementCache, commitWithoutSync, type Db } from './database.js';
import { UNROUTED_DESTINATION } from './index-writer.js';
import { IndexWriter } from './index-writer.js';
import type { ArchivePaths } from './paths.js';

/** Where a study's instances are: all here, only in the archive, or here and in the archive (also: partly here). */
export type StudyLocation = 'local' | 'cloud' | 'both';

/**
 * Where a study is, from its index row: nothing here is 'cloud'; some here and more known (or some of it
 * held by the archive) is 'both'; all here and none in the archive is 'local'.
 */
export function locationOf(row: { num_instances: number; num_local_instances: number; cloud_num_instances: number | null; in_cloud: number }): StudyLocation {
  const known = Math.max(row.num_instances, row.cloud_num_instances ?? 0);
  return row.num_local_instances === 0 ? 'cloud' : row.num_local_instances < known || row.in_cloud ? 'both' : 'local';
}

export interface CloudUpsertResult {
  studies: number;
  series: number;
  instances: number;
  /** Datasets left out, with the reason (missing or invalid UIDs); nothing of them was written. */
  skipped: Array<{ index: number; reason: string }>;
}

export interface EvictionCandidate {
  studyUid: string;
  /** Bytes of the study's local copies. */
  localBytes: number;
  lastAccessAt: number;
}

export interface StudyLocationRow {
  studyUid: string;
  location: StudyLocation;
  numInstances: number;
  numLocalInstances: number;
  /** Instances the archive reported for the study (NumberOfStudyRelatedInstances), if it did. */
  cloudNumInstances: number | null;
  /** Some instance of the study is known to be held by the archive. */
  inCloud: boolean;
  pinned: boolean;
  lastAccessAt: number;
}

export interface ChangeFeedCursorRow {
  cursor: string;
  updatedAt: number;
}

const TAG = tagsOf(
  'SpecificCharacterSet', 'StudyDate', 'StudyTime', 'AccessionNumber', 'Modality', 'ModalitiesInStudy',
  'ReferringPhysicianName', 'StudyDescription', 'SeriesDescription', 'PatientName', 'PatientID', 'IssuerOfPatientID',
  'PatientBirthDate', 'PatientSex', 'BodyPartExamined', 'StudyInstanceUID', 'SeriesInstanceUID', 'StudyID',
  'SeriesNumber', 'InstanceNumber', 'NumberOfStudyRelatedSeries', 'NumberOfStudyRelatedInstances',
  'NumberOfSeriesRelatedInstances', 'TransferSyntaxUID', 'SOPClassUID', 'SOPInstanceUID',
  'AvailableTransferSyntaxUID', 'NumberOfFrames', 'Rows', 'Columns', 'PerformedProcedureStepStartDate',
);

/**
 * One column's update on conflict: a value the archive leaves empty never blanks a known one, and a row with
 * local copies keeps what its files say (the archive may answer with fewer attributes, or other casing).
 */
function keepLocal(table: string, column: string, localCondition: string, empty: "''" | 'NULL'): string {
  const isEmpty = (value: string) => (empty === 'NULL' ? `${value} IS NULL` : `(${value} IS NULL OR ${value} = '')`);
  return `${column} = CASE WHEN ${isEmpty(`excluded.${column}`)} OR (${localCondition} AND NOT ${isEmpty(`${table}.${column}`)})
    THEN ${table}.${column} ELSE excluded.${column} END`;
}

const STUDY_TEXT = ['patient_name', 'patient_id', 'issuer_of_patient_id', 'patient_birth_date', 'patient_sex', 'study_date', 'study_time', 'accession_number',
  'study_id', 'study_description', 'referring_physician_name', 'specific_character_set'] as const;
const SERIES_TEXT = ['modality', 'series_description', 'body_part_examined', 'pps_start_date'] as const;

/*
 * The upserts of cloud rows, built once: a listing of a large study upserts a study, a series and an
 * instance per instance it lists, and rebuilding these statements' text each time cost more than running them.
 */
const STUDY_HAS_LOCAL = 'studies.num_local_instances > 0';
const UPSERT_STUDY = `
      INSERT INTO studies (study_uid, ${STUDY_TEXT.join(', ')}, cloud_num_series, cloud_num_instances, cloud_modalities,
        received_at, updated_at, last_access_at)
      VALUES (@studyUid, ${STUDY_TEXT.map((c) => `@${c}`).join(', ')}, @cloudSeries, @cloudInstances, @modalities, @now, @now, 0)
      ON CONFLICT(study_uid) DO UPDATE SET
        ${STUDY_TEXT.map((c) => keepLocal('studies', c, STUDY_HAS_LOCAL, "''")).join(',\n')},
        cloud_num_series = COALESCE(excluded.cloud_num_series, studies.cloud_num_series),
        cloud_num_instances = COALESCE(excluded.cloud_num_instances, studies.cloud_num_instances),
        cloud_modalities = CASE WHEN excluded.cloud_modalities = '[]' THEN studies.cloud_modalities ELSE excluded.cloud_modalities END`;

const SERIES_HAS_LOCAL = 'series.num_local_instances > 0';
const UPSERT_SERIES = `
      INSERT INTO series (series_uid, study_uid, ${SERIES_TEXT.join(', ')}, series_number, cloud_num_instances, received_at)
      VALUES (@seriesUid, @studyUid, ${SERIES_TEXT.map((c) => `@${c}`).join(', ')}, @series_number, @cloudInstances, @now)
      ON CONFLICT(series_uid) DO UPDATE SET
        ${[...SERIES_TEXT.map((c) => keepLocal('series', c, SERIES_HAS_LOCAL, "''")), keepLocal('series', 'series_number', SERIES_HAS_LOCAL, 'NULL')].join(',\n')},
        cloud_num_instances = COALESCE(excluded.cloud_num_instances, series.cloud_num_instances)`;

const INSTANCE_TEXT = ['sop_class_uid', 'transfer_syntax_uid'] as const;
const INSTANCE_NUMBERS = ['instance_number', 'number_of_frames', 'rows', 'columns'] as const;
const INSTANCE_IS_LOCAL = 'instances.local = 1';
const UPSERT_INSTANCE = `
      INSERT INTO instances (sop_instance_uid, series_uid, study_uid, ${INSTANCE_TEXT.join(', ')}, ${INSTANCE_NUMBERS.join(', ')},
        size_bytes, sha256, calling_ae, received_at, path, file_missing, local, in_cloud)
      VALUES (@sopInstanceUid, @seriesUid, @studyUid, ${INSTANCE_TEXT.map((c) => `@${c}`).join(', ')}, ${INSTANCE_NUMBERS.map((c) => `@${c}`).join(', ')},
        0, '', '', @now, @path, 1, 0, 1)
      ON CONFLICT(sop_instance_uid) DO UPDATE SET
        ${[...INSTANCE_TEXT.map((c) => keepLocal('instances', c, INSTANCE_IS_LOCAL, "''")), ...INSTANCE_NUMBERS.map((c) => keepLocal('instances', c, INSTANCE_IS_LOCAL, 'NULL'))].join(',\n')},
        in_cloud = 1
      RETURNING series_uid, study_uid`;

export class CloudIndex {
  private readonly writer: IndexWriter;
  private readonly prepared: (sql: string) => Statement;

  constructor(private readonly db: Db, private readonly paths: Pick<ArchivePaths, 'relativeInstancePath'>) {
    this.prepared = statementCache(db);
    this.writer = new IndexWriter(db);
  }

  /** Runs `work` as one durable transaction (e.g. the rows of a change-feed batch together with its cursor). */
  transaction<T>(work: () => T): T {
    return this.db.transaction(work)();
  }

  // ---- rows from the archive's answers -------------------------------------------------------

  /**
   * Keeps QIDO-RS (or metadata) datasets of one level as cloud rows: studies, series (with their study) or
   * instances (with their series and study). New rows are cloud-only; existing rows are completed, never made
   * less complete, and rows with local copies keep their own attributes. Instances are marked as held by the
   * archive. Nothing is queued for forwarding. One transaction; datasets without valid UIDs are skipped.
   */
  upsert(level: 'study' | 'series' | 'instance', datasets: readonly ReceivedDicomJson[], now = Date.now()): CloudUpsertResult {
    const result: CloudUpsertResult = { studies: 0, series: 0, instances: 0, skipped: [] };
    const touchedSeries = new Set<string>();
    const touchedStudies = new Set<string>();
    this.db.transaction(() => {
      datasets.forEach((dataset, index) => {
        const ids = this.identify(level, dataset);
        if ('reason' in ids) {
          result.skipped.push({ index, reason: ids.reason });
          return;
        }
        this.upsertStudy(ids.studyUid, dataset, now);
        result.studies++;
        if (ids.seriesUid === undefined) return;
        this.upsertSeries(ids.studyUid, ids.seriesUid, dataset, now);
        result.series++;
        touchedStudies.add(ids.studyUid);
        if (ids.sopInstanceUid === undefined) return;
        const owner = this.upsertInstance(ids.studyUid, ids.seriesUid, ids.sopInstanceUid, dataset, now);
        touchedSeries.add(owner.seriesUid);
        touchedStudies.add(owner.studyUid);
        result.instances++;
      });
      for (const seriesUid of touchedSeries) this.writer.recountSeries(seriesUid);
      for (const studyUid of touchedStudies) this.writer.recountStudy(studyUid, now);
    })();
    return result;
  }

  private identify(level: 'study' | 'series' | 'instance', dataset: ReceivedDicomJson):
    { studyUid: string; seriesUid?: string; sopInstanceUid?: string } | { reason: string } {
    const wanted: Array<[string, string]> = [['StudyInstanceUID', TAG.StudyInstanceUID]];
    if (level !== 'study') wanted.push(['SeriesInstanceUID', TAG.SeriesInstanceUID]);
    if (level === 'instance') wanted.push(['SOPInstanceUID', TAG.SOPInstanceUID]);
    const values: string[] = [];
    for (const [keyword, tag] of wanted) {
      const value = jsonString(dataset, tag);
      const problem = uidProblem(value);
      if (problem) return { reason: value ? `${keyword} ${JSON.stringify(value)} ${problem}` : `no ${keyword}` };
      values.push(value);
    }
    return { studyUid: values[0]!, seriesUid: values[1], sopInstanceUid: values[2] };
  }

  private upsertStudy(studyUid: string, dataset: ReceivedDicomJson, now: number): void {
    const texts = {
      patient_name: jsonString(dataset, TAG.PatientName), patient_id: jsonString(dataset, TAG.PatientID),
      issuer_of_patient_id: jsonString(dataset, TAG.IssuerOfPatientID),
      patient_birth_date: jsonString(dataset, TAG.PatientBirthDate), patient_sex: jsonString(dataset, TAG.PatientSex),
      study_date: jsonString(dataset, TAG.StudyDate), study_time: jsonString(dataset, TAG.StudyTime),
      accession_number: jsonString(dataset, TAG.AccessionNumber), study_id: jsonString(dataset, TAG.StudyID),
      study_description: jsonString(dataset, TAG.StudyDescription), referring_physician_name: jsonString(dataset, TAG.ReferringPhysicianName),
      specific_character_set: '',
    };
    texts.specific_character_set = characterSetOf(dataset, Object.values(texts));
    const modalities = [...new Set(jsonStrings(dataset, TAG.ModalitiesInStudy))].sort();
    this.prepared(UPSERT_STUDY)
      .run({
        studyUid, ...texts, now, modalities: JSON.stringify(modalities),
        cloudSeries: jsonInteger(dataset, TAG.NumberOfStudyRelatedSeries),
        cloudInstances: jsonInteger(dataset, TAG.NumberOfStudyRelatedInstances),
      });
  }

  private upsertSeries(studyUid: string, seriesUid: string, dataset: ReceivedDicomJson, now: number): void {
    this.prepared(UPSERT_SERIES)
      .run({
        seriesUid, studyUid, now,
        modality: jsonString(dataset, TAG.Modality), series_description: jsonString(dataset, TAG.SeriesDescription),
        body_part_examined: jsonString(dataset, TAG.BodyPartExamined), pps_start_date: jsonString(dataset, TAG.PerformedProcedureStepStartDate),
        series_number: jsonInteger(dataset, TAG.SeriesNumber), cloudInstances: jsonInteger(dataset, TAG.NumberOfSeriesRelatedInstances),
      });
  }

  /** Returns the series and study the instance row belongs to (an existing row keeps its own). */
  private upsertInstance(studyUid: string, seriesUid: string, sopInstanceUid: string, dataset: ReceivedDicomJson, now: number): { seriesUid: string; studyUid: string } {
    const row = this.prepared(UPSERT_INSTANCE)
      .get({
        sopInstanceUid, seriesUid, studyUid, now, path: this.paths.relativeInstancePath(studyUid, seriesUid, sopInstanceUid),
        sop_class_uid: jsonString(dataset, TAG.SOPClassUID),
        transfer_syntax_uid: jsonString(dataset, TAG.TransferSyntaxUID) || jsonStrings(dataset, TAG.AvailableTransferSyntaxUID)[0] || '',
        instance_number: jsonInteger(dataset, TAG.InstanceNumber), number_of_frames: jsonInteger(dataset, TAG.NumberOfFrames),
        rows: jsonInteger(dataset, TAG.Rows), columns: jsonInteger(dataset, TAG.Columns),
      }) as { series_uid: string; study_uid: string };
    return { seriesUid: row.series_uid, studyUid: row.study_uid };
  }

  // ---- what the archive holds ------------------------------------------------------------------

  /**
   * These instances are held by the archive (e.g. forwarding's confirmed delivery to it). Committed without
   * waiting for fsync, like the delivery outcomes it follows: a mark lost to power loss is derived again by
   * markDeliveredInCloud. Returns rows changed.
   */
  markInCloud(sopInstanceUids: readonly string[]): number {
    const mark = this.prepared('UPDATE instances SET in_cloud = 1 WHERE sop_instance_uid = ? AND in_cloud = 0');
    return commitWithoutSync(this.db, () => sopInstanceUids.reduce((n, uid) => n + mark.run(uid).changes, 0));
  }

  /**
   * Marks every instance delivered to `destination` as held by the archive: for data forwarded before that
   * destination became the archive (or before this index knew locations). Returns rows changed.
   */
  markDeliveredInCloud(destination: string): number {
    return this.db.prepare(`
      UPDATE instances SET in_cloud = 1 WHERE in_cloud = 0 AND sop_instance_uid IN (
        SELECT sop_instance_uid FROM outbox WHERE destination = ? AND state = 'delivered')`).run(destination).changes;
  }

  studyLocation(studyUid: string): StudyLocationRow | undefined {
    const row = this.prepared(`
      SELECT study_uid, num_instances, num_local_instances, cloud_num_instances, pinned, last_access_at,
        EXISTS (SELECT 1 FROM instances i WHERE i.study_uid = studies.study_uid AND i.in_cloud = 1) AS in_cloud
      FROM studies WHERE study_uid = ?`).get(studyUid) as
      | { study_uid: string; num_instances: number; num_local_instances: number; cloud_num_instances: number | null; pinned: number; last_access_at: number; in_cloud: number }
      | undefined;
    if (!row) return undefined;
    const location = locationOf(row);
    return {
      studyUid: row.study_uid, location, numInstances: row.num_instances, numLocalInstances: row.num_local_instances,
      cloudNumInstances: row.cloud_num_instances, inCloud: row.in_cloud === 1, pinned: row.pinned === 1, lastAccessAt: row.last_access_at,
    };
  }

  // ---- access, pins and eviction ---------------------------------------------------------------

  /**
   * Records a read of these studies (for least-recently-used eviction). Not synced: an access time lost to
   * power loss only makes a study look older, and a read must not wait for the disk.
   */
  touch(studyUids: readonly string[], at = Date.now()): void {
    const update = this.prepared('UPDATE studies SET last_access_at = ? WHERE study_uid = ? AND last_access_at < ?');
    commitWithoutSync(this.db, () => {
      for (const uid of studyUids) update.run(at, uid, at);
    });
  }

  /** "Keep local": a pinned study is never evicted. Returns false when the study is unknown. */
  setPinned(studyUid: string, pinned: boolean): boolean {
    return this.prepared('UPDATE studies SET pinned = ? WHERE study_uid = ?').run(pinned ? 1 : 0, studyUid).changes > 0;
  }

  /**
   * Studies that may lose their local copies, least recently used first: not pinned, with local instances,
   * and every local instance confirmed, i.e. each of its outbox rows delivered (none waiting without a
   * destination), or fetched from the archive. An undelivered instance keeps its whole study.
   */
  evictionCandidates(limit = 100): EvictionCandidate[] {
    return this.prepared(`
      SELECT st.study_uid AS studyUid, st.size_bytes AS localBytes, st.last_access_at AS lastAccessAt
      FROM studies st
      WHERE st.pinned = 0 AND st.num_local_instances > 0
        AND NOT EXISTS (
          SELECT 1 FROM instances i WHERE i.study_uid = st.study_uid AND i.local = 1 AND (
            (i.in_cloud = 0 AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.sop_instance_uid = i.sop_instance_uid))
            OR EXISTS (SELECT 1 FROM outbox o WHERE o.sop_instance_uid = i.sop_instance_uid
                       AND (o.state <> 'delivered' OR o.destination = '${UNROUTED_DESTINATION}'))))
      ORDER BY st.last_access_at, st.rowid
      LIMIT ?`).all(limit) as EvictionCandidate[];
  }

  /** The local instances of a study, largest first. */
  localInstances(studyUid: string): Array<{ sopInstanceUid: string; sizeBytes: number }> {
    return this.prepared(`
      SELECT sop_instance_uid AS sopInstanceUid, size_bytes AS sizeBytes FROM instances
      WHERE study_uid = ? AND local = 1 ORDER BY size_bytes DESC, sop_instance_uid`).all(studyUid) as Array<{ sopInstanceUid: string; sizeBytes: number }>;
  }

  // ---- change-feed cursors ---------------------------------------------------------------------

  readCursor(destination: string): ChangeFeedCursorRow | undefined {
    const row = this.prepared('SELECT cursor, updated_at FROM change_feed_cursors WHERE destination = ?').get(destination) as
      | { cursor: string; updated_at: number }
      | undefined;
    return row ? { cursor: row.cursor, updatedAt: row.updated_at } : undefined;
  }

  /** Durable once it returns (a synced commit); inside transaction() it commits with the caller's rows. */
  saveCursor(destination: string, cursor: string, now = Date.now()): void {
    this.prepared(`
      INSERT INTO change_feed_cursors (destination, cursor, updated_at) VALUES (?, ?, ?)
      ON CONFLICT(destination) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at`).run(destination, cursor, now);
  }

  clearCursor(destination: string): void {
    this.prepared('DELETE FROM change_feed_cursors WHERE destination = ?').run(destination);
  }
}

/** Values in DICOM JSON are Unicode; a dataset that does not name its character set but needs one is UTF-8. */
function characterSetOf(dataset: ReceivedDicomJson, texts: string[]): string {
  const named = jsonString(dataset, TAG.SpecificCharacterSet);
  if (named) return named;
  return texts.some((t) => /[^\x00-\x7f]/.test(t)) ? 'ISO_IR 192' : '';
}
