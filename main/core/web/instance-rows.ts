import type { Db } from '../store/database.js';

export interface InstanceRow {
  sop_instance_uid: string;
  series_uid: string;
  study_uid: string;
  sop_class_uid: string;
  transfer_syntax_uid: string;
  number_of_frames: number | null;
  instance_number: number | null;
  path: string;
  size_bytes: number;
  sha256: string;
}

const COLUMNS = 'sop_instance_uid, series_uid, study_uid, sop_class_uid, transfer_syntax_uid, number_of_frames, instance_number, path, size_bytes, sha256';
const ORDER = 'ORDER BY series_uid, instance_number IS NULL, instance_number, sop_instance_uid';

/** The indexed instances of a study, series or single instance (UIDs already validated), in series order. */
export function instancesIn(db: Db, scope: { study?: string; series?: string; instance?: string }): InstanceRow[] {
  if (scope.instance) {
    return db
      .prepare(`SELECT ${COLUMNS} FROM instances WHERE sop_instance_uid = ? AND study_uid = ? AND series_uid = ? AND file_missing = 0`)
      .all(scope.instance, scope.study, scope.series) as InstanceRow[];
  }
  if (scope.series) {
    return db
      .prepare(`SELECT ${COLUMNS} FROM instances WHERE series_uid = ? AND study_uid = ? AND file_missing = 0 ${ORDER}`)
      .all(scope.series, scope.study) as InstanceRow[];
  }
  return db.prepare(`SELECT ${COLUMNS} FROM instances WHERE study_uid = ? AND file_missing = 0 ${ORDER}`).all(scope.study) as InstanceRow[];
}
