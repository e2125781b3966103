/**
 * The attributes the archive answers queries on (C-FIND and QIDO-RS), by DICOM keyword, with query level
 * (PS3.4 C.6 and PS3.18 Table 10.6.1-5); tag and VR come from the data dictionary. `level: null` marks
 * attributes that are part of a query but are not matched on (QueryRetrieveLevel, SpecificCharacterSet, ...).
 */
import { entryOf } from './dictionary.js';

export type QueryLevel = 'PATIENT' | 'STUDY' | 'SERIES' | 'IMAGE';

const QUERY_LEVELS: readonly QueryLevel[] = ['PATIENT', 'STUDY', 'SERIES', 'IMAGE'];

/** The VRs of the query attributes: those matching knows how to compare. */
const VRS = ['AE', 'CS', 'DA', 'DT', 'IS', 'LO', 'PN', 'SH', 'TM', 'UI', 'UL', 'US'] as const;
export type Vr = (typeof VRS)[number];

export interface AttributeDefinition {
  keyword: string;
  /** Eight upper-case hex digits, group then element, as in DICOM JSON (dictionary.ts's tagOf). */
  tag: string;
  vr: Vr;
  level: QueryLevel | null;
  /** Value multiplicity above one, stored backslash-separated (ModalitiesInStudy). */
  multiValued: boolean;
  /** Whether a value given for it is a matching key; false for return-only and control attributes. */
  matchable: boolean;
}

/** Unique key of each level (PS3.4 C.6.1.1 / C.6.2.1). */
export const UNIQUE_KEYS: Readonly<Record<QueryLevel, string>> = {
  PATIENT: 'PatientID',
  STUDY: 'StudyInstanceUID',
  SERIES: 'SeriesInstanceUID',
  IMAGE: 'SOPInstanceUID',
};

type Row = [keyword: string, level: QueryLevel | null, options?: { multi?: boolean; matchable?: boolean }];

const ROWS: Row[] = [
  ['SpecificCharacterSet', null, { multi: true, matchable: false }],
  ['QueryRetrieveLevel', null, { matchable: false }],
  ['RetrieveAETitle', null, { multi: true, matchable: false }],
  ['InstanceAvailability', null, { matchable: false }],
  // patient
  ['PatientName', 'PATIENT'],
  ['PatientID', 'PATIENT'],
  ['PatientBirthDate', 'PATIENT'],
  ['PatientSex', 'PATIENT'],
  ['NumberOfPatientRelatedStudies', 'PATIENT'],
  ['NumberOfPatientRelatedSeries', 'PATIENT'],
  ['NumberOfPatientRelatedInstances', 'PATIENT'],
  // study
  ['StudyDate', 'STUDY'],
  ['StudyTime', 'STUDY'],
  ['AccessionNumber', 'STUDY'],
  ['ModalitiesInStudy', 'STUDY', { multi: true }],
  ['ReferringPhysicianName', 'STUDY'],
  ['StudyDescription', 'STUDY'],
  ['StudyInstanceUID', 'STUDY'],
  ['StudyID', 'STUDY'],
  ['NumberOfStudyRelatedSeries', 'STUDY'],
  ['NumberOfStudyRelatedInstances', 'STUDY'],
  // series
  ['Modality', 'SERIES'],
  ['SeriesDescription', 'SERIES'],
  ['BodyPartExamined', 'SERIES'],
  ['SeriesInstanceUID', 'SERIES'],
  ['SeriesNumber', 'SERIES'],
  ['NumberOfSeriesRelatedInstances', 'SERIES'],
  ['PerformedProcedureStepStartDate', 'SERIES'],
  // instance
  ['TransferSyntaxUID', 'IMAGE'],
  ['SOPClassUID', 'IMAGE'],
  ['SOPInstanceUID', 'IMAGE'],
  ['AvailableTransferSyntaxUID', 'IMAGE'],
  ['InstanceNumber', 'IMAGE'],
  ['NumberOfFrames', 'IMAGE'],
  ['Rows', 'IMAGE'],
  ['Columns', 'IMAGE'],
];

export const QUERY_ATTRIBUTES: readonly AttributeDefinition[] = ROWS.map(([keyword, level, options]) => {
  const { tag, vr } = entryOf(keyword);
  if (!(VRS as readonly string[]).includes(vr)) throw new Error(`query attribute ${keyword} has VR ${vr}, which matching does not know`);
  return Object.freeze({ keyword, tag, vr: vr as Vr, level, multiValued: options?.multi ?? false, matchable: options?.matchable ?? true });
});

const byKeyword = new Map(QUERY_ATTRIBUTES.map((a) => [a.keyword, a]));
const byTag = new Map(QUERY_ATTRIBUTES.map((a) => [a.tag, a]));

export function attributeByKeyword(keyword: string): AttributeDefinition | undefined {
  return byKeyword.get(keyword);
}

/** Accepts a tag as eight hex digits, bare, with a comma between group and element, in parentheses or after an 'x', in either case. */
export function attributeByTag(tag: string): AttributeDefinition | undefined {
  const normalised = normaliseTag(tag);
  return normalised ? byTag.get(normalised) : undefined;
}

/** QIDO accepts both `PatientName=` and `00100010=`. */
export function lookupAttribute(keywordOrTag: string): AttributeDefinition | undefined {
  return byKeyword.get(keywordOrTag) ?? attributeByTag(keywordOrTag);
}

function normaliseTag(tag: string): string | undefined {
  const hex = tag.trim().replace(/^\(|\)$/g, '').replace(/^x/i, '').replace(',', '');
  return /^[0-9A-Fa-f]{8}$/.test(hex) ? hex.toUpperCase() : undefined;
}

/** The attributes a match at `level` carries: those of the level and of every level above it. */
export function attributesUpTo(level: QueryLevel): AttributeDefinition[] {
  const depth = QUERY_LEVELS.indexOf(level);
  return QUERY_ATTRIBUTES.filter((a) => a.level !== null && QUERY_LEVELS.indexOf(a.level) <= depth);
}
