/**
 * The C-STORE fast path's wire format (PS3.8 9.3.5, PS3.7 9.3.1 and E): P-DATA-TF PDUs split into
 * PDVs without copying, the C-STORE-RQ command set read directly, and the C-STORE-RSP written
 * directly. dcmjs-dimse's general path parses every command through dcmjs and copies every
 * fragment, which costs more CPU than storing the instance.
 */

export const PDU_TYPE_P_DATA_TF = 0x04;
const COMMAND_FIELD_C_STORE_RQ = 0x0001;
const COMMAND_FIELD_C_STORE_RSP = 0x8001;
const NO_DATA_SET = 0x0101;

export interface Pdv {
  presentationContextId: number;
  command: boolean;
  last: boolean;
  /** A view into the PDU's bytes. */
  value: Buffer;
  /** The whole PDV item (length, context, control header, value), to hand it on unchanged. */
  item: Buffer;
}

/** The PDVs of one complete P-DATA-TF PDU; undefined when the items do not add up (left to the general path). */
export function splitPdvs(pdu: Buffer): Pdv[] | undefined {
  if (pdu.length < 6 || pdu[0] !== PDU_TYPE_P_DATA_TF) return undefined;
  const end = Math.min(pdu.length, 6 + pdu.readUInt32BE(2));
  const pdvs: Pdv[] = [];
  for (let at = 6; at < end;) {
    if (at + 6 > end) return undefined;
    const length = pdu.readUInt32BE(at);
    if (length < 2 || at + 4 + length > end) return undefined;
    const control = pdu[at + 5]!;
    pdvs.push({
      presentationContextId: pdu[at + 4]!,
      command: (control & 1) !== 0,
      last: (control & 2) !== 0,
      value: pdu.subarray(at + 6, at + 4 + length),
      item: pdu.subarray(at, at + 4 + length),
    });
    at += 4 + length;
  }
  return pdvs;
}

/** A P-DATA-TF PDU made of the given PDV items, to give PDVs we do not handle to the general path. */
export function joinPdvs(items: Buffer[]): Buffer {
  const length = items.reduce((sum, item) => sum + item.length, 0);
  const head = Buffer.alloc(6);
  head[0] = PDU_TYPE_P_DATA_TF;
  head.writeUInt32BE(length, 2);
  return Buffer.concat([head, ...items], 6 + length);
}

export interface CStoreCommand {
  messageId: number;
  sopClassUid: string;
  sopInstanceUid: string;
}

/**
 * The fields we need from a command set (implicit VR little endian, group 0000) when it is a C-STORE-RQ
 * announcing a data set; undefined for anything else, which the general path handles.
 */
export function readCStoreCommand(command: Buffer): CStoreCommand | undefined {
  let commandField: number | undefined;
  let dataSetType: number | undefined;
  let messageId: number | undefined;
  let sopClassUid: string | undefined;
  let sopInstanceUid: string | undefined;
  for (let at = 0; at + 8 <= command.length;) {
    const group = command.readUInt16LE(at);
    const element = command.readUInt16LE(at + 2);
    const length = command.readUInt32LE(at + 4);
    const value = at + 8;
    if (group !== 0x0000 || value + length > command.length) return undefined;
    if (element === 0x0100 && length === 2) commandField = command.readUInt16LE(value);
    else if (element === 0x0110 && length === 2) messageId = command.readUInt16LE(value);
    else if (element === 0x0800 && length === 2) dataSetType = command.readUInt16LE(value);
    else if (element === 0x0002) sopClassUid = uid(command, value, length);
    else if (element === 0x1000) sopInstanceUid = uid(command, value, length);
    at = value + length;
  }
  if (commandField !== COMMAND_FIELD_C_STORE_RQ || dataSetType === undefined || dataSetType === NO_DATA_SET) return undefined;
  if (messageId === undefined || sopClassUid === undefined || sopInstanceUid === undefined) return undefined;
  return { messageId, sopClassUid, sopInstanceUid };
}

function uid(buffer: Buffer, start: number, length: number): string {
  return buffer.toString('latin1', start, start + length).replace(/[\0 ]+$/, '');
}

/** A complete P-DATA-TF PDU carrying one C-STORE-RSP command (one last-fragment PDV). */
export function cStoreResponsePdu(
  presentationContextId: number,
  request: CStoreCommand,
  status: number,
  errorComment?: string,
): Buffer {
  const elements = [
    textElement(0x0002, request.sopClassUid, '\0'),
    ushortElement(0x0100, COMMAND_FIELD_C_STORE_RSP),
    ushortElement(0x0120, request.messageId),
    ushortElement(0x0800, NO_DATA_SET),
    ushortElement(0x0900, status),
    ...(errorComment ? [textElement(0x0902, errorComment, ' ')] : []),
    textElement(0x1000, request.sopInstanceUid, '\0'),
  ];
  const bodyLength = elements.reduce((sum, element) => sum + element.length, 0);
  const groupLength = Buffer.alloc(12);
  groupLength.writeUInt16LE(0x0000, 0);
  groupLength.writeUInt16LE(0x0000, 2);
  groupLength.writeUInt32LE(4, 4);
  groupLength.writeUInt32LE(bodyLength, 8);
  const commandLength = 12 + bodyLength;
  const head = Buffer.alloc(12);
  head[0] = PDU_TYPE_P_DATA_TF;
  head.writeUInt32BE(6 + commandLength, 2);
  head.writeUInt32BE(2 + commandLength, 6);
  head[10] = presentationContextId;
  head[11] = 0x03; // command, last fragment
  return Buffer.concat([head, groupLength, ...elements], 12 + commandLength);
}

function ushortElement(element: number, value: number): Buffer {
  const bytes = Buffer.alloc(10);
  bytes.writeUInt16LE(element, 2);
  bytes.writeUInt32LE(2, 4);
  bytes.writeUInt16LE(value, 8);
  return bytes;
}

function textElement(element: number, text: string, pad: string): Buffer {
  const value = text.length % 2 === 0 ? text : text + pad;
  const bytes = Buffer.alloc(8 + value.length);
  bytes.writeUInt16LE(element, 2);
  bytes.writeUInt32LE(value.length, 4);
  bytes.write(value, 8, 'latin1');
  return bytes;
}
