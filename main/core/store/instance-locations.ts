/**
 * Where the instances of a study, series or single instance are: the read model of read-through retrieve
 * (cloud/read-through.ts). Every known row counts, cloud-only ones included, so a caller can tell what is
 * here, what it must fetch from the archive, and whether the archive reported more than the index knows.
 */
import type { Statement } from 'better-sqlite3';
import { statementCache, type Db } from './database.js';

export interface InstanceScope {
  studyUid: string;
  seriesUid?: string;
  sopInstanceUid?: string;
}

export interface InstanceLocation {
  sopInstanceUid: string;
  seriesUid: string;
  studyUid: string;
  sopClassUid: string;
  /** '' for a cloud-only row the archive did not describe. */
  transferSyntaxUid: string;
  instanceNumber: number | null;
  numberOfFrames: number | null;
  /** Relative to the archive root (ArchivePaths.absolute). */
  path: string;
  sizeBytes: number;
  sha256: string;
  /** A readable file is here. */
  local: boolean;
  /** The archive destination holds it. */
  inCloud: boolean;
}

const COLUMNS = `sop_instance_uid AS sopInstanceUid, series_uid AS seriesUid, study_uid AS studyUid, sop_class_uid AS sopClassUid,
  transfer_syntax_uid AS transferSyntaxUid, instance_number AS instanceNumber, number_of_frames AS numberOfFrames, path,
  size_bytes AS sizeBytes, sha256, (local = 1 AND file_missing = 0) AS local, in_cloud AS inCloud`;
const ORDER = 'ORDER BY series_uid, instance_number IS NULL, instance_number, sop_instance_uid';

type Row = Omit<InstanceLocation, 'local' | 'inCloud'> & { local: number; inCloud: number };

function toLocation(row: Row): InstanceLocation {
  return { ...row, local: row.local === 1, inCloud: row.inCloud === 1 };
}

export class InstanceLocations {
  private readonly prepared: (sql: string) => Statement;

  constructor(db: Db) {
    this.prepared = statementCache(db);
  }

  /** Every known instance of the scope, in series and instance-number order. */
  inScope(scope: InstanceScope): InstanceLocation[] {
    let rows: Row[];
    if (scope.sopInstanceUid !== undefined) {
      rows = this.prepared(`SELECT ${COLUMNS} FROM instances WHERE sop_instance_uid = ? AND study_uid = ?${scope.seriesUid !== undefined ? ' AND series_uid = ?' : ''}`)
        .all(...[scope.sopInstanceUid, scope.studyUid, ...(scope.seriesUid !== undefined ? [scope.seriesUid] : [])]) as Row[];
    } else if (scope.seriesUid !== undefined) {
      rows = this.prepared(`SELECT ${COLUMNS} FROM instances WHERE series_uid = ? AND study_uid = ? ${ORDER}`).all(scope.seriesUid, scope.studyUid) as Row[];
    } else {
      rows = this.prepared(`SELECT ${COLUMNS} FROM instances WHERE study_uid = ? ${ORDER}`).all(scope.studyUid) as Row[];
    }
    return rows.map(toLocation);
  }

  one(sopInstanceUid: string): InstanceLocation | undefined {
    const row = this.prepared(`SELECT ${COLUMNS} FROM instances WHERE sop_instance_uid = ?`).get(sopInstanceUid) as Row | undefined;
    return row && toLocation(row);
  }

  /**
   * Instances the archive reported for the study or series (NumberOf…RelatedInstances of its QIDO answers),
   * or null when it reported none (and for a single instance).
   */
  reportedCount(scope: InstanceScope): number | null {
    if (scope.sopInstanceUid !== undefined) return null;
    const row = (scope.seriesUid !== undefined
      ? this.prepared('SELECT cloud_num_instances AS n FROM series WHERE series_uid = ? AND study_uid = ?').get(scope.seriesUid, scope.studyUid)
      : this.prepared('SELECT cloud_num_instances AS n FROM studies WHERE study_uid = ?').get(scope.studyUid)) as { n: number | null } | undefined;
    return row?.n ?? null;
  }
}
