import type { Db } from './database.js';
import type { InstanceHeader } from '../dicom/header.js';

export interface StoredFile {
  relativePath: string;
  sizeBytes: number;
  sha256: string;
  callingAe: string;
  receivedAt: number;
}

export interface ExistingInstance {
  sop_instance_uid: string;
  series_uid: string;
  study_uid: string;
  sha256: string;
  size_bytes: number;
  path: string;
  file_missing: number;
  /** 1: the file belongs here; 0: a cloud-only row (no file). */
  local: number;
  in_cloud: number;
}

/** Where a stored file came from: the clinic (queued for forwarding) or the archive (never sent back). */
export type IngestOrigin = 'local' | 'cloud';

export const UNROUTED_DESTINATION = '*';

/** Study and series columns as the upserts write them from the header. */
const STUDY_COLUMNS = {
  patient_name: 'patientName', patient_id: 'patientId', issuer_of_patient_id: 'issuerOfPatientId', patient_birth_date: 'patientBirthDate', patient_sex: 'patientSex',
  study_date: 'studyDate', study_time: 'studyTime', accession_number: 'accessionNumber', study_id: 'studyId',
  study_description: 'studyDescription', referring_physician_name: 'referringPhysicianName',
  specific_character_set: 'specificCharacterSet',
} as const satisfies Record<string, keyof InstanceHeader>;
const SERIES_COLUMNS = {
  modality: 'modality', series_number: 'seriesNumber', series_description: 'seriesDescription',
  body_part_examined: 'bodyPartExamined', pps_start_date: 'performedProcedureStepStartDate',
} as const satisfies Record<string, keyof InstanceHeader>;

function rowMatches(row: Record<string, unknown> | undefined, columns: Record<string, keyof InstanceHeader>, header: InstanceHeader): boolean {
  return row !== undefined && Object.entries(columns).every(([column, key]) => row[column] === header[key]);
}

/** Writes and removes index rows. Callers run these inside one transaction with the outbox rows. */
export class IndexWriter {
  private readonly upsertStudy;
  private readonly upsertSeries;
  private readonly upsertInstance;
  private readonly refreshSeries;
  private readonly refreshStudy;
  private readonly findInstance;
  private readonly findSeries;
  private readonly findStudy;
  private readonly addToSeries;
  private readonly addToStudy;
  private readonly refreshModalities;
  private readonly deleteInstanceRow;
  private readonly evictRow;
  private readonly deleteMetadata;
  private readonly deleteEmptySeries;
  private readonly deleteEmptyStudy;

  constructor(db: Db) {
    this.upsertStudy = db.prepare(`
      INSERT INTO studies (study_uid, patient_name, patient_id, issuer_of_patient_id, patient_birth_date, patient_sex, study_date, study_time,
        accession_number, study_id, study_description, referring_physician_name, specific_character_set, received_at, updated_at,
        last_access_at)
      VALUES (@studyInstanceUid, @patientName, @patientId, @issuerOfPatientId, @patientBirthDate, @patientSex, @studyDate, @studyTime,
        @accessionNumber, @studyId, @studyDescription, @referringPhysicianName, @specificCharacterSet, @now, @now, @now)
      ON CONFLICT(study_uid) DO UPDATE SET
        patient_name = excluded.patient_name, patient_id = excluded.patient_id, issuer_of_patient_id = excluded.issuer_of_patient_id,
        patient_birth_date = excluded.patient_birth_date, patient_sex = excluded.patient_sex,
        study_date = excluded.study_date, study_time = excluded.study_time,
        accession_number = excluded.accession_number, study_id = excluded.study_id,
        study_description = excluded.study_description, referring_physician_name = excluded.referring_physician_name,
        specific_character_set = excluded.specific_character_set, updated_at = excluded.updated_at,
        last_access_at = excluded.last_access_at`);
    this.upsertSeries = db.prepare(`
      INSERT INTO series (series_uid, study_uid, modality, series_number, series_description, body_part_examined, pps_start_date, received_at)
      VALUES (@seriesInstanceUid, @studyInstanceUid, @modality, @seriesNumber, @seriesDescription, @bodyPartExamined,
        @performedProcedureStepStartDate, @now)
      ON CONFLICT(series_uid) DO UPDATE SET
        modality = excluded.modality, series_number = excluded.series_number,
        series_description = excluded.series_description, body_part_examined = excluded.body_part_examined,
        pps_start_date = excluded.pps_start_date`);
    this.upsertInstance = db.prepare(`
      INSERT INTO instances (sop_instance_uid, series_uid, study_uid, sop_class_uid, instance_number, transfer_syntax_uid,
        number_of_frames, rows, columns, size_bytes, sha256, calling_ae, received_at, path, in_cloud)
      VALUES (@sopInstanceUid, @seriesInstanceUid, @studyInstanceUid, @sopClassUid, @instanceNumber, @transferSyntaxUid,
        @numberOfFrames, @rows, @columns, @sizeBytes, @sha256, @callingAe, @receivedAt, @relativePath, @inCloud)
      ON CONFLICT(sop_instance_uid) DO UPDATE SET
        series_uid = excluded.series_uid, study_uid = excluded.study_uid, sop_class_uid = excluded.sop_class_uid,
        instance_number = excluded.instance_number, transfer_syntax_uid = excluded.transfer_syntax_uid,
        number_of_frames = excluded.number_of_frames, rows = excluded.rows, columns = excluded.columns,
        size_bytes = excluded.size_bytes, sha256 = excluded.sha256, calling_ae = excluded.calling_ae,
        received_at = excluded.received_at, path = excluded.path, file_missing = 0,
        replaced_count = replaced_count + local, local = 1, in_cloud = MAX(in_cloud, excluded.in_cloud)`);
    this.refreshSeries = db.prepare(`
      UPDATE series SET (num_instances, num_local_instances, size_bytes) = (
        SELECT COUNT(*), COALESCE(SUM(local), 0), COALESCE(SUM(size_bytes * local), 0) FROM instances WHERE series_uid = @uid)
      WHERE series_uid = @uid`);
    this.refreshStudy = db.prepare(`
      UPDATE studies SET
        num_series = (SELECT COUNT(*) FROM series WHERE study_uid = @uid),
        (num_instances, num_local_instances, size_bytes) = (
          SELECT COUNT(*), COALESCE(SUM(local), 0), COALESCE(SUM(size_bytes * local), 0) FROM instances WHERE study_uid = @uid),
        modalities_in_study = (SELECT COALESCE(GROUP_CONCAT(modality, '\\'), '') FROM
          (SELECT DISTINCT modality FROM series WHERE study_uid = @uid AND modality <> '' ORDER BY modality)),
        updated_at = @now
      WHERE study_uid = @uid RETURNING num_series, num_instances`);
    this.findSeries = db.prepare(`SELECT ${Object.keys(SERIES_COLUMNS).join(', ')} FROM series WHERE series_uid = ?`);
    this.findStudy = db.prepare(`SELECT ${Object.keys(STUDY_COLUMNS).join(', ')} FROM studies WHERE study_uid = ?`);
    this.addToSeries = db.prepare(`
      UPDATE series SET num_instances = num_instances + @added, num_local_instances = num_local_instances + 1, size_bytes = size_bytes + @size
      WHERE series_uid = @uid`);
    this.addToStudy = db.prepare(`
      UPDATE studies SET num_instances = num_instances + @added, num_local_instances = num_local_instances + 1, size_bytes = size_bytes + @size,
        num_series = num_series + @newSeries, updated_at = @now, last_access_at = @now
      WHERE study_uid = @uid RETURNING num_series, num_instances`);
    this.refreshModalities = db.prepare(`
      UPDATE studies SET modalities_in_study = (SELECT COALESCE(GROUP_CONCAT(modality, '\\'), '') FROM
          (SELECT DISTINCT modality FROM series WHERE study_uid = @uid AND modality <> '' ORDER BY modality))
      WHERE study_uid = @uid`);
    this.findInstance = db.prepare(
      'SELECT sop_instance_uid, series_uid, study_uid, sha256, size_bytes, path, file_missing, local, in_cloud FROM instances WHERE sop_instance_uid = ?',
    );
    this.deleteInstanceRow = db.prepare('DELETE FROM instances WHERE sop_instance_uid = ?');
    this.evictRow = db.prepare('UPDATE instances SET local = 0, file_missing = 1 WHERE sop_instance_uid = ?');
    this.deleteMetadata = db.prepare('DELETE FROM instance_metadata WHERE sop_instance_uid = ?');
    this.deleteEmptySeries = db.prepare(
      'DELETE FROM series WHERE series_uid = ? AND NOT EXISTS (SELECT 1 FROM instances WHERE series_uid = series.series_uid)',
    );
    this.deleteEmptyStudy = db.prepare(
      'DELETE FROM studies WHERE study_uid = ? AND NOT EXISTS (SELECT 1 FROM instances WHERE study_uid = studies.study_uid)',
    );
  }

  existing(sopInstanceUid: string): ExistingInstance | undefined {
    return this.findInstance.get(sopInstanceUid) as ExistingInstance | undefined;
  }

  /** Returns the study's new counts. A file from the cloud marks its instance as held by the archive. */
  write(header: InstanceHeader, file: StoredFile, moved?: ExistingInstance, origin: IngestOrigin = 'local'): { numSeries: number; numInstances: number } {
    const now = file.receivedAt;
    const inCloud = origin === 'cloud' ? 1 : 0;
    if (!moved) return this.writeNew(header, file, inCloud);
    if (moved.local === 0 && moved.series_uid === header.seriesInstanceUid && moved.study_uid === header.studyInstanceUid) {
      return this.writeNew(header, file, inCloud, true);
    }
    this.upsertStudy.run({ ...header, now });
    this.upsertSeries.run({ ...header, now });
    this.upsertInstance.run({ ...header, ...file, inCloud });
    this.refreshSeries.run({ uid: header.seriesInstanceUid });
    if (moved && moved.series_uid !== header.seriesInstanceUid) this.afterRemoval(moved, now);
    const counts = this.refreshStudy.get({ uid: header.studyInstanceUid, now }) as { num_series: number; num_instances: number };
    return { numSeries: counts.num_series, numInstances: counts.num_instances };
  }

  /**
   * A first copy of an instance: counts are incremented rather than recounted, so the cost of an insert
   * does not grow with the size of its series and study. The study and series rows are rewritten only
   * when this instance says something new about them: rewriting them rewrites their index entries too,
   * which was about a third of the cost of an instance of a known series.
   * `listed`: the instance already has a cloud-only row in this series (listed by the archive, or evicted):
   * it is counted already, and only becomes local. A read-through of a study commits every instance so;
   * recounting the series and study for each made the cost of a study grow with the square of its size.
   */
  private writeNew(header: InstanceHeader, file: StoredFile, inCloud: number, listed = false): { numSeries: number; numInstances: number } {
    const now = file.receivedAt;
    const series = this.findSeries.get(header.seriesInstanceUid) as Record<string, unknown> | undefined;
    const previousModality = series?.modality as string | undefined;
    // A known series implies its study row exists; a new one may belong to a new study.
    if (!series || !rowMatches(this.findStudy.get(header.studyInstanceUid) as Record<string, unknown> | undefined, STUDY_COLUMNS, header)) {
      this.upsertStudy.run({ ...header, now });
    }
    if (!rowMatches(series, SERIES_COLUMNS, header)) this.upsertSeries.run({ ...header, now });
    this.upsertInstance.run({ ...header, ...file, inCloud });
    const added = listed ? 0 : 1;
    this.addToSeries.run({ uid: header.seriesInstanceUid, size: file.sizeBytes, added });
    const newSeries = previousModality === undefined ? 1 : 0;
    const counts = this.addToStudy.get({ uid: header.studyInstanceUid, size: file.sizeBytes, newSeries, added, now }) as {
      num_series: number;
      num_instances: number;
    };
    if (previousModality !== header.modality) this.refreshModalities.run({ uid: header.studyInstanceUid });
    return { numSeries: counts.num_series, numInstances: counts.num_instances };
  }

  remove(instance: ExistingInstance, now: number): void {
    this.deleteInstanceRow.run(instance.sop_instance_uid);
    this.deleteMetadata.run(instance.sop_instance_uid);
    this.afterRemoval(instance, now);
  }

  /** The local copy is dropped on purpose and the archive holds the instance: its rows stay, as cloud-only. */
  markEvicted(instance: ExistingInstance, now: number): void {
    this.evictRow.run(instance.sop_instance_uid);
    // The description goes with the file: a copy fetched again is described afresh.
    this.deleteMetadata.run(instance.sop_instance_uid);
    this.recount(instance.series_uid, instance.study_uid, now);
  }

  /** Counts of a series and its study from their rows (after rows were added or changed outside write()). */
  recount(seriesUid: string, studyUid: string, now: number): void {
    this.refreshSeries.run({ uid: seriesUid });
    this.refreshStudy.get({ uid: studyUid, now });
  }

  recountSeries(seriesUid: string): void {
    this.refreshSeries.run({ uid: seriesUid });
  }

  recountStudy(studyUid: string, now: number): void {
    this.refreshStudy.get({ uid: studyUid, now });
  }

  private afterRemoval(instance: ExistingInstance, now: number): void {
    this.refreshSeries.run({ uid: instance.series_uid });
    this.deleteEmptySeries.run(instance.series_uid);
    this.refreshStudy.get({ uid: instance.study_uid, now });
    this.deleteEmptyStudy.run(instance.study_uid);
  }
}
