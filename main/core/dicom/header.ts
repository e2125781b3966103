import { inflateRawSync, constants as zlibConstants } from 'node:zlib';
import dicomParser from 'dicom-parser';
import type { DataSet } from 'dicom-parser';
import { decodeText } from './charset.js';
import { canonicalPersonName } from './person-name.js';
import { tagsOf } from './dictionary.js';
import { isUncompressed, TransferSyntax } from './transfer-syntax.js';

/** The attributes of one instance that the archive's index keeps. */
export interface InstanceHeader {
  transferSyntaxUid: string;
  specificCharacterSet: string;
  // patient
  patientName: string;
  patientId: string;
  /** IssuerOfPatientID (0010,0021): with PatientID, who the patient is. */
  issuerOfPatientId: string;
  patientBirthDate: string;
  patientSex: string;
  // study
  studyInstanceUid: string;
  studyDate: string;
  studyTime: string;
  accessionNumber: string;
  studyId: string;
  studyDescription: string;
  referringPhysicianName: string;
  // series
  seriesInstanceUid: string;
  modality: string;
  seriesNumber: number | null;
  seriesDescription: string;
  bodyPartExamined: string;
  performedProcedureStepStartDate: string;
  // instance
  sopClassUid: string;
  sopInstanceUid: string;
  instanceNumber: number | null;
  numberOfFrames: number | null;
  rows: number | null;
  columns: number | null;
}

export type HeaderParse =
  | { kind: 'parsed'; header: InstanceHeader }
  /**
   * Parsed, but the file does not end with the encapsulated Pixel Data's delimiter: something follows it
   * (trailing padding is allowed) or the file is cut short. encapsulated-end.ts tells which, from `itemsAt`.
   */
  | { kind: 'check-pixel-data-end'; header: InstanceHeader; itemsAt: number }
  | { kind: 'need-more-bytes' };

export class DicomParseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DicomParseError';
  }
}

/** dicom-parser names an element 'x' and its tag in lower case: 'x00100010'. */
function parserTags<K extends string>(...keywords: K[]): Readonly<Record<K, string>> {
  return Object.fromEntries(Object.entries<string>(tagsOf(...keywords)).map(([keyword, tag]) => [keyword, `x${tag.toLowerCase()}`])) as Record<K, string>;
}

const X = parserTags(
  'PixelData', 'TransferSyntaxUID', 'SpecificCharacterSet',
  'PatientName', 'PatientID', 'IssuerOfPatientID', 'PatientBirthDate', 'PatientSex',
  'StudyInstanceUID', 'StudyDate', 'StudyTime', 'AccessionNumber', 'StudyID', 'StudyDescription', 'ReferringPhysicianName',
  'SeriesInstanceUID', 'Modality', 'SeriesNumber', 'SeriesDescription', 'BodyPartExamined', 'PerformedProcedureStepStartDate',
  'SOPClassUID', 'SOPInstanceUID', 'InstanceNumber', 'NumberOfFrames', 'Rows', 'Columns',
);
const PIXEL_DATA = X.PixelData;
const SEQUENCE_DELIMITER = [0xfe, 0xff, 0xdd, 0xe0, 0, 0, 0, 0];

function inflater(bytes: Uint8Array, position: number): Uint8Array {
  const head = bytes.subarray(0, position);
  // SYNC_FLUSH lets us inflate only the head of a deflated stream.
  const inflated = inflateRawSync(bytes.subarray(position), { finishFlush: zlibConstants.Z_SYNC_FLUSH });
  const out = new Uint8Array(head.length + inflated.length);
  out.set(head, 0);
  out.set(inflated, head.length);
  return out;
}

function messageOf(error: unknown): string {
  if (typeof error === 'string') return error;
  if (error instanceof Error) return error.message;
  if (error && typeof error === 'object' && 'exception' in error) return String((error as { exception: unknown }).exception);
  return String(error);
}

/**
 * Parses the index attributes from the first bytes of a Part 10 file, stopping at Pixel Data.
 * `head` may be a prefix of the file; `complete` says whether it is the whole file.
 * `tail` is the file's last 8 bytes, used to detect a truncated encapsulated Pixel Data.
 */
export function parseInstanceHeader(head: Uint8Array, fileSize: number, tail: Uint8Array): HeaderParse {
  const complete = head.length >= fileSize;
  let dataSet: DataSet;
  try {
    dataSet = dicomParser.parseDicom(head, { untilTag: PIXEL_DATA, inflater } as never);
  } catch (error) {
    if (!complete) return { kind: 'need-more-bytes' };
    const text = messageOf(error);
    if (/DICM prefix not found/i.test(text)) throw new DicomParseError('not a DICOM Part 10 file (no DICM prefix at byte 128)');
    throw new DicomParseError(`truncated or malformed dataset: ${text}`);
  }
  const pixelData = dataSet.elements[PIXEL_DATA];
  if (!pixelData && !complete) return { kind: 'need-more-bytes' };
  try {
    const transferSyntaxUid = dataSet.string(X.TransferSyntaxUID) ?? '';
    if (!transferSyntaxUid) throw new DicomParseError('missing Transfer Syntax UID (0002,0010) in the meta header');
    const header = readHeader(dataSet, transferSyntaxUid);
    if (pixelData && !pixelDataEndsTheFile(pixelData, fileSize, tail, transferSyntaxUid)) {
      return { kind: 'check-pixel-data-end', header, itemsAt: pixelData.dataOffset };
    }
    return { kind: 'parsed', header };
  } catch (error) {
    if (error instanceof DicomParseError) throw error;
    // dicom-parser indexes an element whose length runs past the bytes and throws only when it is read.
    if (!complete) return { kind: 'need-more-bytes' };
    throw new DicomParseError(`malformed dataset: ${messageOf(error)}`);
  }
}

/**
 * Whether Pixel Data is whole on the evidence at hand: native, within the file (else a DicomParseError);
 * encapsulated, when the file ends with its delimiter. False means the items must be walked to know.
 */
function pixelDataEndsTheFile(
  element: { length: number; dataOffset: number; hadUndefinedLength?: boolean },
  fileSize: number,
  tail: Uint8Array,
  transferSyntaxUid: string,
): boolean {
  if (transferSyntaxUid === TransferSyntax.DeflatedExplicitVRLittleEndian) return true; // offsets are in inflated space
  const undefinedLength = element.hadUndefinedLength || element.length === 0xffffffff;
  const syntax = transferSyntaxUid.replace(/\0/g, '').trim();
  if (undefinedLength && isUncompressed(syntax)) {
    // PS3.5 A.4: only encapsulated syntaxes carry fragments; served as native, these bytes would be garbage.
    throw new DicomParseError(`Pixel Data is encapsulated (undefined length), which transfer syntax ${syntax} does not allow`);
  }
  if (undefinedLength) {
    return tail.length === 8 && SEQUENCE_DELIMITER.every((b, i) => tail[i] === b);
  } else if (element.dataOffset + element.length > fileSize) {
    throw new DicomParseError(
      `truncated dataset: Pixel Data needs ${element.dataOffset + element.length} bytes, file has ${fileSize}`,
    );
  }
  return true;
}

function readHeader(ds: DataSet, transferSyntaxUid: string): InstanceHeader {
  const charset = ds.string(X.SpecificCharacterSet) ?? '';
  const str = (tag: string) => (ds.string(tag) ?? '').trim();
  const text = (tag: string, vr = 'LO') => {
    const element = ds.elements[tag];
    if (!element || element.length === 0) return '';
    return decodeText(ds.byteArray.subarray(element.dataOffset, element.dataOffset + element.length), charset, vr);
  };
  const int = (tag: string) => {
    const value = ds.intString(tag);
    return value === undefined || Number.isNaN(value) ? null : value;
  };
  const us = (tag: string) => {
    const element = ds.elements[tag];
    return element && element.length >= 2 ? (ds.uint16(tag) ?? null) : null;
  };
  const uid = (tag: string) => (ds.string(tag) ?? '').replace(/\0/g, '').trim();
  return {
    transferSyntaxUid: transferSyntaxUid.replace(/\0/g, '').trim(),
    specificCharacterSet: charset,
    patientName: canonicalPersonName(text(X.PatientName, 'PN')),
    patientId: text(X.PatientID),
    issuerOfPatientId: text(X.IssuerOfPatientID),
    patientBirthDate: str(X.PatientBirthDate),
    patientSex: str(X.PatientSex),
    studyInstanceUid: uid(X.StudyInstanceUID),
    studyDate: str(X.StudyDate),
    studyTime: str(X.StudyTime),
    accessionNumber: text(X.AccessionNumber),
    studyId: text(X.StudyID),
    studyDescription: text(X.StudyDescription),
    referringPhysicianName: canonicalPersonName(text(X.ReferringPhysicianName, 'PN')),
    seriesInstanceUid: uid(X.SeriesInstanceUID),
    modality: str(X.Modality),
    seriesNumber: int(X.SeriesNumber),
    seriesDescription: text(X.SeriesDescription),
    bodyPartExamined: str(X.BodyPartExamined),
    performedProcedureStepStartDate: str(X.PerformedProcedureStepStartDate),
    sopClassUid: uid(X.SOPClassUID),
    sopInstanceUid: uid(X.SOPInstanceUID),
    instanceNumber: int(X.InstanceNumber),
    numberOfFrames: int(X.NumberOfFrames),
    rows: us(X.Rows),
    columns: us(X.Columns),
  };
}

/** The values of Specific Character Set (0008,0005) as a Part 10 file declares them; none when absent. */
export function declaredCharacterSet(file: Uint8Array): string[] {
  try {
    const ds = dicomParser.parseDicom(file, { untilTag: PIXEL_DATA } as never);
    const element = ds.elements[X.SpecificCharacterSet];
    if (!element) return [];
    return (ds.string(X.SpecificCharacterSet) ?? '').split('\\').map((value) => value.trim());
  } catch {
    return [];
  }
}

/** Best effort: the SOP Class and Instance UIDs in the first bytes of a Part 10 file that was refused. */
export function sniffSopUids(head: Uint8Array): { sopClassUid?: string; sopInstanceUid?: string } {
  try {
    const ds = dicomParser.parseDicom(head, { untilTag: PIXEL_DATA } as never);
    const clean = (v: string | undefined) => v?.replace(/\0/g, '').trim() || undefined;
    return { sopClassUid: clean(ds.string(X.SOPClassUID)), sopInstanceUid: clean(ds.string(X.SOPInstanceUID)) };
  } catch {
    return {};
  }
}

/**
 * The Transfer Syntax UID in the meta header of a Part 10 file, read from its first bytes: 'need-more-bytes'
 * while they end inside the meta header, undefined when they cannot be a Part 10 file that names one.
 */
export function metaTransferSyntax(head: Uint8Array): string | 'need-more-bytes' | undefined {
  if (head.length < 132) return 'need-more-bytes';
  if (head[128] !== 0x44 || head[129] !== 0x49 || head[130] !== 0x43 || head[131] !== 0x4d) return undefined; // "DICM"
  let meta: DataSet;
  try {
    meta = dicomParser.readPart10Header(head);
  } catch {
    // dicom-parser stops with an error at the end of the bytes, as at a malformed element: the caller bounds the wait.
    return 'need-more-bytes';
  }
  // The meta header is whole only once an element after it has begun.
  const elements = Object.values(meta.elements);
  if (elements.length === 0) return 'need-more-bytes';
  const end = Math.max(...elements.map((element) => element.dataOffset + element.length));
  if (end >= head.length) return 'need-more-bytes';
  return meta.string(X.TransferSyntaxUID)?.replace(/\0/g, '').trim() || undefined;
}
