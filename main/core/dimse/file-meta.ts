/**
 * The Part 10 preamble and File Meta Information group (PS3.10 7.1) for an instance received over
 * DIMSE. The data set bytes follow it exactly as the sender encoded them.
 */
import { IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME } from './implementation.js';

export interface FileMetaFields {
  sopClassUid: string;
  sopInstanceUid: string;
  transferSyntaxUid: string;
  sourceAeTitle: string;
}


function padded(value: string, pad: string): Buffer {
  const bytes = Buffer.from(value, 'latin1');
  return bytes.length % 2 === 0 ? bytes : Buffer.concat([bytes, Buffer.from(pad, 'latin1')]);
}

/** One explicit VR little endian element with a 2-byte length (UI, SH, AE, UL). */
function shortElement(element: number, vr: string, value: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt16LE(0x0002, 0);
  head.writeUInt16LE(element, 2);
  head.write(vr, 4, 'latin1');
  head.writeUInt16LE(value.length, 6);
  return Buffer.concat([head, value]);
}

/** OB has two reserved bytes and a 4-byte length. */
function obElement(element: number, value: Buffer): Buffer {
  const head = Buffer.alloc(12);
  head.writeUInt16LE(0x0002, 0);
  head.writeUInt16LE(element, 2);
  head.write('OB', 4, 'latin1');
  head.writeUInt32LE(value.length, 8);
  return Buffer.concat([head, value]);
}

export function buildFileMeta(fields: FileMetaFields): Buffer {
  const body = Buffer.concat([
    obElement(0x0001, Buffer.from([0x00, 0x01])),
    shortElement(0x0002, 'UI', padded(fields.sopClassUid, '\0')),
    shortElement(0x0003, 'UI', padded(fields.sopInstanceUid, '\0')),
    shortElement(0x0010, 'UI', padded(fields.transferSyntaxUid, '\0')),
    shortElement(0x0012, 'UI', padded(IMPLEMENTATION_CLASS_UID, '\0')),
    shortElement(0x0013, 'SH', padded(IMPLEMENTATION_VERSION_NAME, ' ')),
    ...(fields.sourceAeTitle ? [shortElement(0x0016, 'AE', padded(fields.sourceAeTitle.trim(), ' '))] : []),
  ]);
  const groupLength = Buffer.alloc(4);
  groupLength.writeUInt32LE(body.length, 0);
  const preamble = Buffer.alloc(132);
  preamble.write('DICM', 128, 'latin1');
  return Buffer.concat([preamble, shortElement(0x0000, 'UL', groupLength), body]);
}

const LONG_LENGTH_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'UC', 'UR', 'UT', 'UN']);

/** Offset of the data set in a Part 10 file whose first bytes are `head`: walks the group 0002 elements. */
export function dataSetOffset(head: Buffer): number {
  if (head.length < 132 || head.toString('latin1', 128, 132) !== 'DICM') throw new Error('not a DICOM Part 10 file');
  let at = 132;
  while (at + 8 <= head.length && head.readUInt16LE(at) === 0x0002) {
    const vr = head.toString('latin1', at + 4, at + 6);
    if (LONG_LENGTH_VRS.has(vr)) at += 12 + head.readUInt32LE(at + 8);
    else at += 8 + head.readUInt16LE(at + 6);
  }
  if (at > head.length) throw new Error('meta header runs past the bytes read');
  return at;
}
