import type { Socket } from 'node:net';
import dimse from 'dcmjs-dimse';
import type { Logger } from 'pino';
import { buildFileMeta } from '../dicom/file-meta.js';
import type { Archive, IngestResult } from '../store/archive.js';
import { IngestAbortedError, IngestError } from '../store/errors.js';
import { decideAssociation, type AssociationPolicySettings } from './association-policy.js';
import {
  countBytesReceived, generalPathBusy, generalProcessPdu, markConnected, negotiatedAssociation, notePeerActivity, resetConnection, useDefaultNameMap,
} from './dcmjs-dimse-internals.js';
import { MAX_PDU_LENGTH } from './implementation.js';
import { cStoreResponsePdu, joinPdvs, PDU_TYPE_P_DATA_TF, readCStoreCommand, splitPdvs, type CStoreCommand, type Pdv } from './pdata.js';
import { PduReader } from './pdu-reader.js';
import { decideContext } from './presentation-contexts.js';
import { DimseStatus, errorComment } from './statuses.js';
import { StoreSink } from './store-sink.js';

const { Scp, Dataset } = dimse;
const { AbortReason, AbortSource, PresentationContextResult } = dimse.constants;
/** How long a peer gets to close its side after our A-ABORT before the connection is cut. */
const ABORT_LINGER_MS = 500;
const { CEchoResponse, CStoreResponse } = dimse.responses;

type ScpOptions = ConstructorParameters<typeof Scp>[1];
type DimseAssociation = Parameters<InstanceType<typeof Scp>['associationRequested']>[0];
type PresentationContext = ReturnType<DimseAssociation['getPresentationContext']>;
type CEchoRequest = Parameters<InstanceType<typeof Scp>['cEchoRequest']>[0];
type CStoreRequest = Parameters<InstanceType<typeof Scp>['cStoreRequest']>[0];
type CFindRequest = Parameters<InstanceType<typeof Scp>['cFindRequest']>[0];
type CMoveRequest = Parameters<InstanceType<typeof Scp>['cMoveRequest']>[0];
type CGetRequest = Parameters<InstanceType<typeof Scp>['cGetRequest']>[0];
type CCancelRequest = Parameters<InstanceType<typeof Scp>['cCancelRequest']>[0];
type NActionRequest = Parameters<InstanceType<typeof Scp>['nActionRequest']>[0];
type NCreateRequest = Parameters<InstanceType<typeof Scp>['nCreateRequest']>[0];
type NSetRequest = Parameters<InstanceType<typeof Scp>['nSetRequest']>[0];
type NCreateResponse = InstanceType<typeof dimse.responses.NCreateResponse>;
type NSetResponse = InstanceType<typeof dimse.responses.NSetResponse>;
export type NActionResponse = InstanceType<typeof dimse.responses.NActionResponse>;
type OutgoingRequest = InstanceType<typeof dimse.requests.Request>;
export type { CFindRequest, CMoveRequest, CGetRequest, DimseAssociation, NActionRequest };
export type CFindResponse = InstanceType<typeof dimse.responses.CFindResponse>;
export type CMoveResponse = InstanceType<typeof dimse.responses.CMoveResponse>;
export type CGetResponse = InstanceType<typeof dimse.responses.CGetResponse>;

export interface AssociationInfo {
  peer: string;
  callingAe: string;
  calledAe: string;
  logger: Logger;
}

/** The query/retrieve side, plugged in by the service; absent until the query engine is wired. */
export interface QueryRetrieveHandlers {
  find(scp: EdgeScp, info: AssociationInfo, request: CFindRequest, send: (responses: CFindResponse[]) => void): Promise<void>;
  move(scp: EdgeScp, info: AssociationInfo, request: CMoveRequest, send: (responses: CMoveResponse[]) => void): Promise<void>;
  get(scp: EdgeScp, info: AssociationInfo, request: CGetRequest, send: (responses: CGetResponse[]) => void): Promise<void>;
}

/** Storage Commitment (PS3.4 Annex J): the N-ACTION side, answered at once; the report comes later. */
export interface StorageCommitmentHandler {
  action(scp: EdgeScp, info: AssociationInfo, request: NActionRequest): NActionResponse;
}

/** Modality Performed Procedure Step (PS3.4 Annex F): N-CREATE and N-SET, each answered from the index. */
export interface MppsHandler {
  create(info: AssociationInfo, request: NCreateRequest): NCreateResponse;
  set(info: AssociationInfo, request: NSetRequest): NSetResponse;
}

export interface ScpEnvironment {
  archive: Archive;
  logger: Logger;
  policy(): AssociationPolicySettings & { acceptPrivateSopClasses: boolean };
  /** Open accepted associations, for the limit. */
  registry: Set<EdgeScp>;
  queryRetrieve?: QueryRetrieveHandlers;
  storageCommitment?: StorageCommitmentHandler;
  mpps?: MppsHandler;
}

type StoreOutcome = { ok: true; result: IngestResult } | { ok: false; error: IngestError };

/** A C-STORE whose data set is arriving on the fast path. */
interface FastStore {
  presentationContextId: number;
  command: CStoreCommand;
  sink: StoreSink;
  work: Promise<StoreOutcome>;
}

/**
 * One association as seen by the SCP: policy at A-ASSOCIATE, C-ECHO, C-STORE streamed into the
 * archive, and C-FIND/C-MOVE/C-GET handed to the query/retrieve handlers.
 */
export class EdgeScp extends Scp {
  private info: AssociationInfo;
  private accepted = false;
  private readonly stores = new WeakMap<CStoreRequest, Promise<StoreOutcome>>();
  private readonly sinks = new Set<StoreSink>();
  private readonly cancelled = new Set<number>();
  /** Per request being answered: aborted by its C-CANCEL or when the connection goes. */
  private readonly work = new Map<number, AbortController>();
  private fastStore: FastStore | undefined;
  private abortedForStop = false;

  constructor(readonly socket: Socket, options: ScpOptions, private readonly env: ScpEnvironment) {
    super(socket, options);
    const peer = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    this.info = { peer, callingAe: '', calledAe: '', logger: env.logger.child({ peer }) };
    // The socket is already connected, so dcmjs-dimse never sees 'connect'; without these its ARTIM never runs.
    markConnected(this);
    useDefaultNameMap(this);
    this.readPdusOurselves(socket);
    this.on('close', () => this.closed(new IngestAbortedError('the connection closed before the data set was complete')));
    this.on('networkError', (error: Error) => {
      this.info.logger.warn({ event: 'association-network-error', callingAe: this.info.callingAe, reason: error.message }, 'network error; closing');
      this.socket.destroy();
    });
  }

  /** Replaces dcmjs-dimse's socket reader (which re-concatenates each PDU per chunk) with PduReader. */
  private readPdusOurselves(socket: Socket): void {
    socket.removeAllListeners('data'); // dcmjs-dimse's, added by its constructor; nobody else has one yet
    const reader = new PduReader();
    const networkError = (error: Error) => (this.emit as unknown as (event: string, error: Error) => void).call(this, 'networkError', error);
    const onPdu = (pdu: Buffer) => {
      notePeerActivity(this);
      this.processPdu(pdu).catch((error: unknown) => networkError(error instanceof Error ? error : new Error(String(error))));
    };
    socket.on('data', (chunk: Buffer) => {
      // After our A-ABORT, PDUs still in flight from the peer are ignored (PS3.8 state Sta13).
      if (this.abortedForStop) return;
      countBytesReceived(this, chunk.length);
      try {
        reader.push(chunk, onPdu);
      } catch (error) {
        resetConnection(this);
        networkError(error as Error);
      }
    });
  }

  get peerInfo(): AssociationInfo {
    return this.info;
  }

  /** Keeps dcmjs-dimse's idle timer from aborting while we are busy on the peer's behalf (C-MOVE, C-GET). */
  touch(): void {
    notePeerActivity(this);
  }

  isCancelled(messageId: number): boolean {
    return this.cancelled.has(messageId);
  }

  /** Aborted when the request is cancelled (C-CANCEL) or the connection closes: stops waiting on its behalf. */
  workSignal(messageId: number): AbortSignal {
    let controller = this.work.get(messageId);
    if (!controller) {
      this.work.set(messageId, (controller = new AbortController()));
      if (this.cancelled.has(messageId)) controller.abort(new Error('cancelled by the peer (C-CANCEL)'));
      else if (this.socket.destroyed) controller.abort(new Error('the connection closed'));
    }
    return controller.signal;
  }

  override associationRequested(association: DimseAssociation): void {
    const callingAe = association.getCallingAeTitle().trim();
    const calledAe = association.getCalledAeTitle().trim();
    this.info = { ...this.info, callingAe, calledAe, logger: this.info.logger.child({ callingAe, calledAe }) };
    const policy = this.env.policy();
    const decision = decideAssociation({ callingAe, calledAe, activeAssociations: this.env.registry.size }, policy);
    if (!decision.accept) {
      this.info.logger.warn(
        { event: 'association-rejected', result: decision.result, source: decision.source, reason: decision.reason, why: decision.why },
        `association rejected: ${decision.why}`,
      );
      this.sendAssociationReject(decision.result, decision.source, decision.reason);
      // The peer closes on A-ASSOCIATE-RJ; make sure we do not wait on one that does not.
      setTimeout(() => this.socket.destroy(), 2_000).unref();
      this.socket.end();
      return;
    }
    const accepted: string[] = [];
    for (const { context } of association.getPresentationContexts()) {
      const decisionForContext = decideContext(context.getAbstractSyntaxUid(), context.getTransferSyntaxUids(), policy);
      if (decisionForContext.kind === 'accept') {
        context.setResult(PresentationContextResult.Accept, decisionForContext.transferSyntaxUid);
        accepted.push(`${context.getAbstractSyntaxUid()}@${decisionForContext.transferSyntaxUid}`);
      } else if (decisionForContext.kind === 'abstract-syntax-not-supported') {
        context.setResult(PresentationContextResult.RejectAbstractSyntaxNotSupported);
      } else {
        context.setResult(PresentationContextResult.RejectTransferSyntaxesNotSupported);
      }
    }
    this.accepted = true;
    this.env.registry.add(this);
    this.info.logger.info({ event: 'association-accepted', contexts: accepted.length, open: this.env.registry.size }, 'association accepted');
    // A requestor's 0 means "no limit" (PS3.8 D.1); dcmjs-dimse would take the smaller value and announce 0.
    if (association.getMaxPduLength() === 0) association.setMaxPduLength(MAX_PDU_LENGTH);
    this.sendAssociationAccept();
  }

  override associationReleaseRequested(): void {
    if (!this.accepted) {
      // PS3.8 9.2 (Sta2, A-RELEASE-RQ received: AA-1): with no association there is nothing to release.
      this.info.logger.warn({ event: 'association-protocol-error', reason: 'A-RELEASE-RQ with no association' },
        'A-RELEASE-RQ with no association; aborting');
      this.socket.end(abortPdu());
      setTimeout(() => this.socket.destroy(), 2_000).unref();
      return;
    }
    this.info.logger.debug({ event: 'association-released' }, 'association released');
    this.sendAssociationReleaseResponse();
  }

  override cEchoRequest(request: CEchoRequest, callback: (response: InstanceType<typeof CEchoResponse>) => void): void {
    const response = CEchoResponse.fromRequest(request);
    response.setStatus(DimseStatus.Success);
    callback(response);
  }

  /**
   * Our PDU reader calls this for every complete PDU. P-DATA-TF PDUs of a C-STORE (the bulk of all
   * traffic) take the fast path; everything else, including a command split over several PDVs,
   * goes through the general path.
   */
  private async processPdu(pdu: Buffer): Promise<void> {
    if (pdu[0] === PDU_TYPE_P_DATA_TF && this.accepted) {
      const pdvs = splitPdvs(pdu);
      if (pdvs) {
        const taken = this.takePdvs(pdvs);
        if (taken === pdvs.length) return;
        if (taken > 0) return generalProcessPdu(this, joinPdvs(pdvs.slice(taken).map((pdv) => pdv.item)));
      }
    }
    return generalProcessPdu(this, pdu);
  }

  /** Handles PDVs from the first one on while they belong to a C-STORE; returns how many it took. */
  private takePdvs(pdvs: Pdv[]): number {
    let taken = 0;
    for (const pdv of pdvs) {
      const store = this.fastStore;
      if (store) {
        if (pdv.command || pdv.presentationContextId !== store.presentationContextId) {
          this.info.logger.warn({ event: 'association-protocol-error', sopInstanceUid: store.command.sopInstanceUid },
            'a PDV of another message arrived inside a C-STORE data set; closing');
          this.fastStore = undefined;
          store.sink.fail(new IngestAbortedError('the peer interleaved another message into the data set'));
          this.socket.destroy();
          return pdvs.length;
        }
        store.sink.write(pdv.value);
        if (pdv.last) this.finishFastStore(store);
      } else {
        if (!pdv.command || !pdv.last || generalPathBusy(this)) break;
        const command = readCStoreCommand(pdv.value);
        const context = command ? negotiatedAssociation(this)?.getPresentationContext(pdv.presentationContextId) : undefined;
        if (!command || !context || context.getResult() !== PresentationContextResult.Accept) break;
        const { sink, work } = this.startStore(context.getAcceptedTransferSyntaxUid() ?? '', command.sopClassUid, command.sopInstanceUid);
        this.fastStore = { presentationContextId: pdv.presentationContextId, command, sink, work };
      }
      taken++;
    }
    return taken;
  }

  private finishFastStore(store: FastStore): void {
    this.fastStore = undefined;
    store.sink.end();
    void store.work.then((outcome) => {
      if (!outcome.ok) this.logStoreFailure(store.command.sopInstanceUid, outcome.error);
      if (this.socket.destroyed) return;
      const status = outcome.ok ? DimseStatus.Success : outcome.error.dimseStatus;
      const comment = outcome.ok ? undefined : errorComment(outcome.error.message);
      this.socket.write(cStoreResponsePdu(store.presentationContextId, store.command, status, comment));
    });
  }

  private logStoreFailure(sopInstanceUid: string, error: IngestError): void {
    this.info.logger.warn({ event: 'c-store-failed', sopInstanceUid, status: error.dimseStatus, reason: error.message }, 'C-STORE refused');
  }

  override createStoreWritableStream(context: PresentationContext, request: CStoreRequest): StoreSink {
    const { sink, work } = this.startStore(context.getAcceptedTransferSyntaxUid() ?? '', request.getAffectedSopClassUid(), request.getAffectedSopInstanceUid());
    this.stores.set(request, work);
    return sink;
  }

  /** Starts the archive's ingest of one data set; the sink takes the data set's bytes. */
  private startStore(transferSyntaxUid: string, sopClassUid: string, sopInstanceUid: string): { sink: StoreSink; work: Promise<StoreOutcome> } {
    const prefix = buildFileMeta({ sopClassUid, sopInstanceUid, transferSyntaxUid, sourceAeTitle: this.info.callingAe });
    const sink = new StoreSink(prefix, { pause: () => this.socket.pause(), resume: () => this.socket.resume() });
    this.sinks.add(sink);
    const work: Promise<StoreOutcome> = this.env.archive
      .ingest(sink.out, { callingAe: this.info.callingAe, peer: this.info.peer, expect: { sopClassUid, sopInstanceUid } })
      .then(
        (result): StoreOutcome => ({ ok: true, result }),
        (error: unknown): StoreOutcome => {
          sink.discard();
          return { ok: false, error: error instanceof IngestError ? error : new IngestAbortedError(String(error)) };
        },
      )
      .finally(() => this.sinks.delete(sink));
    return { sink, work };
  }

  override createDatasetFromStoreWritableStream(
    _writable: unknown, context: PresentationContext, callback: (dataset: InstanceType<typeof Dataset>) => void,
  ): void {
    // The data set went to the archive as bytes; dcmjs-dimse only needs a placeholder to call cStoreRequest.
    callback(new Dataset({}, context.getAcceptedTransferSyntaxUid()));
  }

  override cStoreRequest(request: CStoreRequest, callback: (response: InstanceType<typeof CStoreResponse>) => void): void {
    const work = this.stores.get(request);
    const answer = (status: number, comment?: string) => {
      const response = CStoreResponse.fromRequest(request);
      response.setStatus(status);
      if (comment) response.setErrorComment(errorComment(comment));
      callback(response);
    };
    if (!work) {
      answer(DimseStatus.CannotUnderstand, 'C-STORE without a data set');
      return;
    }
    void work.then((outcome) => {
      if (outcome.ok) {
        answer(DimseStatus.Success);
      } else {
        this.logStoreFailure(request.getAffectedSopInstanceUid(), outcome.error);
        answer(outcome.error.dimseStatus, outcome.error.message);
      }
    });
  }

  // dcmjs-dimse's event emitter accepts exactly one call of `callback` per request, so pending responses
  // go out through sendResponse as they are ready, and the callback only closes the exchange.
  override cFindRequest(request: CFindRequest, callback: (responses: CFindResponse[]) => void): void {
    this.runQueryRetrieve('C-FIND', request, callback,
      (send) => this.env.queryRetrieve?.find(this, this.info, request, send),
      () => failure(dimse.responses.CFindResponse.fromRequest(request)));
  }

  override cMoveRequest(request: CMoveRequest, callback: (responses: CMoveResponse[]) => void): void {
    this.runQueryRetrieve('C-MOVE', request, callback,
      (send) => this.env.queryRetrieve?.move(this, this.info, request, send),
      () => failure(dimse.responses.CMoveResponse.fromRequest(request)));
  }

  override cGetRequest(request: CGetRequest, callback: (responses: CGetResponse[]) => void): void {
    this.runQueryRetrieve('C-GET', request, callback,
      (send) => this.env.queryRetrieve?.get(this, this.info, request, send),
      () => failure(dimse.responses.CGetResponse.fromRequest(request)));
  }

  override nActionRequest(request: NActionRequest, callback: (response: NActionResponse) => void): void {
    const handler = this.env.storageCommitment;
    if (!handler) {
      const response = dimse.responses.NActionResponse.fromRequest(request);
      response.setStatus(DimseStatus.NoSuchSopClass);
      callback(response);
      return;
    }
    callback(handler.action(this, this.info, request));
  }

  override nCreateRequest(request: NCreateRequest, callback: (response: NCreateResponse) => void): void {
    if (this.env.mpps) {
      callback(this.env.mpps.create(this.info, request));
      return;
    }
    const response = dimse.responses.NCreateResponse.fromRequest(request);
    response.setStatus(DimseStatus.NoSuchSopClass);
    callback(response);
  }

  override nSetRequest(request: NSetRequest, callback: (response: NSetResponse) => void): void {
    if (this.env.mpps) {
      callback(this.env.mpps.set(this.info, request));
      return;
    }
    const response = dimse.responses.NSetResponse.fromRequest(request);
    response.setStatus(DimseStatus.NoSuchSopClass);
    callback(response);
  }

  /** Whether requests can still go out on this association (accepted, not closed). */
  get isOpen(): boolean {
    return this.accepted && !this.socket.destroyed && !this.abortedForStop;
  }

  /**
   * Sends a request of ours to the peer on this association (the N-EVENT-REPORT of Storage Commitment) and
   * resolves with the status of its response; rejects when no context fits, the connection goes, or no
   * answer comes within `timeoutMs`.
   */
  sendRequestToPeer(request: OutgoingRequest, timeoutMs: number): Promise<number> {
    return new Promise((resolve, reject) => {
      if (!this.isOpen) {
        reject(new Error('the association is closed'));
        return;
      }
      if (!negotiatedAssociation(this)?.getAcceptedPresentationContextFromRequest(request)) {
        reject(new Error('no accepted presentation context for the request on this association'));
        return;
      }
      const settle = (outcome: () => void) => {
        clearTimeout(timer);
        this.socket.off('close', onClose);
        outcome();
      };
      const onClose = () => settle(() => reject(new Error('the association closed before the response')));
      const timer = setTimeout(() => settle(() => reject(new Error(`no response within ${timeoutMs} ms`))), timeoutMs);
      timer.unref();
      this.socket.on('close', onClose);
      (request as unknown as { on(event: 'response', listener: (response: { getStatus(): number }) => void): void })
        .on('response', (response) => {
          if (response.getStatus() !== DimseStatus.Pending) settle(() => resolve(response.getStatus()));
        });
      this.sendRequests([request]);
    });
  }

  override cCancelRequest(request: CCancelRequest): void {
    const messageId = request.getMessageIdBeingRespondedTo();
    this.cancelled.add(messageId);
    this.work.get(messageId)?.abort(new Error('cancelled by the peer (C-CANCEL)'));
  }

  override abort(source: number, reason: number): void {
    this.info.logger.warn({ event: 'association-aborted', source, reason }, 'peer aborted the association');
    this.closed(new IngestAbortedError('the peer aborted the association'));
    this.socket.destroy();
  }

  private runQueryRetrieve<R extends CFindResponse | CMoveResponse | CGetResponse>(
    kind: string,
    request: CFindRequest | CMoveRequest | CGetRequest,
    callback: (responses: R[]) => void,
    run: (send: (responses: R[]) => void) => Promise<void> | undefined,
    failed: () => R,
  ): void {
    const send = (responses: R[]) => {
      if (this.socket.destroyed) return;
      for (const response of responses) {
        // dcmjs-dimse's responses carry the Study Root class; a response echoes the request's (PS3.7 9.1.2.1).
        response.setAffectedSopClassUid(request.getAffectedSopClassUid());
        this.sendResponse(request, response);
      }
    };
    const finish = () => {
      this.cancelled.delete(request.getMessageId());
      this.work.delete(request.getMessageId());
      callback([]);
    };
    const work = run(send);
    if (!work) {
      send([failed()]);
      finish();
      return;
    }
    work.then(finish, (error: unknown) => {
      this.info.logger.error({ event: 'query-retrieve-failed', kind, reason: (error as Error)?.message ?? String(error) }, `${kind} failed`);
      send([failed()]);
      finish();
    });
  }

  private closed(reason: Error): void {
    for (const sink of this.sinks) sink.fail(reason);
    for (const controller of this.work.values()) controller.abort(reason);
    if (this.accepted) {
      this.accepted = false;
      this.env.registry.delete(this);
    }
  }

  /**
   * Ends the association because the appliance stops: an A-ABORT (PS3.8 9.3.8) with source "service-user",
   * since this AE chooses to end it (an acceptor cannot request a release), then the connection closes.
   */
  abortForStop(): void {
    if (this.abortedForStop || this.socket.destroyed) return;
    this.abortedForStop = true;
    if (this.accepted) {
      this.info.logger.info({ event: 'association-aborted-at-stop' }, 'association aborted: the appliance is stopping');
      this.sendAbort(AbortSource.ServiceUser, AbortReason.NotSpecified);
    }
    this.socket.end();
    // A peer that does not close its side after the abort is cut.
    setTimeout(() => this.socket.destroy(), ABORT_LINGER_MS).unref();
  }

  /** Waits for the C-STOREs in flight, for an orderly stop. */
  async settle(): Promise<void> {
    while (this.sinks.size > 0) await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** An A-ABORT PDU (PS3.8 9.3.8) from the service user (source 0, reason not significant). */
function abortPdu(): Buffer {
  const pdu = Buffer.alloc(10);
  pdu[0] = 0x07;
  pdu.writeUInt32BE(4, 2);
  return pdu;
}

function failure<T extends { setStatus(status: number): void; setErrorComment(comment: string): void }>(response: T): T {
  response.setStatus(DimseStatus.UnableToProcess);
  response.setErrorComment('query/retrieve failed');
  return response;
}
