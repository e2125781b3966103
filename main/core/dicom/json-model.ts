/**
 * The DICOM JSON model (PS3.18 F.2): a data set is an object keyed by tag (eight upper-case hex digits),
 * each element a VR with its values, its bytes inline, or a bulk data URI; a sequence's values are data sets.
 * Every room and the page (through main/core/contract/) use these types, so this module imports nothing.
 */
export interface PersonNameJson {
  Alphabetic?: string;
  Ideographic?: string;
  Phonetic?: string;
}

export type DicomJsonValue = string | number | PersonNameJson | DicomJson | null;

export interface DicomJsonElement {
  vr: string;
  Value?: DicomJsonValue[];
  InlineBinary?: string;
  BulkDataURI?: string;
}

export type DicomJson = Record<string, DicomJsonElement>;
