/**
 * Uploads that need a person: outbox rows that failed or met a conflict, with the study they belong to.
 * Named queries, prepared once, answering in camelCase.
 */
import type { Db } from '../database.js';
import type { OutboxState } from '../events.js';
import { OUTBOX_ENTRY, type OutboxEntry } from './outbox-reads.js';

/** A failed or conflicting upload, with what identifies its study to a person (null: the study is gone). */
export interface Failure {
  id: number;
  sopInstanceUid: string;
  studyUid: string;
  destination: string;
  state: OutboxState;
  attempts: number;
  lastError: string | null;
  failureReason: number | null;
  updatedAt: number;
  patientName: string | null;
  patientId: string | null;
  studyDate: string | null;
  studyDescription: string | null;
}

export interface FailurePage {
  /** All failures that match, not only this page's. */
  total: number;
  items: Failure[];
}

export interface IndexedInstance {
  sopInstanceUid: string;
  seriesUid: string;
  studyUid: string;
  sopClassUid: string;
  transferSyntaxUid: string;
  sizeBytes: number;
  callingAe: string;
  receivedAt: number;
}

export interface IndexedStudy {
  studyUid: string;
  patientName: string;
  patientId: string;
  patientBirthDate: string;
  patientSex: string;
  studyDate: string;
  studyTime: string;
  accessionNumber: string;
  studyId: string;
  studyDescription: string;
  referringPhysicianName: string;
  specificCharacterSet: string;
  modalitiesInStudy: string;
  numSeries: number;
  numInstances: number;
  sizeBytes: number;
  receivedAt: number;
  updatedAt: number;
  /** Of its instances, those with a local copy. */
  numLocalInstances: number;
  /** As the archive destination reported them (null: not reported). */
  cloudNumSeries: number | null;
  cloudNumInstances: number | null;
  /** The archive destination's modalities, a JSON array as stored. */
  cloudModalities: string;
  lastAccessAt: number;
  /** 1: kept local, never evicted. */
  pinned: number;
}

/** One outbox entry with its instance and study as indexed (null when they are no longer). */
export interface FailureDetail {
  entry: OutboxEntry;
  instance: IndexedInstance | null;
  study: IndexedStudy | null;
}

export interface FailureReads {
  /** Failed and conflicting uploads (of one destination, or all), newest first. */
  failures(page: { destination?: string; limit: number; offset: number }): FailurePage;
  /** Any outbox entry, failed or not, with its instance and study. */
  failureDetail(id: number): FailureDetail | undefined;
}

const FAILURE = `o.id, o.sop_instance_uid AS sopInstanceUid, o.study_uid AS studyUid, o.destination, o.state, o.attempts,
  o.last_error AS lastError, o.failure_reason AS failureReason, o.updated_at AS updatedAt, s.patient_name AS patientName,
  s.patient_id AS patientId, s.study_date AS studyDate, s.study_description AS studyDescription`;

export function failureReads(db: Db): FailureReads {
  const page = (filter: string) => db.prepare(`SELECT ${FAILURE} FROM outbox o LEFT JOIN studies s ON s.study_uid = o.study_uid
    WHERE o.state IN ('failed','conflict') ${filter} ORDER BY o.updated_at DESC, o.id DESC LIMIT ? OFFSET ?`);
  const total = (filter: string) => db.prepare(`SELECT COUNT(*) FROM outbox o WHERE o.state IN ('failed','conflict') ${filter}`).pluck();
  const all = { page: page(''), total: total('') };
  const ofDestination = { page: page('AND o.destination = ?'), total: total('AND o.destination = ?') };
  const entry = db.prepare(`SELECT ${OUTBOX_ENTRY} FROM outbox WHERE id = ?`);
  const instance = db.prepare(`SELECT sop_instance_uid AS sopInstanceUid, series_uid AS seriesUid, study_uid AS studyUid,
    sop_class_uid AS sopClassUid, transfer_syntax_uid AS transferSyntaxUid, size_bytes AS sizeBytes, calling_ae AS callingAe,
    received_at AS receivedAt FROM instances WHERE sop_instance_uid = ?`);
  const study = db.prepare(`SELECT study_uid AS studyUid, patient_name AS patientName, patient_id AS patientId,
    patient_birth_date AS patientBirthDate, patient_sex AS patientSex, study_date AS studyDate, study_time AS studyTime,
    accession_number AS accessionNumber, study_id AS studyId, study_description AS studyDescription,
    referring_physician_name AS referringPhysicianName, specific_character_set AS specificCharacterSet,
    modalities_in_study AS modalitiesInStudy, num_series AS numSeries, num_instances AS numInstances, size_bytes AS sizeBytes,
    received_at AS receivedAt, updated_at AS updatedAt, num_local_instances AS numLocalInstances, cloud_num_series AS cloudNumSeries,
    cloud_num_instances AS cloudNumInstances, cloud_modalities AS cloudModalities, last_access_at AS lastAccessAt, pinned
    FROM studies WHERE study_uid = ?`);

  return {
    failures: ({ destination, limit, offset }) => {
      const [statements, args] = destination ? [ofDestination, [destination]] : [all, []];
      return { total: statements.total.get(...args) as number, items: statements.page.all(...args, limit, offset) as Failure[] };
    },
    failureDetail: (id) => {
      const found = entry.get(id) as OutboxEntry | undefined;
      if (!found) return undefined;
      return {
        entry: found,
        instance: (instance.get(found.sopInstanceUid) as IndexedInstance | undefined) ?? null,
        study: (study.get(found.studyUid) as IndexedStudy | undefined) ?? null,
      };
    },
  };
}
