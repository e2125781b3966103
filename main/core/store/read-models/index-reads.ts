/**
 * What the rooms above read of the index (studies, series, instances): named queries, prepared once,
 * that answer in camelCase. The column names stay in store/.
 */
import type { Db } from '../database.js';
import { queryArchive } from '../query.js';
import type { QueryMatch, QueryRequest } from '../query-types.js';

/** A study, one series of it, or one instance of that series, by UIDs already validated. */
export interface InstanceScope {
  study?: string;
  series?: string;
  instance?: string;
}

/** An indexed instance whose file is on disk: what WADO-RS needs to serve it. */
export interface StoredInstance {
  sopInstanceUid: string;
  seriesUid: string;
  studyUid: string;
  sopClassUid: string;
  transferSyntaxUid: string;
  numberOfFrames: number | null;
  instanceNumber: number | null;
  /** Relative to the archive folder (ArchivePaths.absolute). */
  path: string;
  sizeBytes: number;
  sha256: string;
}

export interface IndexCounts {
  studies: number;
  series: number;
  instances: number;
}

export interface IndexReads {
  /** QIDO-RS and C-FIND matching (store/query.ts). Throws InvalidMatchKeyError for a bad key, RangeError for a bad page. */
  query(request: QueryRequest): QueryMatch[];
  /** How many studies, series and instances are indexed. */
  indexCounts(): IndexCounts;
  studyExists(studyUid: string): boolean;
  /** The studies changed last, newest first. */
  recentStudies(limit: number): string[];
  /** The instances of a scope whose files are on disk, in series order (series, instance number, UID). */
  storedInstances(scope: InstanceScope): StoredInstance[];
  /** Every instance of a scope, its file on disk or not. */
  instanceUidsIn(scope: InstanceScope): string[];
  /** Where an instance's file is (relative to the archive folder); undefined when it is not indexed or its file is gone. */
  instanceFile(sopInstanceUid: string): string | undefined;
}

const STORED = `sop_instance_uid AS sopInstanceUid, series_uid AS seriesUid, study_uid AS studyUid, sop_class_uid AS sopClassUid,
  transfer_syntax_uid AS transferSyntaxUid, number_of_frames AS numberOfFrames, instance_number AS instanceNumber, path,
  size_bytes AS sizeBytes, sha256`;
const SERIES_ORDER = 'ORDER BY series_uid, instance_number IS NULL, instance_number, sop_instance_uid';

export function indexReads(db: Db): IndexReads {
  const counts = db.prepare('SELECT (SELECT COUNT(*) FROM studies) AS studies, (SELECT COUNT(*) FROM series) AS series, (SELECT COUNT(*) FROM instances) AS instances');
  const study = db.prepare('SELECT 1 FROM studies WHERE study_uid = ?').pluck();
  const recent = db.prepare('SELECT study_uid FROM studies ORDER BY updated_at DESC LIMIT ?').pluck();
  const storedInstance = db.prepare(`SELECT ${STORED} FROM instances WHERE sop_instance_uid = ? AND study_uid = ? AND series_uid = ? AND file_missing = 0`);
  const storedOfSeries = db.prepare(`SELECT ${STORED} FROM instances WHERE series_uid = ? AND study_uid = ? AND file_missing = 0 ${SERIES_ORDER}`);
  const storedOfStudy = db.prepare(`SELECT ${STORED} FROM instances WHERE study_uid = ? AND file_missing = 0 ${SERIES_ORDER}`);
  const uidOfInstance = db.prepare('SELECT sop_instance_uid FROM instances WHERE sop_instance_uid = ? AND series_uid = ? AND study_uid = ?').pluck();
  const uidsOfSeries = db.prepare('SELECT sop_instance_uid FROM instances WHERE series_uid = ? AND study_uid = ?').pluck();
  const uidsOfStudy = db.prepare('SELECT sop_instance_uid FROM instances WHERE study_uid = ?').pluck();
  const file = db.prepare('SELECT path FROM instances WHERE sop_instance_uid = ? AND file_missing = 0').pluck();

  return {
    query: (request) => queryArchive(db, request),
    indexCounts: () => counts.get() as IndexCounts,
    studyExists: (studyUid) => study.get(studyUid) !== undefined,
    recentStudies: (limit) => recent.all(limit) as string[],
    storedInstances: (scope) => (scope.instance
      ? storedInstance.all(scope.instance, scope.study, scope.series)
      : scope.series ? storedOfSeries.all(scope.series, scope.study) : storedOfStudy.all(scope.study)) as StoredInstance[],
    instanceUidsIn: (scope) => (scope.instance
      ? uidOfInstance.all(scope.instance, scope.series, scope.study)
      : scope.series ? uidsOfSeries.all(scope.series, scope.study) : uidsOfStudy.all(scope.study)) as string[],
    instanceFile: (sopInstanceUid) => file.get(sopInstanceUid) as string | undefined,
  };
}
