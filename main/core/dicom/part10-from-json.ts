/**
 * A Part 10 instance built from a DICOM JSON data set (PS3.18 F.2) whose bulk data came separately, as STOW-RS
 * metadata requests send it (PS3.18 10.5.1.4): each BulkDataURI names a part of the request by its
 * Content-Location, InlineBinary carries small values in base64. The instance is written in Explicit VR
 * Little Endian, the syntax of uncompressed bulk data (application/octet-stream, PS3.18 Table 8.7.3-4),
 * or, when the Pixel Data of a single-frame image comes in a compressed media type (Table 8.7.3-5), in that
 * part's transfer syntax, the part's bytes the one fragment of encapsulated Pixel Data. Everything wrong is
 * a failure naming the element.
 */
import { writeDataSet, type DcmjsDataset, type DcmjsElement } from './dcmjs.js';
import { tagsOf } from './dictionary.js';
import { buildFileMeta, isFileMetaTag } from './file-meta.js';
import type { DicomJson, DicomJsonElement } from './json-model.js';
import { TransferSyntax } from './transfer-syntax.js';

/** PS3.18 Table I.2-2 failure reasons. */
export const FailureReason = {
  DataSetDoesNotMatchSopClass: 0xa900,
  CannotUnderstand: 0xc000,
  TransferSyntaxNotSupported: 0xc122,
} as const;

/** A part of the request after the metadata: its media type (lower-cased, with parameters) and bytes. */
export interface BulkPart {
  type: string;
  params: Record<string, string>;
  bytes: Buffer;
}

export type BuildResult =
  | { ok: true; bytes: Buffer; sopClassUid: string; sopInstanceUid: string }
  | BuildFailure;

export interface BuildFailure {
  ok: false;
  failureReason: number;
  message: string;
  sopClassUid?: string;
  sopInstanceUid?: string;
}

const TAG = tagsOf('SOPClassUID', 'SOPInstanceUID', 'StudyInstanceUID', 'SeriesInstanceUID', 'SpecificCharacterSet',
  'PixelData', 'EncapsulatedDocument', 'Rows', 'Columns', 'SamplesPerPixel', 'BitsAllocated', 'NumberOfFrames', 'PhotometricInterpretation');
const REQUIRED_UIDS = ['SOPClassUID', 'SOPInstanceUID', 'StudyInstanceUID', 'SeriesInstanceUID'] as const;
const BINARY_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'UN']);
const NUMBER_VRS = new Set(['US', 'SS', 'UL', 'SL', 'FL', 'FD', 'SV', 'UV', 'DS', 'IS']);
const VR = /^[A-Z]{2}$/;
const TAG_TEXT = /^[0-9A-F]{8}$/;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const OCTET_STREAM = 'application/octet-stream';

/** PS3.18 Table 8.7.3-5: the transfer syntaxes of each compressed media type, its default first. */
const COMPRESSED_MEDIA: Readonly<Record<string, readonly string[]>> = {
  'image/jpeg': [TransferSyntax.JpegLosslessSV1, TransferSyntax.JpegBaseline, TransferSyntax.JpegExtended, TransferSyntax.JpegLossless],
  'image/dicom-rle': [TransferSyntax.Rle],
  'image/jls': [TransferSyntax.JpegLsLossless, TransferSyntax.JpegLsNearLossless],
  'image/jp2': [TransferSyntax.Jpeg2000Lossless, TransferSyntax.Jpeg2000],
  'image/jphc': [TransferSyntax.HtJpeg2000Lossless, TransferSyntax.HtJpeg2000RpclLossless, TransferSyntax.HtJpeg2000],
};

class Refusal extends Error {
  constructor(readonly failureReason: number, message: string) {
    super(message);
  }
}

const cannotUnderstand = (message: string) => new Refusal(FailureReason.CannotUnderstand, message);

function uidOf(dataset: DicomJson, tag: string): string | undefined {
  const value = dataset[tag]?.Value?.[0];
  return typeof value === 'string' && value.trim() !== '' ? value.trim() : undefined;
}

/**
 * Builds one instance. `parts` are the request's bulk data parts by Content-Location; `used` collects the
 * locations this data set referred to (a part nobody refers to is the caller's to report).
 */
export function part10FromJson(dataset: unknown, parts: ReadonlyMap<string, BulkPart>, used: Set<string> = new Set()): BuildResult {
  if (!dataset || typeof dataset !== 'object' || Array.isArray(dataset)) {
    return { ok: false, failureReason: FailureReason.CannotUnderstand, message: 'a data set of the metadata is not a DICOM JSON object' };
  }
  const json = upperCased(dataset as DicomJson);
  const sopClassUid = uidOf(json, TAG.SOPClassUID);
  const sopInstanceUid = uidOf(json, TAG.SOPInstanceUID);
  const ids = { ...(sopClassUid ? { sopClassUid } : {}), ...(sopInstanceUid ? { sopInstanceUid } : {}) };
  const missing = REQUIRED_UIDS.filter((keyword) => !uidOf(json, TAG[keyword]));
  if (missing.length > 0) {
    return { ok: false, failureReason: FailureReason.DataSetDoesNotMatchSopClass, message: `the data set has no ${missing.join(', ')}`, ...ids };
  }
  try {
    const state: BuildState = { parts, used, nonAscii: false, syntax: TransferSyntax.ExplicitVRLittleEndian };
    const dict = toDcmjs(json, [], state);
    if (state.syntax === TransferSyntax.ExplicitVRLittleEndian) checkPixelLength(dict);
    else checkEncapsulated(dict, state.syntax);
    if (state.nonAscii) {
      // Text here is Unicode and is written as UTF-8, which only ISO_IR 192 declares.
      dict[TAG.SpecificCharacterSet] = { vr: 'CS', Value: ['ISO_IR 192'] };
    }
    const meta = buildFileMeta({ sopClassUid: sopClassUid!, sopInstanceUid: sopInstanceUid!, transferSyntaxUid: state.syntax });
    // One fragment per frame: the part's bytes stay whole, as they came.
    const bytes = Buffer.concat([meta, writeDataSet(dict, state.syntax, { fragmentMultiframe: false })]);
    return { ok: true, bytes, sopClassUid: sopClassUid!, sopInstanceUid: sopInstanceUid! };
  } catch (error) {
    if (error instanceof Refusal) return { ok: false, failureReason: error.failureReason, message: error.message, ...ids };
    return { ok: false, failureReason: FailureReason.CannotUnderstand, message: `the data set cannot be encoded: ${(error as Error).message}`, ...ids };
  }
}

function upperCased(dataset: DicomJson): DicomJson {
  const out: DicomJson = {};
  for (const [tag, element] of Object.entries(dataset)) out[tag.toUpperCase()] = element;
  return out;
}

interface BuildState {
  parts: ReadonlyMap<string, BulkPart>;
  used: Set<string>;
  nonAscii: boolean;
  /** Explicit VR Little Endian, or the syntax of compressed Pixel Data. */
  syntax: string;
}

function toDcmjs(dataset: DicomJson, path: string[], state: BuildState): DcmjsDataset {
  const out: DcmjsDataset = {};
  for (const [rawTag, element] of Object.entries(dataset)) {
    const tag = rawTag.toUpperCase();
    const where = [...path, tag].join('/');
    if (!TAG_TEXT.test(tag)) throw cannotUnderstand(`${where} is not a tag (8 hexadecimal digits)`);
    // The File Meta Information is ours to write; group lengths follow from the encoding.
    if (path.length === 0 && isFileMetaTag(tag)) continue;
    if (tag.endsWith('0000')) continue;
    if (!element || typeof element !== 'object' || typeof element.vr !== 'string' || !VR.test(element.vr)) {
      throw cannotUnderstand(`${where} has no valid vr`);
    }
    out[tag] = toElement(tag, element, [...path, tag], state);
  }
  return out;
}

function toElement(tag: string, element: DicomJsonElement, path: string[], state: BuildState): DcmjsElement {
  const where = path.join('/');
  const { vr } = element;
  if (element.BulkDataURI !== undefined) {
    if (!BINARY_VRS.has(vr)) throw cannotUnderstand(`${where}: a BulkDataURI is taken for binary VRs (OB, OD, OF, OL, OV, OW, UN) only, not ${vr}`);
    return { vr, Value: [toArrayBuffer(bulkBytes(tag, element.BulkDataURI, where, state))] };
  }
  if (element.InlineBinary !== undefined) {
    if (!BINARY_VRS.has(vr)) throw cannotUnderstand(`${where}: InlineBinary is for binary VRs only, not ${vr}`);
    const text = String(element.InlineBinary).replace(/\s+/g, '');
    if (!BASE64.test(text) || text.length % 4 !== 0) throw cannotUnderstand(`${where}: InlineBinary is not base64`);
    return { vr, Value: [toArrayBuffer(Buffer.from(text, 'base64'))] };
  }
  const values = element.Value;
  if (values === undefined) return { vr, Value: [] };
  if (!Array.isArray(values)) throw cannotUnderstand(`${where}: Value is not an array`);
  if (BINARY_VRS.has(vr)) throw cannotUnderstand(`${where}: a ${vr} value comes as InlineBinary or BulkDataURI, not Value`);
  if (vr === 'SQ') {
    return {
      vr,
      Value: values.map((item, index) => {
        if (!item || typeof item !== 'object' || Array.isArray(item)) throw cannotUnderstand(`${where}: item ${index + 1} is not an object`);
        return toDcmjs(item as DicomJson, [...path, String(index)], state);
      }),
    };
  }
  return { vr, Value: values.map((value) => scalar(vr, value, where, state)) };
}

function scalar(vr: string, value: unknown, where: string, state: BuildState): unknown {
  if (value === null || value === undefined) return vr === 'PN' ? {} : NUMBER_VRS.has(vr) && vr !== 'DS' && vr !== 'IS' ? undefined : '';
  if (vr === 'AT') {
    if (typeof value !== 'string' || !TAG_TEXT.test(value.toUpperCase())) throw cannotUnderstand(`${where}: an AT value is 8 hexadecimal digits`);
    return parseInt(value, 16);
  }
  if (vr === 'PN') {
    if (typeof value !== 'object') throw cannotUnderstand(`${where}: a PN value is an object of Alphabetic, Ideographic, Phonetic`);
    const name = value as Record<string, unknown>;
    for (const group of Object.values(name)) if (typeof group === 'string') noteText(group, state);
    return name;
  }
  if (NUMBER_VRS.has(vr)) {
    const ok = typeof value === 'number' || ((vr === 'DS' || vr === 'IS') && typeof value === 'string');
    if (!ok || (typeof value === 'number' && !Number.isFinite(value))) throw cannotUnderstand(`${where}: ${JSON.stringify(value)} is not a ${vr} number`);
    return value;
  }
  if (typeof value !== 'string') throw cannotUnderstand(`${where}: a ${vr} value is a string`);
  noteText(value, state);
  return value;
}

function noteText(text: string, state: BuildState): void {
  if (/[^\x00-\x7f]/.test(text)) state.nonAscii = true;
}

function bulkBytes(tag: string, uri: unknown, where: string, state: BuildState): Buffer {
  if (typeof uri !== 'string' || uri === '') throw cannotUnderstand(`${where}: BulkDataURI is not a URI`);
  const part = state.parts.get(uri);
  if (!part) throw cannotUnderstand(`${where}: BulkDataURI ${uri} names no part of the request (no part has that Content-Location)`);
  state.used.add(uri);
  // An Encapsulated Document travels in its own media type (PS3.18 10.5.1.4); all else is uncompressed.
  if (tag === TAG.EncapsulatedDocument) return part.bytes;
  const syntax = part.params['transfer-syntax'];
  const compressed = COMPRESSED_MEDIA[part.type];
  if (compressed && tag === TAG.PixelData && where === TAG.PixelData) {
    const chosen = syntax ?? compressed[0]!;
    if (!compressed.includes(chosen)) {
      throw new Refusal(FailureReason.TransferSyntaxNotSupported, `${where}: ${part.type} does not carry transfer-syntax ${chosen} (PS3.18 Table 8.7.3-5)`);
    }
    state.syntax = chosen;
    return part.bytes;
  }
  if (part.type !== OCTET_STREAM || (syntax !== undefined && syntax !== TransferSyntax.ExplicitVRLittleEndian)) {
    throw new Refusal(FailureReason.TransferSyntaxNotSupported,
      `${where}: bulk data of type ${part.type}${syntax ? `; transfer-syntax=${syntax}` : ''} is not taken: ` +
      `only uncompressed bulk data (${OCTET_STREAM}, Explicit VR Little Endian) is, and the Pixel Data of a single frame in a compressed media type`);
  }
  return part.bytes;
}

/** Uncompressed Pixel Data must hold the image its Image Pixel attributes describe. */
function checkPixelLength(dict: DcmjsDataset): void {
  const pixels = dict[TAG.PixelData]?.Value?.[0];
  if (!(pixels instanceof ArrayBuffer)) return;
  const number = (tag: string) => {
    const value = Number(dict[tag]?.Value?.[0]);
    return Number.isFinite(value) ? value : undefined;
  };
  const rows = number(TAG.Rows);
  const columns = number(TAG.Columns);
  const bits = number(TAG.BitsAllocated);
  if (rows === undefined || columns === undefined || bits === undefined) {
    throw new Refusal(FailureReason.DataSetDoesNotMatchSopClass, 'Pixel Data without Rows, Columns and Bits Allocated');
  }
  // YBR_FULL_422 keeps two luminance values per chrominance pair: two samples' worth per pixel, not three.
  const subsampled = String(dict[TAG.PhotometricInterpretation]?.Value?.[0] ?? '').trim() === 'YBR_FULL_422';
  const samples = subsampled ? 2 : number(TAG.SamplesPerPixel) ?? 1;
  const frames = number(TAG.NumberOfFrames) ?? 1;
  const needed = Math.ceil((rows * columns * samples * frames * bits) / 8);
  if (pixels.byteLength < needed || pixels.byteLength > needed + 1) {
    throw new Refusal(FailureReason.DataSetDoesNotMatchSopClass,
      `Pixel Data has ${pixels.byteLength} bytes where ${rows} rows × ${columns} columns × ${samples} samples × ${frames} frames × ${bits} bits need ${needed}`);
  }
}

/** Compressed Pixel Data is taken for one frame only: one part cannot be split into frames exactly. */
function checkEncapsulated(dict: DcmjsDataset, syntax: string): void {
  const frames = Number(dict[TAG.NumberOfFrames]?.Value?.[0] ?? 1);
  if (frames > 1) {
    throw new Refusal(FailureReason.TransferSyntaxNotSupported,
      `Pixel Data of ${frames} frames in transfer-syntax ${syntax} is not taken: one compressed part cannot be split into frames exactly`);
  }
  for (const keyword of ['Rows', 'Columns', 'BitsAllocated'] as const) {
    if (dict[TAG[keyword]]?.Value?.[0] === undefined) {
      throw new Refusal(FailureReason.DataSetDoesNotMatchSopClass, `compressed Pixel Data without ${keyword}: the Image Pixel attributes are not read from the codestream`);
    }
  }
  dict[TAG.PixelData] = { ...dict[TAG.PixelData]!, vr: 'OB' };
}

function toArrayBuffer(bytes: Buffer): ArrayBuffer {
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
}
