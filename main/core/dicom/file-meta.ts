/**
 * The Part 10 preamble and File Meta Information group (PS3.10 7.1) of every file we write: an instance received
 * over DIMSE (the data set bytes follow exactly as the sender encoded them) and one built from STOW-RS DICOM JSON
 * (part10-from-json.ts). The group is always Explicit VR Little Endian, whatever the data set's syntax.
 */
import { entryOf, tagOf } from './dictionary.js';
import { IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME } from './implementation-uid.js';

export interface FileMetaFields {
  sopClassUid: string;
  sopInstanceUid: string;
  transferSyntaxUid: string;
  /** The sender's AE title; without one (or with an empty one) the file names no source. */
  sourceAeTitle?: string;
}

/** Explicit VR elements of these VRs have two reserved bytes and a 4-byte length (PS3.5 7.1.2). */
const LONG_LENGTH_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'UC', 'UR', 'UT', 'UN']);
const FILE_META_GROUP = groupOf(tagOf('FileMetaInformationGroupLength'));
/** FileMetaInformationVersion: version 1 of the group, as bits (PS3.10 7.1). */
const VERSION_1 = Buffer.from([0x00, 0x01]);

function groupOf(tag: string): number {
  return parseInt(tag.slice(0, 4), 16);
}

/** Whether a tag (eight hex digits, as DICOM JSON writes it) is of the File Meta Information group. */
export function isFileMetaTag(tag: string): boolean {
  return groupOf(tag) === FILE_META_GROUP;
}

/** One element of the group, by keyword, with the dictionary's VR. */
function element(keyword: string, value: Buffer): Buffer {
  const { tag, vr } = entryOf(keyword);
  const long = LONG_LENGTH_VRS.has(vr);
  const head = Buffer.alloc(long ? 12 : 8);
  head.writeUInt16LE(groupOf(tag), 0);
  head.writeUInt16LE(parseInt(tag.slice(4), 16), 2);
  head.write(vr, 4, 'latin1');
  if (long) head.writeUInt32LE(value.length, 8);
  else head.writeUInt16LE(value.length, 6);
  return Buffer.concat([head, value]);
}

/** A text element padded to even length: UIDs with NUL, other text with a space (PS3.5 6.2). */
function textElement(keyword: string, text: string): Buffer {
  const bytes = Buffer.from(text, 'latin1');
  if (bytes.length % 2 === 0) return element(keyword, bytes);
  return element(keyword, Buffer.concat([bytes, Buffer.from(entryOf(keyword).vr === 'UI' ? '\0' : ' ', 'latin1')]));
}

export function buildFileMeta(fields: FileMetaFields): Buffer {
  const body = Buffer.concat([
    element('FileMetaInformationVersion', VERSION_1),
    textElement('MediaStorageSOPClassUID', fields.sopClassUid),
    textElement('MediaStorageSOPInstanceUID', fields.sopInstanceUid),
    textElement('TransferSyntaxUID', fields.transferSyntaxUid),
    textElement('ImplementationClassUID', IMPLEMENTATION_CLASS_UID),
    textElement('ImplementationVersionName', IMPLEMENTATION_VERSION_NAME),
    ...(fields.sourceAeTitle ? [textElement('SourceApplicationEntityTitle', fields.sourceAeTitle.trim())] : []),
  ]);
  const groupLength = Buffer.alloc(4);
  groupLength.writeUInt32LE(body.length, 0);
  const preamble = Buffer.alloc(132);
  preamble.write('DICM', 128, 'latin1');
  return Buffer.concat([preamble, element('FileMetaInformationGroupLength', groupLength), body]);
}

/** Offset of the data set in a Part 10 file whose first bytes are `head`: walks the File Meta Information elements. */
export function dataSetOffset(head: Buffer): number {
  if (head.length < 132 || head.toString('latin1', 128, 132) !== 'DICM') throw new Error('not a DICOM Part 10 file');
  let at = 132;
  while (at + 8 <= head.length && head.readUInt16LE(at) === FILE_META_GROUP) {
    const vr = head.toString('latin1', at + 4, at + 6);
    if (LONG_LENGTH_VRS.has(vr)) at += 12 + head.readUInt32LE(at + 8);
    else at += 8 + head.readUInt16LE(at + 6);
  }
  if (at > head.length) throw new Error('meta header runs past the bytes read');
  return at;
}
