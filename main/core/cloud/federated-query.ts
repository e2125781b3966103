/**
 * The archive's half of a federated query: the shared query request (store/query-types.ts, as C-FIND and
 * QIDO-RS give it) as a QIDO-RS search of the archive at the same level, and the archive's answers made
 * ready for the index (UIDs a scoped answer leaves out filled in from the scope).
 */
import type { ReceivedDicomJson } from '../dicom/dicom-json-values.js';
import { tagsOf } from '../dicom/dictionary.js';
import { lookupAttribute, type QueryLevel } from '../dicom/keywords.js';
import type { QueryRequest } from '../store/query-types.js';
import type { QidoLevel, QidoSearch } from './qido.js';

/** The most matches asked of the archive for one query (in pages of PAGE_SIZE). */
export const MAX_ARCHIVE_MATCHES = 1000;
/** The Azure DICOM service answers at most 200 results per QIDO request. */
const PAGE_SIZE = 200;

/** QIDO-RS has no patient level: patients are found through their studies. */
export const QIDO_LEVEL: Readonly<Record<QueryLevel, QidoLevel>> = { PATIENT: 'study', STUDY: 'study', SERIES: 'series', IMAGE: 'instance' };

const STUDY_FIELDS = [
  'PatientName', 'PatientID', 'PatientBirthDate', 'PatientSex', 'StudyInstanceUID', 'StudyDate', 'StudyTime', 'AccessionNumber',
  'ReferringPhysicianName', 'StudyDescription', 'StudyID', 'ModalitiesInStudy', 'NumberOfStudyRelatedSeries', 'NumberOfStudyRelatedInstances',
];
const SERIES_FIELDS = [...STUDY_FIELDS, 'SeriesInstanceUID', 'Modality', 'SeriesNumber', 'SeriesDescription', 'BodyPartExamined', 'NumberOfSeriesRelatedInstances'];
const INSTANCE_FIELDS = [...SERIES_FIELDS, 'SOPInstanceUID', 'SOPClassUID', 'InstanceNumber', 'NumberOfFrames', 'Rows', 'Columns'];

const TAG = tagsOf('StudyInstanceUID', 'SeriesInstanceUID');

/** What the index keeps of each level (and the levels above it), asked for by name. */
const INCLUDE: Readonly<Record<QidoLevel, readonly string[]>> = { study: STUDY_FIELDS, series: SERIES_FIELDS, instance: INSTANCE_FIELDS };

/** A key of one UID (no list, no wildcard): usable as a path scope. */
function singleUid(value: string | string[] | undefined): string | undefined {
  const only = Array.isArray(value) && value.length === 1 ? value[0] : undefined;
  return only !== undefined && /^[0-9.]+$/.test(only) ? only : undefined;
}

/**
 * The QIDO-RS search that asks the archive what `request` asks the index. Matching keys keep their DICOM
 * string form (wildcards and ranges are the same in QIDO); UID lists and multi-valued keys go out as
 * comma-separated lists; empty (universal) keys and control attributes are left out. A single study (and
 * series) UID becomes the path scope. Asks for at most offset + limit matches (MAX_ARCHIVE_MATCHES).
 */
export function toQidoSearch(request: QueryRequest): QidoSearch {
  const level = QIDO_LEVEL[request.level];
  const match: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(request.keys)) {
    const attribute = lookupAttribute(name);
    if (!attribute || !attribute.matchable || value === '') continue;
    match[attribute.keyword] = attribute.vr === 'UI' || attribute.multiValued ? value.split('\\') : value;
  }
  let studyUid: string | undefined;
  let seriesUid: string | undefined;
  if (level !== 'study') {
    studyUid = singleUid(match.StudyInstanceUID);
    if (studyUid !== undefined) delete match.StudyInstanceUID;
    if (studyUid !== undefined && level === 'instance') {
      seriesUid = singleUid(match.SeriesInstanceUID);
      if (seriesUid !== undefined) delete match.SeriesInstanceUID;
    }
  }
  const wanted = request.limit === undefined ? MAX_ARCHIVE_MATCHES : Math.min(request.limit + (request.offset ?? 0), MAX_ARCHIVE_MATCHES);
  return {
    level, studyUid, seriesUid, match, includeFields: INCLUDE[level], fuzzy: request.fuzzy || undefined,
    limit: Math.max(1, wanted), pageSize: PAGE_SIZE,
  };
}

/** The archive's answers with the UIDs of the search's scope filled in where a scoped answer left them out. */
export function withScope(search: Pick<QidoSearch, 'studyUid' | 'seriesUid'>, datasets: readonly ReceivedDicomJson[]): ReceivedDicomJson[] {
  if (search.studyUid === undefined) return [...datasets];
  return datasets.map((dataset) => ({
    ...dataset,
    [TAG.StudyInstanceUID]: dataset[TAG.StudyInstanceUID] ?? { vr: 'UI', Value: [search.studyUid] },
    ...(search.seriesUid !== undefined ? { [TAG.SeriesInstanceUID]: dataset[TAG.SeriesInstanceUID] ?? { vr: 'UI', Value: [search.seriesUid] } } : {}),
  }));
}
