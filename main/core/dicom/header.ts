import { inflateRawSync, constants as zlibConstants } from 'node:zlib';
import dicomParser from 'dicom-parser';
import type { DataSet } from 'dicom-parser';
import { decodeText } from './charset.js';
import { TransferSyntax } from './transfer-syntax.js';

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
  | { kind: 'need-more-bytes' };

export class DicomParseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DicomParseError';
  }
}

const PIXEL_DATA = 'x7fe00010';
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
  const transferSyntaxUid = dataSet.string('x00020010') ?? '';
  if (!transferSyntaxUid) throw new DicomParseError('missing Transfer Syntax UID (0002,0010) in the meta header');
  if (pixelData) checkPixelDataComplete(pixelData, fileSize, tail, transferSyntaxUid);
  return { kind: 'parsed', header: readHeader(dataSet, transferSyntaxUid) };
}

function checkPixelDataComplete(
  element: { length: number; dataOffset: number; hadUndefinedLength?: boolean },
  fileSize: number,
  tail: Uint8Array,
  transferSyntaxUid: string,
): void {
  if (transferSyntaxUid === TransferSyntax.DeflatedExplicitVRLittleEndian) return; // offsets are in inflated space
  const undefinedLength = element.hadUndefinedLength || element.length === 0xffffffff;
  if (undefinedLength) {
    const endsWithDelimiter = tail.length === 8 && SEQUENCE_DELIMITER.every((b, i) => tail[i] === b);
    if (!endsWithDelimiter) throw new DicomParseError('truncated dataset: encapsulated Pixel Data has no sequence delimiter');
  } else if (element.dataOffset + element.length > fileSize) {
    throw new DicomParseError(
      `truncated dataset: Pixel Data needs ${element.dataOffset + element.length} bytes, file has ${fileSize}`,
    );
  }
}

function readHeader(ds: DataSet, transferSyntaxUid: string): InstanceHeader {
  const charset = ds.string('x00080005') ?? '';
  const str = (tag: string) => (ds.string(tag) ?? '').trim();
  const text = (tag: string) => {
    const element = ds.elements[tag];
    if (!element || element.length === 0) return '';
    return decodeText(ds.byteArray.subarray(element.dataOffset, element.dataOffset + element.length), charset);
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
    patientName: text('x00100010'),
    patientId: text('x00100020'),
    issuerOfPatientId: text('x00100021'),
    patientBirthDate: str('x00100030'),
    patientSex: str('x00100040'),
    studyInstanceUid: uid('x0020000d'),
    studyDate: str('x00080020'),
    studyTime: str('x00080030'),
    accessionNumber: text('x00080050'),
    studyId: text('x00200010'),
    studyDescription: text('x00081030'),
    referringPhysicianName: text('x00080090'),
    seriesInstanceUid: uid('x0020000e'),
    modality: str('x00080060'),
    seriesNumber: int('x00200011'),
    seriesDescription: text('x0008103e'),
    bodyPartExamined: str('x00180015'),
    performedProcedureStepStartDate: str('x00400244'),
    sopClassUid: uid('x00080016'),
    sopInstanceUid: uid('x00080018'),
    instanceNumber: int('x00200013'),
    numberOfFrames: int('x00280008'),
    rows: us('x00280010'),
    columns: us('x00280011'),
  };
}
