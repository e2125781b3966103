import dicomParser from 'dicom-parser';
import type { DataSet } from 'dicom-parser';
import { readDicom } from './dcmjs.js';
import { tagOf } from './dictionary.js';
import type { DicomJson } from './json-model.js';
import { datasetToJson } from './metadata-json.js';
import { swapBinaryWords } from './transcode.js';
import { TransferSyntax } from './transfer-syntax.js';

const PIXEL_DATA = tagOf('PixelData');
const PIXEL_DATA_X = `x${PIXEL_DATA.toLowerCase()}`;
const TRANSFER_SYNTAX_X = `x${tagOf('TransferSyntaxUID').toLowerCase()}`;

/**
 * The BulkDataURIs of a stored description are relative to the instance: `/bulkdata/<tag>[/<item>/<tag>…]`.
 * `withInstanceUrl` puts the URL the client asked through in front of each when the description is served.
 */
const STORED_BULKDATA = '"BulkDataURI":"/bulkdata/';

export type InstanceJsonParse =
  | { kind: 'json'; json: DicomJson }
  /** The bytes end before Pixel Data (or before the whole file, when `wholeFile`: a deflated data set is read whole). */
  | { kind: 'need-more-bytes'; wholeFile: boolean };

/**
 * PS3.18 F.2 DICOM JSON of one Part 10 instance, from its first bytes: everything before Pixel Data is read,
 * Pixel Data itself becomes a BulkDataURI without its bytes ever being looked at, so the cost does not grow
 * with the image. Attributes after Pixel Data (Data Set Trailing Padding, Digital Signatures) are not described.
 * BulkDataURIs are relative (see `withInstanceUrl`). `head` may be a prefix of a file of `fileSize` bytes.
 */
export function instanceJsonFromHead(head: Uint8Array, fileSize: number): InstanceJsonParse {
  const complete = head.length >= fileSize;
  let dataSet: DataSet;
  try {
    dataSet = dicomParser.parseDicom(head, { untilTag: PIXEL_DATA_X } as never);
  } catch (error) {
    if (!complete) return { kind: 'need-more-bytes', wholeFile: false };
    throw error;
  }
  const syntax = (dataSet.string(TRANSFER_SYNTAX_X) ?? '').replace(/\0/g, '').trim();
  if (syntax === TransferSyntax.DeflatedExplicitVRLittleEndian) {
    // Offsets are in inflated space and dcmjs inflates only a whole data set.
    if (!complete) return { kind: 'need-more-bytes', wholeFile: true };
    const dict = readDicom(asBuffer(head));
    return { kind: 'json', json: datasetToJson(dict.dict, '', dict.meta) };
  }
  const pixelData = dataSet.elements[PIXEL_DATA_X];
  if (!pixelData && !complete) return { kind: 'need-more-bytes', wholeFile: false };
  // Pixel Data's header: tag, then (explicit VR) VR, two reserved bytes and a 4-byte length, or (implicit) the length.
  const explicit = syntax !== TransferSyntax.ImplicitVRLittleEndian;
  const cut = pixelData ? pixelData.dataOffset - (explicit ? 12 : 8) : head.length;
  if (pixelData && !startsPixelData(head, cut, syntax === TransferSyntax.ExplicitVRBigEndian)) {
    throw new Error(`Pixel Data's header at byte ${cut} is not where its value begins`);
  }
  const dict = readDicom(asBuffer(head).subarray(0, cut));
  // As the whole-file path does: dcmjs leaves the words of big endian binary values as stored.
  if (syntax === TransferSyntax.ExplicitVRBigEndian) swapBinaryWords(dict.dict);
  const json = datasetToJson(dict.dict, '', dict.meta);
  if (pixelData) {
    // dcmjs reads an implicit VR Pixel Data as OW ('ox'); explicit VR says which it is.
    json[PIXEL_DATA] = { vr: explicit && pixelData.vr ? pixelData.vr : 'OW', BulkDataURI: `/bulkdata/${PIXEL_DATA}` };
  }
  return { kind: 'json', json };
}

function startsPixelData(bytes: Uint8Array, at: number, bigEndian: boolean): boolean {
  const tag = bigEndian ? [0x7f, 0xe0, 0x00, 0x10] : [0xe0, 0x7f, 0x10, 0x00];
  return at >= 0 && tag.every((b, i) => bytes[at + i] === b);
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** The text of a stored description, with its BulkDataURIs under `instanceUrl`. */
export function withInstanceUrl(storedJson: string, instanceUrl: string): string {
  // JSON.stringify escapes every quote inside a value, so this sequence only ever starts a BulkDataURI member.
  return storedJson.replaceAll(STORED_BULKDATA, `"BulkDataURI":"${instanceUrl}/bulkdata/`);
}
