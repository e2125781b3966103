/**
 * The contract of the archive's query engine, shared by C-FIND (dimse/) and QIDO-RS (web/).
 * Attribute matching follows PS3.4 C.2.2.2 and lives in dicom/; store/query.ts turns it into SQL.
 */
export type QueryLevel = 'PATIENT' | 'STUDY' | 'SERIES' | 'IMAGE';

export interface QueryRequest {
  level: QueryLevel;
  /**
   * Matching keys by DICOM keyword (e.g. PatientName, StudyDate, ModalitiesInStudy, SOPInstanceUID),
   * each in its DICOM string form: '' universal, 'DOE*' wildcard, '20260101-20260131' range,
   * 'uid1\\uid2' UID list. Keys of higher levels constrain lower-level queries.
   */
  keys: Record<string, string>;
  /** QIDO fuzzymatching=true: prefix-of-any-word matching on PN. */
  fuzzy?: boolean;
  limit?: number;
  offset?: number;
}

/** One match: attribute values by DICOM keyword; PN and strings as stored, counts as numbers. */
export type QueryMatch = Record<string, string | number | null>;
