/**
 * The attributes the archive answers queries on (C-FIND and QIDO-RS), by DICOM keyword, with tag, VR and
 * query level (PS3.4 C.6 and PS3.18 Table 10.6.1-5). `level: null` marks attributes that are part of a
 * query but are not matched on (QueryRetrieveLevel, SpecificCharacterSet, RetrieveAETitle, ...).
 */
export type QueryLevel = 'PATIENT' | 'STUDY' | 'SERIES' | 'IMAGE';

const QUERY_LEVELS: readonly QueryLevel[] = ['PATIENT', 'STUDY', 'SERIES', 'IMAGE'];

export type Vr = 'AE' | 'CS' | 'DA' | 'DT' | 'IS' | 'LO' | 'PN' | 'SH' | 'TM' | 'UI' | 'UL' | 'US';

export interface AttributeDefinition {
  keyword: string;
  /** Eight upper-case hex digits, group then element, as in DICOM JSON: '00100010'. */
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

type Row = [keyword: string, tag: string, vr: Vr, level: QueryLevel | null, options?: { multi?: boolean; matchable?: boolean }];

const ROWS: Row[] = [
  ['SpecificCharacterSet', '00080005', 'CS', null, { multi: true, matchable: false }],
  ['QueryRetrieveLevel', '00080052', 'CS', null, { matchable: false }],
  ['RetrieveAETitle', '00080054', 'AE', null, { multi: true, matchable: false }],
  ['InstanceAvailability', '00080056', 'CS', null, { matchable: false }],
  // patient
  ['PatientName', '00100010', 'PN', 'PATIENT'],
  ['PatientID', '00100020', 'LO', 'PATIENT'],
  ['PatientBirthDate', '00100030', 'DA', 'PATIENT'],
  ['PatientSex', '00100040', 'CS', 'PATIENT'],
  ['NumberOfPatientRelatedStudies', '00201200', 'IS', 'PATIENT'],
  ['NumberOfPatientRelatedSeries', '00201202', 'IS', 'PATIENT'],
  ['NumberOfPatientRelatedInstances', '00201204', 'IS', 'PATIENT'],
  // study
  ['StudyDate', '00080020', 'DA', 'STUDY'],
  ['StudyTime', '00080030', 'TM', 'STUDY'],
  ['AccessionNumber', '00080050', 'SH', 'STUDY'],
  ['ModalitiesInStudy', '00080061', 'CS', 'STUDY', { multi: true }],
  ['ReferringPhysicianName', '00080090', 'PN', 'STUDY'],
  ['StudyDescription', '00081030', 'LO', 'STUDY'],
  ['StudyInstanceUID', '0020000D', 'UI', 'STUDY'],
  ['StudyID', '00200010', 'SH', 'STUDY'],
  ['NumberOfStudyRelatedSeries', '00201206', 'IS', 'STUDY'],
  ['NumberOfStudyRelatedInstances', '00201208', 'IS', 'STUDY'],
  // series
  ['Modality', '00080060', 'CS', 'SERIES'],
  ['SeriesDescription', '0008103E', 'LO', 'SERIES'],
  ['BodyPartExamined', '00180015', 'CS', 'SERIES'],
  ['SeriesInstanceUID', '0020000E', 'UI', 'SERIES'],
  ['SeriesNumber', '00200011', 'IS', 'SERIES'],
  ['NumberOfSeriesRelatedInstances', '00201209', 'IS', 'SERIES'],
  ['PerformedProcedureStepStartDate', '00400244', 'DA', 'SERIES'],
  // instance
  ['TransferSyntaxUID', '00020010', 'UI', 'IMAGE'],
  ['SOPClassUID', '00080016', 'UI', 'IMAGE'],
  ['SOPInstanceUID', '00080018', 'UI', 'IMAGE'],
  ['AvailableTransferSyntaxUID', '00083002', 'UI', 'IMAGE'],
  ['InstanceNumber', '00200013', 'IS', 'IMAGE'],
  ['NumberOfFrames', '00280008', 'IS', 'IMAGE'],
  ['Rows', '00280010', 'US', 'IMAGE'],
  ['Columns', '00280011', 'US', 'IMAGE'],
];

export const QUERY_ATTRIBUTES: readonly AttributeDefinition[] = ROWS.map(([keyword, tag, vr, level, options]) =>
  Object.freeze({ keyword, tag, vr, level, multiValued: options?.multi ?? false, matchable: options?.matchable ?? true }),
);

const byKeyword = new Map(QUERY_ATTRIBUTES.map((a) => [a.keyword, a]));
const byTag = new Map(QUERY_ATTRIBUTES.map((a) => [a.tag, a]));

export function attributeByKeyword(keyword: string): AttributeDefinition | undefined {
  return byKeyword.get(keyword);
}

/** Accepts '00100010', '0010,0010', '(0010,0010)' and 'x00100010', in either case. */
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
