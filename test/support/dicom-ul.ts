import { createConnection, type Socket } from 'node:net';
import dimse from 'dcmjs-dimse';

/**
 * A raw DICOM Upper Layer client (PS3.8 9.3) that speaks just enough to misbehave on purpose: open an
 * association, send a C-STORE command and part of its data set, then vanish (FIN, RST or A-ABORT) at a
 * chosen moment. dcmjs-dimse and DCMTK only ever finish what they start, so they cannot do this.
 */

export const PduType = {
  associateRq: 0x01,
  associateAc: 0x02,
  associateRj: 0x03,
  pData: 0x04,
  releaseRq: 0x05,
  releaseRp: 0x06,
  abort: 0x07,
} as const;

const APPLICATION_CONTEXT = '1.2.840.10008.3.1.1.1';
const IMPLEMENTATION_CLASS_UID = '2.25.160654282426674747130468379452738320018';
export const VERIFICATION_SOP_CLASS = '1.2.840.10008.1.1';
export const IMPLICIT_LITTLE_ENDIAN = '1.2.840.10008.1.2';
export const EXPLICIT_LITTLE_ENDIAN = '1.2.840.10008.1.2.1';

export interface ProposedContext {
  id: number;
  abstractSyntax: string;
  transferSyntaxes: string[];
}

export interface Pdu {
  type: number;
  /** Everything after the 6-byte PDU header. */
  body: Buffer;
}

function item(type: number, value: Buffer): Buffer {
  const head = Buffer.alloc(4);
  head[0] = type;
  head.writeUInt16BE(value.length, 2);
  return Buffer.concat([head, value]);
}

/** A PDU: its type, a reserved byte, the body's length, and the body (PS3.8 9.3). */
export function pdu(type: number, body: Buffer): Buffer {
  const head = Buffer.alloc(6);
  head[0] = type;
  head.writeUInt32BE(body.length, 2);
  return Buffer.concat([head, body]);
}

function aeTitle(title: string): Buffer {
  return Buffer.from(title.padEnd(16, ' ').slice(0, 16), 'latin1');
}

export function associateRq(callingAe: string, calledAe: string, contexts: ProposedContext[]): Buffer {
  const fixed = Buffer.alloc(68);
  fixed.writeUInt16BE(1, 0); // protocol version
  aeTitle(calledAe).copy(fixed, 4);
  aeTitle(callingAe).copy(fixed, 20);
  const presentationContexts = contexts.map((context) => {
    const head = Buffer.from([context.id, 0, 0, 0]);
    const syntaxes = [
      item(0x30, Buffer.from(context.abstractSyntax, 'latin1')),
      ...context.transferSyntaxes.map((uid) => item(0x40, Buffer.from(uid, 'latin1'))),
    ];
    return item(0x20, Buffer.concat([head, ...syntaxes]));
  });
  const maxLength = Buffer.alloc(4);
  maxLength.writeUInt32BE(0, 0); // no limit
  const userInformation = item(0x50, Buffer.concat([item(0x51, maxLength), item(0x52, Buffer.from(IMPLEMENTATION_CLASS_UID, 'latin1'))]));
  return pdu(PduType.associateRq, Buffer.concat([fixed, item(0x10, Buffer.from(APPLICATION_CONTEXT, 'latin1')), ...presentationContexts, userInformation]));
}

export interface PdvSpec {
  contextId: number;
  command: boolean;
  last: boolean;
  value: Buffer;
}

export function pDataTf(pdvs: PdvSpec[]): Buffer {
  return pdu(PduType.pData, Buffer.concat(pdvs.map((pdv) => {
    const head = Buffer.alloc(6);
    head.writeUInt32BE(2 + pdv.value.length, 0);
    head[4] = pdv.contextId;
    head[5] = (pdv.command ? 1 : 0) | (pdv.last ? 2 : 0);
    return Buffer.concat([head, pdv.value]);
  })));
}

export const releaseRq = (): Buffer => pdu(PduType.releaseRq, Buffer.alloc(4));

/** A-ABORT from the service user (source 0, reason 0). */
export const abortRq = (): Buffer => pdu(PduType.abort, Buffer.alloc(4));

/** A C-STORE-RQ command set (implicit VR little endian), as dcmjs-dimse writes it. */
export function cStoreCommand(sopClassUid: string, sopInstanceUid: string, messageId = 1): Buffer {
  const request = new dimse.requests.CStoreRequest(new dimse.Dataset({ SOPClassUID: sopClassUid, SOPInstanceUID: sopInstanceUid }, EXPLICIT_LITTLE_ENDIAN));
  request.setMessageId(messageId);
  return (request.getCommandDataset() as unknown as { getDenaturalizedCommandDataset(): Buffer }).getDenaturalizedCommandDataset();
}

/** A C-ECHO-RQ command set. */
export function cEchoCommand(messageId = 1): Buffer {
  const request = new dimse.requests.CEchoRequest();
  request.setMessageId(messageId);
  return (request.getCommandDataset() as unknown as { getDenaturalizedCommandDataset(): Buffer }).getDenaturalizedCommandDataset();
}

/** The data set of a Part 10 file: what follows the preamble, "DICM" and the group 0002 meta header. */
export function dataSetOf(part10: Buffer): Buffer {
  if (part10.toString('latin1', 128, 132) !== 'DICM') throw new Error('not a Part 10 file');
  if (part10.readUInt16LE(132) !== 0x0002 || part10.readUInt16LE(134) !== 0x0000) throw new Error('meta header has no group length first');
  return part10.subarray(144 + part10.readUInt32LE(140));
}

/** One TCP connection to an SCP, reading whole PDUs. */
export class UlConnection {
  private buffered = Buffer.alloc(0);
  private readonly pdus: Pdu[] = [];
  private waiting: (() => void) | undefined;
  private ended = false;
  /** Resolves when the SCP's side of the connection is gone (FIN, RST or our own destroy). */
  readonly closed: Promise<void>;

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.buffered = Buffer.concat([this.buffered, chunk]);
      while (this.buffered.length >= 6 && this.buffered.length >= 6 + this.buffered.readUInt32BE(2)) {
        const length = this.buffered.readUInt32BE(2);
        this.pdus.push({ type: this.buffered[0]!, body: this.buffered.subarray(6, 6 + length) });
        this.buffered = this.buffered.subarray(6 + length);
      }
      this.wake();
    });
    socket.on('error', () => undefined); // a reset by the SCP shows as 'close'
    this.closed = new Promise((resolve) => socket.on('close', () => {
      this.ended = true;
      this.wake();
      resolve();
    }));
  }

  static connect(port: number, host = '127.0.0.1'): Promise<UlConnection> {
    return new Promise((resolve, reject) => {
      const socket = createConnection({ port, host });
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new UlConnection(socket));
      });
      socket.once('error', reject);
    });
  }

  /** Connects and has an association accepted with the given contexts. */
  static async associate(port: number, contexts: ProposedContext[], options: { callingAe?: string; calledAe?: string } = {}): Promise<UlConnection> {
    const connection = await UlConnection.connect(port);
    connection.send(associateRq(options.callingAe ?? 'RAWSCU', options.calledAe ?? 'EDGE', contexts));
    const answer = await connection.nextPdu();
    if (answer?.type !== PduType.associateAc) {
      connection.socket.destroy();
      throw new Error(`association not accepted: PDU type ${answer?.type ?? 'none (closed)'}`);
    }
    return connection;
  }

  private wake(): void {
    const waiting = this.waiting;
    this.waiting = undefined;
    waiting?.();
  }

  send(bytes: Buffer): Promise<void> {
    return new Promise((resolve, reject) => this.socket.write(bytes, (error) => (error ? reject(error) : resolve())));
  }

  /** The next PDU from the SCP, or undefined once the connection closed without one. */
  async nextPdu(): Promise<Pdu | undefined> {
    for (;;) {
      const next = this.pdus.shift();
      if (next) return next;
      if (this.ended) return undefined;
      await new Promise<void>((resolve) => (this.waiting = resolve));
    }
  }

  /** Orderly close of our side (FIN). */
  fin(): void {
    this.socket.end();
  }

  /** TCP reset (RST). */
  reset(): void {
    this.socket.resetAndDestroy();
  }
}

export interface AcceptUserInformation {
  maxPduLength: number | undefined;
  implementationClassUid: string | undefined;
  implementationVersionName: string | undefined;
}

/** The User Information sub-items (PS3.8 D.1, D.3.3.2) of an A-ASSOCIATE-AC body. */
export function acceptUserInformation(body: Buffer): AcceptUserInformation {
  const info: AcceptUserInformation = { maxPduLength: undefined, implementationClassUid: undefined, implementationVersionName: undefined };
  let at = 68; // protocol version, reserved, AE titles, reserved
  while (at + 4 <= body.length) {
    const type = body[at]!;
    const length = body.readUInt16BE(at + 2);
    if (type === 0x50) {
      for (let sub = at + 4; sub + 4 <= at + 4 + length;) {
        const subType = body[sub]!;
        const subLength = body.readUInt16BE(sub + 2);
        const value = body.subarray(sub + 4, sub + 4 + subLength);
        if (subType === 0x51) info.maxPduLength = value.readUInt32BE(0);
        if (subType === 0x52) info.implementationClassUid = value.toString('latin1').replace(/\0+$/, '');
        if (subType === 0x55) info.implementationVersionName = value.toString('latin1').trim();
        sub += 4 + subLength;
      }
    }
    at += 4 + length;
  }
  return info;
}
