import { closeSync, fstatSync, openSync, read, readSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Socket } from 'node:net';
import { promisify } from 'node:util';
import dimse from 'dcmjs-dimse';
import { dataSetOffset } from '../dicom/file-meta.js';
import { drainedOrClosed } from '../runtime/drained-or-closed.js';

/**
 * The one place that touches dcmjs-dimse's undocumented members. The SCP (association.ts) reads PDUs
 * itself and takes C-STORE data sets on a fast path; both need fields and methods that dcmjs-dimse's
 * typings leave out. package.json pins dcmjs-dimse to the exact version these were read from; a
 * version without them fails test/unit/dimse-internals.test.ts, and this module at import, by name.
 */

const { Client, Scp } = dimse;
const readAsync = promisify(read);
type Network = InstanceType<typeof Scp>;
type Association = Parameters<Network['associationRequested']>[0];

/** Methods on dcmjs-dimse's Network prototype that we call. */
const PROTOTYPE_METHODS = ['_processPdu', '_reset', '_sendPDataTF'] as const;
/** Fields its Network constructor sets, and that we read or set. */
const CONSTRUCTOR_FIELDS = ['connected', 'connectedTime', 'lastPduTime', 'dimse', 'dimseStream', 'dimseStoreStream', 'statistics',
  'datasetNameMap'] as const;

interface NetworkInternals {
  connected: boolean;
  connectedTime: number | undefined;
  /** dcmjs-dimse's idle (ARTIM/PDU) timer measures from here. */
  lastPduTime: number | undefined;
  /** Set once an A-ASSOCIATE-RQ has been read. */
  association: Association | undefined;
  /** Set while dcmjs-dimse's general path is in the middle of a message. */
  dimse: unknown;
  dimseStream: unknown;
  dimseStoreStream: unknown;
  statistics: { addBytesReceived(bytes: number): void };
  /** Extra keyword → tag entries for writing data sets; `{}` unless given (see useDefaultNameMap). */
  datasetNameMap: Record<string, unknown> | undefined;
  _processPdu(pdu: Buffer): Promise<void>;
  _reset(): void;
  /** Writes a message's command and data set as P-DATA-TF PDUs (see sendFileDataSetsStreamed). */
  _sendPDataTF(command: unknown, presentationContextId: number, maxPduLength: number): void;
}

export const DCMJS_DIMSE_VERSION = (createRequire(import.meta.url)('dcmjs-dimse/package.json') as { version: string }).version;

/** Which of the members we rely on `scp` (a freshly constructed Scp) lacks, as "Network.<name>". */
export function missingInternals(scp: object): string[] {
  const missing: string[] = [];
  const record = scp as Record<string, unknown>;
  for (const name of PROTOTYPE_METHODS) if (typeof record[name] !== 'function') missing.push(`Network.prototype.${name}()`);
  for (const name of CONSTRUCTOR_FIELDS) if (!(name in scp)) missing.push(`Network.${name}`);
  const statistics = record.statistics as { addBytesReceived?: unknown; addBytesSent?: unknown } | undefined;
  if (typeof statistics?.addBytesReceived !== 'function') missing.push('Network.statistics.addBytesReceived()');
  if (typeof statistics?.addBytesSent !== 'function') missing.push('Network.statistics.addBytesSent()');
  return missing;
}

/** Throws an error that names every missing member and the version found. */
export function assertInternals(scp: object): void {
  const missing = missingInternals(scp);
  if (missing.length > 0) {
    throw new Error(`dcmjs-dimse ${DCMJS_DIMSE_VERSION} lacks ${missing.join(', ')}, which main/core/dimse/dcmjs-dimse-internals.ts relies on`);
  }
}

const prototypeMethods = Scp.prototype as unknown as Partial<NetworkInternals>;
for (const name of PROTOTYPE_METHODS) {
  if (typeof prototypeMethods[name] !== 'function') {
    throw new Error(`dcmjs-dimse ${DCMJS_DIMSE_VERSION} lacks Network.prototype.${name}(), which main/core/dimse/dcmjs-dimse-internals.ts relies on`);
  }
}
const generalPath = prototypeMethods._processPdu!;

const internals = (scp: Network) => scp as unknown as NetworkInternals;

/** dcmjs-dimse's own handling of one complete PDU (association, release, abort, and every DIMSE message). */
export function generalProcessPdu(scp: Network, pdu: Buffer): Promise<void> {
  return generalPath.call(scp, pdu);
}

/**
 * For an SCP made on an already connected socket: dcmjs-dimse never sees 'connect', so its ARTIM would
 * never run. Called once per connection, so it also checks that the fields read later are there.
 */
export function markConnected(scp: Network): void {
  assertInternals(scp);
  internals(scp).connected = true;
  internals(scp).connectedTime = Date.now();
}

/**
 * dcmjs-dimse defaults a network's datasetNameMap to `{}`, which is truthy: then every data set it writes
 * first copies dcmjs's whole name map (thousands of entries) to merge the empty one in, ~2.5 ms per
 * message, paid by each C-FIND pending response and each C-STORE sub-operation. Unset, dcmjs's own map is
 * used as it is; nothing here adds names to it. For an SCP at construction, for a Client right after send().
 */
export function useDefaultNameMap(network: Network): void {
  internals(network).datasetNameMap = undefined;
}

/**
 * Right after `client.send()` on an association we open: Nagle's algorithm off (dcmjs-dimse writes a
 * message's command and each data set PDU separately, and with Nagle on the last small write waits for the
 * peer's delayed ACK, ~40 ms a message on Linux: see clientSocket), and useDefaultNameMap.
 */
export function tuneClientForRequests(client: Client): void {
  clientSocket(client).setNoDelay(true);
  const network = (client as unknown as ClientInternals).network;
  if (!network || !('datasetNameMap' in network)) {
    throw new Error(`dcmjs-dimse ${DCMJS_DIMSE_VERSION}: Client.network.datasetNameMap is not set after send(), which main/core/dimse/dcmjs-dimse-internals.ts relies on`);
  }
  useDefaultNameMap(network);
}

/** Restarts dcmjs-dimse's idle timer: a PDU arrived, or we are busy on the peer's behalf. */
export function notePeerActivity(scp: Network): void {
  internals(scp).lastPduTime = Date.now();
}

export function countBytesReceived(scp: Network, bytes: number): void {
  internals(scp).statistics.addBytesReceived(bytes);
}

/** Stops dcmjs-dimse's timers and marks the connection down, as its own reader does on a broken stream. */
export function resetConnection(scp: Network): void {
  internals(scp)._reset();
}

/** Whether dcmjs-dimse's general path holds a partly received message (then the fast path stays out). */
export function generalPathBusy(scp: Network): boolean {
  const { dimse: message, dimseStream, dimseStoreStream } = internals(scp);
  return message !== undefined || dimseStream !== undefined || dimseStoreStream !== undefined;
}

/** The association negotiated on this connection, once its A-ASSOCIATE-RQ has been read. */
export function negotiatedAssociation(scp: Network): Association | undefined {
  return internals(scp).association;
}

// ---- an outgoing association held open ----------------------------------------------------------

type Client = InstanceType<typeof dimse.Client>;
type Request = InstanceType<typeof dimse.requests.Request>;

/** What a Client keeps of the association it opened with send(): dcmjs-dimse sets `network` there. */
interface ClientInternals {
  network: (Network & { association?: Association; lastPduTime: number | undefined; socket?: unknown }) | undefined;
}

/** An association a Client opened, fed one request at a time by us rather than from the Client's list. */
export interface HeldAssociation {
  /** Whether the peer accepted a presentation context the request can go in (after A-ASSOCIATE-AC). */
  accepts(request: Request): boolean;
  /** Sends one request; send the next only once this one is done (one operation at a time). */
  send(request: Request): void;
  release(): void;
  /** Restarts the Client's idle timer while we wait for the next instance to send. */
  touch(): void;
}

/**
 * Right after `client.send()`: keeps the association open when the Client's list of requests runs dry.
 * dcmjs-dimse releases it as soon as its queue is empty ('done' on its network); a C-MOVE from the archive
 * has the next instance only once the archive delivers it, so that listener goes and release() is ours.
 */
export function holdClientAssociation(client: Client): HeldAssociation {
  const network = (client as unknown as ClientInternals).network;
  if (!network) {
    throw new Error(`dcmjs-dimse ${DCMJS_DIMSE_VERSION}: Client.network is not set after send(), which main/core/dimse/dcmjs-dimse-internals.ts relies on`);
  }
  network.removeAllListeners('done');
  return {
    accepts: (request) => network.association?.getAcceptedPresentationContextFromRequest(request) !== undefined,
    send: (request) => network.sendRequests([request]),
    release: () => network.sendAssociationReleaseRequest(),
    touch: () => {
      network.lastPduTime = Date.now();
    },
  };
}

/**
 * Right after `client.send()`: the socket a Client connected with. dcmjs-dimse leaves Nagle's algorithm on,
 * and writes a request's command and data set separately: the second write then waits for the peer's
 * delayed ACK (40 ms on Linux) unless the caller turns it off with setNoDelay.
 */
export function clientSocket(client: Client): Socket {
  const socket = (client as unknown as ClientInternals).network?.socket;
  if (!(socket instanceof Socket)) {
    throw new Error(`dcmjs-dimse ${DCMJS_DIMSE_VERSION}: Client.network.socket is not a socket after send(), which main/core/dimse/dcmjs-dimse-internals.ts relies on`);
  }
  return socket;
}

/**
 * Right after `client.send()`: proposes the SCP role alone (SCP/SCU Role Selection, PS3.7 D.3.3.4) for
 * `abstractSyntaxUid` in the A-ASSOCIATE-RQ, as the Storage Commitment SCP does when it opens an association
 * to report. dcmjs-dimse writes role items from each context's roles but copies none from
 * addAdditionalPresentationContext(), so they are set on the association as it goes out.
 */
export function proposeScpRoleOnly(client: Client, abstractSyntaxUid: string): void {
  const network = (client as unknown as ClientInternals).network as
    | (Network & { sendAssociationRequest(association: Association): void })
    | undefined;
  if (!network) {
    throw new Error(`dcmjs-dimse ${DCMJS_DIMSE_VERSION}: Client.network is not set after send(), which main/core/dimse/dcmjs-dimse-internals.ts relies on`);
  }
  const original = network.sendAssociationRequest;
  network.sendAssociationRequest = function (this: typeof network, association: Association) {
    for (const { context } of association.getPresentationContexts()) {
      if (context.getAbstractSyntaxUid() !== abstractSyntaxUid) continue;
      context.setUserRole(false);
      context.setProviderRole(true);
    }
    original.call(this, association);
  };
}

// ---- the bytes a received data set was read from --------------------------------------------------

type Dataset = InstanceType<typeof dimse.Dataset>;
interface DatasetInternals {
  /** Called by the Dataset constructor for a data set given as bytes (every received identifier). */
  _fromElementsBuffer(this: Dataset, bytes: Buffer, ...rest: unknown[]): unknown;
}

const datasetPrototype = dimse.Dataset.prototype as unknown as Partial<DatasetInternals>;
const readElements = datasetPrototype._fromElementsBuffer;
if (typeof readElements !== 'function') {
  throw new Error(`dcmjs-dimse ${DCMJS_DIMSE_VERSION} lacks Dataset.prototype._fromElementsBuffer(), which main/core/dimse/dcmjs-dimse-internals.ts relies on`);
}
const receivedBytes = new WeakMap<object, Buffer>();
datasetPrototype._fromElementsBuffer = function (this: Dataset, bytes: Buffer, ...rest: unknown[]) {
  receivedBytes.set(this, bytes);
  return readElements.call(this, bytes, ...rest);
};

/** The bytes a data set was parsed from, when it came off the wire (a C-FIND/C-MOVE/C-GET identifier). */
export function receivedDatasetBytes(dataset: Dataset): Buffer | undefined {
  return receivedBytes.get(dataset);
}

// ---- conversions for outgoing C-STOREs --------------------------------------------------------------

interface TranscodingStatics {
  transcodeDataset(dataset: Dataset, transferSyntaxUid: string, options?: unknown): Dataset;
}

/**
 * dcmjs-dimse converts a data set for a peer that did not accept its syntax through this static method.
 * Decoding (dcmjs-codecs) writes Planar Configuration on every image; PS3.3 C.7.6.3.1.3 has it only where
 * Samples per Pixel is above 1, so a converted single-sample image must not gain it.
 */
const transcoding = dimse.Transcoding as unknown as TranscodingStatics;
const transcodeDataset = transcoding.transcodeDataset.bind(dimse.Transcoding);
transcoding.transcodeDataset = (dataset, transferSyntaxUid, options) => {
  const converted = transcodeDataset(dataset, transferSyntaxUid, options);
  const elements = converted.getElements() as Record<string, unknown>;
  if (Number(elements.SamplesPerPixel ?? 1) === 1) delete elements.PlanarConfiguration;
  return converted;
};

/** A data set whose bytes are, unchanged, those of a Part 10 file's data set (see StoredInstanceDataset). */
export interface FileBackedDataset {
  /** The file's path while its data set goes out as stored; undefined once it must be re-encoded. */
  streamedFile(): string | undefined;
}

/** What sending a data set from its file uses of dcmjs-dimse's Network, beyond the members above. */
interface SendingInternals {
  socket: Socket | undefined;
  statistics: { addBytesSent(bytes: number): void };
  _sendPDataTF(command: SentCommand, presentationContextId: number, maxPduLength: number): void;
  emit(event: string, ...args: unknown[]): boolean;
}

interface SentCommand {
  getCommandDataset(): { getDenaturalizedCommandDataset(): Buffer };
  getDataset(): unknown;
}

/** dcmjs-dimse's cap on the PDUs it writes, whatever the peer accepts. */
const MAX_SENT_PDU_LENGTH = 4 * 1024 * 1024;
/** Bytes read to find where a file's data set starts (its meta header is far shorter). */
const META_HEAD_BYTES = 64 * 1024;

/**
 * From now on, a request whose data set is a file's (`FileBackedDataset`) goes out read from the file one PDU at
 * a time, each written once the socket has taken the one before. dcmjs-dimse's own path takes the whole data
 * set as one buffer and writes all its PDUs at once, so an instance of gigabytes would sit in memory twice over.
 * Anything else (a command alone, a data set in memory or re-encoded for the peer) goes dcmjs-dimse's way.
 * Idempotent; for the SCP's network (C-GET) or, right after `send()`, a Client's.
 */
export function sendFileDataSetsStreamed(target: Network | Client): void {
  const network = (target instanceof Client ? (target as unknown as ClientInternals).network : target) as unknown as SendingInternals & { streamsFiles?: true };
  if (!network || typeof network._sendPDataTF !== 'function' || typeof network.statistics?.addBytesSent !== 'function') {
    throw new Error(`dcmjs-dimse ${DCMJS_DIMSE_VERSION} lacks Network._sendPDataTF() or statistics.addBytesSent(), which main/core/dimse/dcmjs-dimse-internals.ts relies on`);
  }
  if (network.streamsFiles) return;
  network.streamsFiles = true;
  const general = network._sendPDataTF.bind(network);
  network._sendPDataTF = (command, presentationContextId, maxPduLength) => {
    const dataset = command.getDataset() as Partial<FileBackedDataset> | undefined;
    const path = typeof dataset?.streamedFile === 'function' ? dataset.streamedFile() : undefined;
    const socket = network.socket;
    const opened = path === undefined || !socket ? undefined : openDataSet(path);
    if (!opened || !socket) return general(command, presentationContextId, maxPduLength);
    const pduLength = maxPduLength === 0 ? MAX_SENT_PDU_LENGTH : Math.min(maxPduLength, MAX_SENT_PDU_LENGTH);
    const write = (bytes: Buffer) => {
      network.statistics.addBytesSent(bytes.length);
      return socket.write(bytes);
    };
    write(pDataPdu(presentationContextId, true, true, command.getCommandDataset().getDenaturalizedCommandDataset()));
    streamFrom(opened, socket, presentationContextId, pduLength - 6, write)
      .catch((error: unknown) => {
        if (socket.destroyed) return;
        // The message is cut mid-way: the association cannot go on, and the request's outcome is a failure.
        network.emit('networkError', error);
        socket.destroy();
      })
      .finally(() => closeSync(opened.fd));
  };
}

/** The file open, with where its data set starts and ends; undefined when it cannot be read so (dcmjs-dimse's path then reports it). */
function openDataSet(path: string): { fd: number; offset: number; size: number } | undefined {
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    const size = fstatSync(fd).size;
    const head = Buffer.alloc(Math.min(size, META_HEAD_BYTES));
    readSync(fd, head, 0, head.length, 0);
    return { fd, offset: dataSetOffset(head), size };
  } catch {
    if (fd !== undefined) closeSync(fd);
    return undefined;
  }
}

/**
 * Bytes read from the file at a time: several PDUs of a small Maximum PDU Length (storescp's 16 KB) per read, so a
 * data set costs a few thread-pool round trips rather than one per PDU, and no more than this waits in memory.
 */
const READ_BLOCK_BYTES = 256 * 1024;

/** The data set as PDUs of at most `chunkBytes` each, waiting for the socket to drain whenever it asks to. */
async function streamFrom(
  file: { fd: number; offset: number; size: number }, socket: Socket, presentationContextId: number, chunkBytes: number,
  write: (bytes: Buffer) => boolean,
): Promise<void> {
  const pdusPerRead = Math.max(1, Math.floor(READ_BLOCK_BYTES / chunkBytes));
  for (let at = file.offset; at < file.size;) {
    const blockLength = Math.min(chunkBytes * pdusPerRead, file.size - at);
    const block = Buffer.allocUnsafe(blockLength);
    for (let filled = 0; filled < blockLength;) {
      const { bytesRead } = await readAsync(file.fd, block, filled, blockLength - filled, at + filled);
      if (bytesRead === 0) throw new Error('the file ended before its data set was sent');
      filled += bytesRead;
    }
    if (socket.destroyed) return;
    // Each PDU's header and its slice of the block leave together, in one write of the block's PDUs.
    socket.cork();
    let room = true;
    for (let from = 0; from < blockLength; from += chunkBytes) {
      const length = Math.min(chunkBytes, blockLength - from);
      room = write(pDataHeader(presentationContextId, false, at + from + length >= file.size, length)) && room;
      room = write(block.subarray(from, from + length)) && room;
    }
    socket.uncork();
    at += blockLength;
    if (!room) await drainedOrClosed(socket);
  }
}

/** The first 12 bytes of a P-DATA-TF PDU with one PDV of `length` bytes. */
function pDataHeader(presentationContextId: number, command: boolean, last: boolean, length: number): Buffer {
  const header = Buffer.allocUnsafe(12);
  header[0] = 0x04; // P-DATA-TF
  header[1] = 0;
  header.writeUInt32BE(6 + length, 2);
  header.writeUInt32BE(2 + length, 6); // the PDV item: context and control header, then the value
  header[10] = presentationContextId;
  header[11] = (command ? 0x01 : 0) | (last ? 0x02 : 0);
  return header;
}

/** One P-DATA-TF PDU with one PDV holding `value`. */
function pDataPdu(presentationContextId: number, command: boolean, last: boolean, value: Buffer): Buffer {
  return Buffer.concat([pDataHeader(presentationContextId, command, last, value.length), value]);
}
