import dimse from 'dcmjs-dimse';
import type { QueryLevel } from '../dicom/keywords.js';
import { InvalidMatchKeyError } from '../dicom/matching.js';
import type { PeerSettings } from '../contract/settings.js';
import type { Archive } from '../store/archive.js';
import { arrivals, listAtArchive, retrieveScopes, type CloudReads } from './archive-retrieve.js';
import type { AssociationInfo, CGetRequest, CGetResponse, CMoveRequest, CMoveResponse, EdgeScp } from './association.js';
import { negotiatedAssociation } from './dcmjs-dimse-internals.js';
import { modelOf, receivedIdentifier } from './find.js';
import { IdentifierError, parseIdentifier } from './identifier.js';
import { PeerStoreSender } from './peer-sender.js';
import { DimseStatus } from './statuses.js';
import {
  finish, initializeCodecs, Progress, responder, storeRequest, track, type Outcome, type Respond, type StoreRequest, type Target,
} from './sub-operations.js';

const { CMoveResponse: MoveResponse, CGetResponse: GetResponse } = dimse.responses;

/** How often the associations of a retrieve are kept from idling out while it waits on the archive. */
const KEEPALIVE_MS = 1_000;

export interface RetrieveOptions {
  archive: Archive;
  aeTitle: () => string;
  peers: () => readonly PeerSettings[];
  timeouts: () => { connectTimeout: number; associationTimeout: number; pduTimeout: number };
  /** The archive's read-through, when the appliance has one: cloud-only instances are fetched through it. */
  cloud?: () => CloudReads | undefined;
}

interface FoundTargets {
  targets: Target[];
  level: QueryLevel;
  /** Why the archive could not be asked what it holds of some of it, if it could not. */
  failure: string | undefined;
}

export class RetrieveHandlers {
  constructor(private readonly options: RetrieveOptions) {}

  /** C-MOVE SCP: sub-operations over a new association to a known peer. */
  async move(scp: EdgeScp, info: AssociationInfo, request: CMoveRequest, send: (responses: CMoveResponse[]) => void): Promise<void> {
    const respond = responder(scp, request, () => MoveResponse.fromRequest(request), send);
    const destinationAe = String(request.getCommandDataset().getElement('MoveDestination') ?? '').trim();
    const destination = this.options.peers().find((peer) => peer.aeTitle.trim() === destinationAe);
    if (!destination) {
      info.logger.warn({ event: 'c-move-refused', destination: destinationAe }, 'C-MOVE to an unknown destination');
      respond(DimseStatus.MoveDestinationUnknown, undefined, `move destination ${destinationAe} is not a known peer`);
      return;
    }
    const found = await this.targets(scp, info, request, respond);
    if (!found) return;
    const { targets } = found;
    info.logger.info({ event: 'c-move', destination: destinationAe, host: destination.host, port: destination.port, instances: targets.length,
      fromArchive: targets.filter((t) => t.cloudOnly).length }, 'C-MOVE');
    const progress = new Progress(targets.length);
    if (targets.length === 0) return this.nothingFound(found, progress, respond);
    await initializeCodecs(info.logger);
    const sender = new PeerStoreSender(destination, this.options.aeTitle(), this.options.timeouts(), targets, info.logger);
    const signal = scp.workSignal(request.getMessageId());
    const abort = () => sender.abort();
    signal.addEventListener('abort', abort, { once: true });
    try {
      await this.subOperations(scp, info, request, found, progress, respond, async (store) => {
        // PS3.7 9.3.1.1: a C-STORE on behalf of a C-MOVE names who asked, and which request it serves.
        const command = store.getCommandDataset();
        command.setElement('MoveOriginatorApplicationEntityTitle', info.callingAe);
        command.setElement('MoveOriginatorMessageID', request.getMessageId() as never); // a US; dcmjs-dimse types every value as string
        const outcome = await sender.send(store);
        return signal.aborted ? 'aborted' : outcome;
      }, () => sender.touch());
    } finally {
      signal.removeEventListener('abort', abort);
      if (signal.aborted) sender.abort();
      else sender.release();
    }
    finish(scp, request, progress, respond, found.failure);
  }

  /** C-GET SCP: C-STORE sub-operations back on the requesting association. */
  async get(scp: EdgeScp, info: AssociationInfo, request: CGetRequest, send: (responses: CGetResponse[]) => void): Promise<void> {
    const respond = responder(scp, request, () => GetResponse.fromRequest(request), send);
    const found = await this.targets(scp, info, request, respond);
    if (!found) return;
    const { targets } = found;
    info.logger.info({ event: 'c-get', instances: targets.length, fromArchive: targets.filter((t) => t.cloudOnly).length }, 'C-GET');
    const progress = new Progress(targets.length);
    if (targets.length === 0) return this.nothingFound(found, progress, respond);
    await initializeCodecs(info.logger);
    await this.subOperations(scp, info, request, found, progress, respond, async (store) => {
      if (!negotiatedAssociation(scp)?.getAcceptedPresentationContextFromRequest(store)) {
        // dcmjs-dimse would skip it without a word, and the outcome would never come.
        info.logger.warn({ event: 'c-get-no-context', sopClassUid: store.getAffectedSopClassUid(), sopInstanceUid: store.getAffectedSopInstanceUid() },
          'the C-GET SCU accepted no presentation context for this instance');
        return 'failed';
      }
      const tracked = track(store);
      const onClose = () => tracked.fail();
      scp.socket.once('close', onClose);
      scp.sendRequests([store]);
      const outcome = await tracked.outcome;
      scp.socket.off('close', onClose);
      return outcome;
    }, () => undefined);
    finish(scp, request, progress, respond, found.failure);
  }

  /**
   * Sends every target as it becomes available (those here at once, those only in the archive as they
   * arrive), one at a time, with a pending response after each; stops on C-CANCEL or a closed connection.
   */
  private async subOperations(
    scp: EdgeScp, info: AssociationInfo, request: CMoveRequest | CGetRequest, found: FoundTargets, progress: Progress, respond: Respond,
    sendOne: (store: StoreRequest) => Promise<Outcome | 'aborted'>, keepAlive: () => void,
  ): Promise<void> {
    const signal = scp.workSignal(request.getMessageId());
    // While an instance is on its way from the archive, neither association may idle out.
    const timer = setInterval(() => {
      scp.touch();
      keepAlive();
    }, KEEPALIVE_MS);
    const { archive } = this.options;
    try {
      for await (const arrival of arrivals(found.targets, found.level, this.options.cloud?.(), (path) => archive.paths.absolute(path), signal, info.logger)) {
        if (signal.aborted) break;
        let outcome: Outcome | 'aborted' = 'failed';
        if ('ready' in arrival) {
          const store = storeRequest({ ...arrival.target, ...arrival.ready });
          if (store) outcome = await sendOne(store);
        }
        if (outcome === 'aborted' || signal.aborted) break;
        progress.add(arrival.target, outcome);
        scp.touch();
        if (progress.remaining > 0) respond(DimseStatus.Pending, progress);
      }
    } finally {
      clearInterval(timer);
    }
  }

  /** No instance to send: success, unless the archive could not be asked what it holds (A701). */
  private nothingFound(found: FoundTargets, progress: Progress, respond: Respond): void {
    if (found.failure) return respond(DimseStatus.OutOfResourcesMatches, progress, found.failure);
    respond(DimseStatus.Success, progress);
  }

  /**
   * The instances an identifier names, here or only in the archive (asked for the list first where the
   * index does not know it all), or undefined after answering a bad identifier.
   */
  private async targets(
    scp: EdgeScp, info: AssociationInfo, request: CMoveRequest | CGetRequest, respond: Respond,
  ): Promise<FoundTargets | undefined> {
    const model = modelOf(request.getAffectedSopClassUid());
    const identifier = request.getDataset();
    if (!model || !identifier) {
      respond(DimseStatus.IdentifierDoesNotMatch, undefined, 'no identifier or unknown information model');
      return undefined;
    }
    try {
      const parsed = parseIdentifier(identifier.getElements(), model, receivedIdentifier(scp, request));
      const keys = Object.fromEntries(Object.entries(parsed.keys).filter(([, value]) => value !== ''));
      if (Object.keys(keys).length === 0) throw new IdentifierError('a retrieve needs at least one unique key');
      const { reads, paths } = this.options.archive;
      const cloud = this.options.cloud?.();
      const scopes = cloud ? retrieveScopes(reads, parsed.level, keys) : [];
      const unlisted = cloud ? await listAtArchive(cloud, scopes, scp.workSignal(request.getMessageId()), info.logger) : [];
      const targets = reads.query({ level: 'IMAGE', keys }).map((match): Target => {
        const sopInstanceUid = String(match.SOPInstanceUID);
        const file = reads.instanceFile(sopInstanceUid);
        return {
          studyUid: String(match.StudyInstanceUID),
          seriesUid: String(match.SeriesInstanceUID),
          sopInstanceUid,
          sopClassUid: String(match.SOPClassUID),
          transferSyntaxUid: String(match.TransferSyntaxUID),
          path: file === undefined ? undefined : paths.absolute(file),
          cloudOnly: match.InstanceAvailability === 'NEARLINE',
        };
      });
      const failure = unlisted.length > 0 ? `archive not reachable: ${unlisted[0]}` : undefined;
      return { targets, level: parsed.level, failure };
    } catch (error) {
      if (error instanceof IdentifierError || error instanceof InvalidMatchKeyError) {
        info.logger.warn({ event: 'retrieve-refused', reason: error.message }, 'retrieve identifier refused');
        respond(DimseStatus.IdentifierDoesNotMatch, undefined, error.message);
        return undefined;
      }
      throw error;
    }
  }
}
