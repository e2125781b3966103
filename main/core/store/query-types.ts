/**
 * The contract of the archive's query engine, shared by C-FIND (dimse/) and QIDO-RS (web/).
 * Attribute matching follows PS3.4 C.2.2.2 and lives in dicom/; store/query.ts turns it into SQL.
 */
import type { QueryLevel } from '../dicom/keywords.js';

export interface QueryRequest {
  level: QueryLevel;
  /**
   * Matching keys by DICOM keyword (e.g. PatientName, StudyDate, ModalitiesInStudy, SOPInstanceUID) or tag
   * (eight hex digits, as QIDO-RS allows), each in its DICOM string form: '' universal, 'DOE*' wildcard, '20260101-20260131' range,
   * 'uid1\\uid2' UID list. Keys of higher levels constrain lower-level queries; keys of lower levels
   * require a related entity (STUDY with Modality=CT: studies with a CT series). Control attributes
   * (QueryRetrieveLevel, SpecificCharacterSet, RetrieveAETitle, InstanceAvailability) are ignored, and so is
   * an empty key the archive does not hold; a non-empty one it cannot match is an InvalidMatchKeyError.
   */
  keys: Record<string, string>;
  /** QIDO fuzzymatching=true: prefix-of-any-word matching on PN. */
  fuzzy?: boolean;
  limit?: number;
  offset?: number;
  /**
   * 'local': only entities with a local copy (a study or series with local instances, a local instance).
   * Default 'any': cloud-only rows (known from the archive, or evicted) match too, as NEARLINE.
   */
  location?: 'any' | 'local';
}

/**
 * One match: attribute values by DICOM keyword; PN and strings as stored (decoded text), numbers as numbers,
 * null where the instance has no value (e.g. SeriesNumber).
 */
export type QueryMatch = Record<string, string | number | null>;
