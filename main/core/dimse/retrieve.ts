import { existsSync } from 'node:fs';
import dimse from 'dcmjs-dimse';
import type { Logger } from 'pino';
import { InvalidMatchKeyError } from '../dicom/matching.js';
import type { PeerSettings } from '../contract/settings.js';
import type { Archive } from '../store/archive.js';
import type { AssociationInfo, CGetRequest, CGetResponse, CMoveRequest, CMoveResponse, EdgeScp } from './association.js';
import { modelOf, responseSyntax } from './find.js';
import { IdentifierError, parseIdentifier } from './identifier.js';
import { DimseStatus, errorComment } from './statuses.js';
import { StoredInstanceDataset } from './stored-dataset.js';

const { Dataset, Client, Transcoding } = dimse;
const { CStoreRequest } = dimse.requests;
const { CMoveResponse: MoveResponse, CGetResponse: GetResponse } = dimse.responses;

type StoreRequest = InstanceType<typeof CStoreRequest>;
type Outcome = 'completed' | 'warning' | 'failed';

interface Target {
  sopInstanceUid: string;
  sopClassUid: string;
  transferSyntaxUid: string;
  path: string | undefined;
}

export interface RetrieveOptions {
  archive: Archive;
  aeTitle: () => string;
  peers: () => readonly PeerSettings[];
  timeouts: () => { connectTimeout: number; associationTimeout: number; pduTimeout: number };
}

let codecs: Promise<void> | undefined;

/** Compressed↔uncompressed conversion needs dcmjs-codecs' WebAssembly; loaded once, on first need. */
function initializeCodecs(logger: Logger): Promise<void> {
  codecs ??= Transcoding.initializeAsync().catch((error: unknown) => {
    logger.warn({ event: 'codecs-unavailable', reason: (error as Error)?.message }, 'transcoding of compressed syntaxes unavailable');
  });
  return codecs;
}

function outcomeOf(status: number): Outcome {
  if (status === DimseStatus.Success) return 'completed';
  if ((status & 0xf000) === 0xb000) return 'warning';
  return 'failed';
}

/** One promise per request: its C-STORE-RSP status, or failure if it is done (or the link is gone) without one. */
function track(request: StoreRequest): { outcome: Promise<Outcome>; fail: () => void } {
  let settle!: (outcome: Outcome) => void;
  const outcome = new Promise<Outcome>((resolve) => (settle = resolve));
  request.on('response', (response: { getStatus(): number }) => settle(outcomeOf(response.getStatus())));
  request.on('done', () => settle('failed')); // no effect when a response came first
  return { outcome, fail: () => settle('failed') };
}

class Progress {
  completed = 0;
  warnings = 0;
  failed: string[] = [];
  constructor(readonly total: number) {}
  get remaining(): number {
    return this.total - this.completed - this.warnings - this.failed.length;
  }
  add(target: Target, outcome: Outcome): void {
    if (outcome === 'completed') this.completed++;
    else if (outcome === 'warning') this.warnings++;
    else this.failed.push(target.sopInstanceUid);
  }
}

type RetrieveResponse = CMoveResponse | CGetResponse;

export class RetrieveHandlers {
  constructor(private readonly options: RetrieveOptions) {}

  /** C-MOVE SCP: sub-operations over a new association to a known peer. */
  async move(scp: EdgeScp, info: AssociationInfo, request: CMoveRequest, send: (responses: CMoveResponse[]) => void): Promise<void> {
    const respond = this.responder(scp, request, () => MoveResponse.fromRequest(request), send);
    const destinationAe = String(request.getCommandDataset().getElement('MoveDestination') ?? '').trim();
    const destination = this.options.peers().find((peer) => peer.aeTitle.trim() === destinationAe);
    if (!destination) {
      info.logger.warn({ event: 'c-move-refused', destination: destinationAe }, 'C-MOVE to an unknown destination');
      respond(DimseStatus.MoveDestinationUnknown, undefined, `move destination ${destinationAe} is not a known peer`);
      return;
    }
    const targets = this.targets(info, request, respond);
    if (!targets) return;
    info.logger.info({ event: 'c-move', destination: destinationAe, host: destination.host, port: destination.port, instances: targets.length }, 'C-MOVE');
    const progress = new Progress(targets.length);
    if (targets.length === 0) return respond(DimseStatus.Success, progress);
    await initializeCodecs(info.logger);

    const client = new Client();
    let added = 0;
    const tracked = targets.map((target) => {
      const storeRequest = this.storeRequest(target);
      if (storeRequest) {
        client.addRequest(storeRequest);
        added++;
      }
      return storeRequest ? track(storeRequest) : { outcome: Promise.resolve<Outcome>('failed'), fail: () => undefined };
    });
    client.on('networkError', (error: Error) =>
      info.logger.warn({ event: 'c-move-network-error', destination: destinationAe, reason: error.message }, 'C-MOVE destination link failed'));
    client.on('associationRejected', (reject: unknown) =>
      info.logger.warn({ event: 'c-move-rejected', destination: destinationAe, reject }, 'C-MOVE destination rejected the association'));
    client.on('closed', () => tracked.forEach((t) => t.fail()));
    if (added > 0) {
      client.send(destination.host, destination.port, this.options.aeTitle(), destination.aeTitle, this.options.timeouts());
    } else {
      tracked.forEach((t) => t.fail());
    }
    await this.report(scp, request, targets, tracked, progress, respond, () => client.abort());
  }

  /** C-GET SCP: C-STORE sub-operations back on the requesting association. */
  async get(scp: EdgeScp, info: AssociationInfo, request: CGetRequest, send: (responses: CGetResponse[]) => void): Promise<void> {
    const respond = this.responder(scp, request, () => GetResponse.fromRequest(request), send);
    const targets = this.targets(info, request, respond);
    if (!targets) return;
    info.logger.info({ event: 'c-get', instances: targets.length }, 'C-GET');
    const progress = new Progress(targets.length);
    if (targets.length === 0) return respond(DimseStatus.Success, progress);
    await initializeCodecs(info.logger);
    const messageId = request.getMessageId();
    let closed = false;
    scp.socket.once('close', () => (closed = true));
    for (const target of targets) {
      if (scp.isCancelled(messageId) || closed) break;
      const storeRequest = this.storeRequest(target);
      let outcome: Outcome = 'failed';
      if (storeRequest) {
        const tracked = track(storeRequest);
        const onClose = () => tracked.fail();
        scp.socket.once('close', onClose);
        scp.sendRequests([storeRequest]);
        outcome = await tracked.outcome;
        scp.socket.off('close', onClose);
      }
      progress.add(target, outcome);
      scp.touch();
      if (progress.remaining > 0) respond(DimseStatus.Pending, progress);
    }
    this.finish(scp, request, progress, respond);
  }

  private async report(
    scp: EdgeScp, request: CMoveRequest, targets: Target[], tracked: { outcome: Promise<Outcome> }[], progress: Progress,
    respond: (status: number, progress?: Progress, comment?: string) => void, abort: () => void,
  ): Promise<void> {
    const messageId = request.getMessageId();
    for (let i = 0; i < targets.length; i++) {
      const outcome = await Promise.race([
        tracked[i]!.outcome,
        new Promise<'cancel'>((resolve) => {
          const timer = setInterval(() => scp.isCancelled(messageId) && resolve('cancel'), 100);
          void tracked[i]!.outcome.then(() => clearInterval(timer));
        }),
      ]);
      if (outcome === 'cancel') {
        abort();
        break;
      }
      progress.add(targets[i]!, outcome);
      scp.touch();
      if (progress.remaining > 0) respond(DimseStatus.Pending, progress);
    }
    this.finish(scp, request, progress, respond);
  }

  private finish(
    scp: EdgeScp, request: { getMessageId(): number }, progress: Progress,
    respond: (status: number, progress?: Progress, comment?: string) => void,
  ): void {
    if (scp.isCancelled(request.getMessageId()) && progress.remaining > 0) return respond(DimseStatus.Cancel, progress);
    if (progress.failed.length === 0 && progress.warnings === 0) return respond(DimseStatus.Success, progress);
    if (progress.completed === 0 && progress.warnings === 0) return respond(DimseStatus.OutOfResourcesSubOperations, progress, 'every sub-operation failed');
    respond(DimseStatus.SubOperationsCompleteWithFailures, progress);
  }

  /** Builds one response (pending or final) with counts; a final one after failures lists them. */
  private responder<R extends RetrieveResponse>(
    scp: EdgeScp, request: CMoveRequest | CGetRequest, make: () => R, send: (responses: R[]) => void,
  ) {
    return (status: number, progress?: Progress, comment?: string): void => {
      const response = make();
      response.setStatus(status);
      if (comment) response.setErrorComment(errorComment(comment));
      if (progress) {
        // Pending responses carry every count; final ones leave out Remaining (PS3.4 C.4.2.1.4).
        if (status === DimseStatus.Pending || status === DimseStatus.Cancel) response.setRemaining(progress.remaining);
        response.setCompleted(progress.completed);
        response.setFailures(progress.failed.length);
        response.setWarnings(progress.warnings);
        if (status !== DimseStatus.Pending && progress.failed.length > 0) {
          response.setDataset(new Dataset({ FailedSOPInstanceUIDList: progress.failed }, responseSyntax(scp, request as never)));
        }
      }
      send([response]);
    };
  }

  /** The instances an identifier names, or undefined after answering a bad identifier. */
  private targets(
    info: AssociationInfo, request: CMoveRequest | CGetRequest, respond: (status: number, progress?: Progress, comment?: string) => void,
  ): Target[] | undefined {
    const model = modelOf(request.getAffectedSopClassUid());
    const identifier = request.getDataset();
    if (!model || !identifier) {
      respond(DimseStatus.IdentifierDoesNotMatch, undefined, 'no identifier or unknown information model');
      return undefined;
    }
    try {
      const parsed = parseIdentifier(identifier.getElements(), model);
      const keys = Object.fromEntries(Object.entries(parsed.keys).filter(([, value]) => value !== ''));
      if (Object.keys(keys).length === 0) throw new IdentifierError('a retrieve needs at least one unique key');
      const { reads, paths } = this.options.archive;
      return reads.query({ level: 'IMAGE', keys }).map((match) => {
        const sopInstanceUid = String(match.SOPInstanceUID);
        const file = reads.instanceFile(sopInstanceUid);
        return {
          sopInstanceUid,
          sopClassUid: String(match.SOPClassUID),
          transferSyntaxUid: String(match.TransferSyntaxUID),
          path: file === undefined ? undefined : paths.absolute(file),
        };
      });
    } catch (error) {
      if (error instanceof IdentifierError || error instanceof InvalidMatchKeyError) {
        info.logger.warn({ event: 'retrieve-refused', reason: error.message }, 'retrieve identifier refused');
        respond(DimseStatus.IdentifierDoesNotMatch, undefined, error.message);
        return undefined;
      }
      throw error;
    }
  }

  private storeRequest(target: Target): StoreRequest | undefined {
    // A file gone from disk is a failed sub-operation, not a broken association.
    if (!target.path || !existsSync(target.path)) return undefined;
    return new CStoreRequest(new StoredInstanceDataset(target.path, target.sopClassUid, target.sopInstanceUid, target.transferSyntaxUid));
  }
}
