import dimse from 'dcmjs-dimse';
import type { QueryLevel } from '../dicom/keywords.js';
import { InvalidMatchKeyError } from '../dicom/matching.js';
import type { PeerSettings } from '../contract/settings.js';
import type { Archive } from '../store/archive.js';
import type { InstanceScope } from '../store/instance-locations.js';
import { arrivals, inScope, listAtArchive, retrieveScopes, type CloudReads, type Ready } from './archive-retrieve.js';
import type { AssociationInfo, CGetRequest, CGetResponse, CMoveRequest, CMoveResponse, EdgeScp } from './association.js';
import { negotiatedAssociation, sendFileDataSetsStreamed } from './dcmjs-dimse-internals.js';
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

/** What a retrieve identifier names, as far as the index knows it now, and what the archive must serve. */
interface Plan {
  keys: Record<string, string>;
  level: QueryLevel;
  /** The instances the index lists now: here, or known to be in the archive. */
  known: Target[];
  /** Scopes the archive must serve (not all here, or not all listed): fetched, each instance sent as it arrives. */
  fromArchive: InstanceScope[];
}

/** Every instance to send, once the archive has listed what it holds; `failure` when it could not be asked. */
interface Listed {
  targets: Target[];
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
    const plan = this.plan(scp, info, request, respond);
    if (!plan) return;
    info.logger.info({ event: 'c-move', destination: destinationAe, host: destination.host, port: destination.port, known: plan.known.length,
      fromArchive: plan.fromArchive.length }, 'C-MOVE');
    // The codecs load while the archive starts sending: only a conversion needs them.
    const codecs = initializeCodecs(info.logger);
    const sender = new PeerStoreSender(destination, this.options.aeTitle(), this.options.timeouts(), plan.known, info.logger);
    const signal = scp.workSignal(request.getMessageId());
    const abort = () => sender.abort();
    signal.addEventListener('abort', abort, { once: true });
    let respondFinal: () => void = () => undefined;
    try {
      respondFinal = await this.subOperations(scp, info, request, plan, respond, async (store) => {
        // PS3.7 9.3.1.1: a C-STORE on behalf of a C-MOVE names who asked, and which request it serves.
        const command = store.getCommandDataset();
        command.setElement('MoveOriginatorApplicationEntityTitle', info.callingAe);
        command.setElement('MoveOriginatorMessageID', request.getMessageId() as never); // a US; dcmjs-dimse types every value as string
        await codecs;
        const outcome = await sender.send(store);
        return signal.aborted ? 'aborted' : outcome;
      }, () => sender.touch());
    } finally {
      signal.removeEventListener('abort', abort);
      if (signal.aborted) sender.abort();
      else sender.release();
    }
    respondFinal();
  }

  /** C-GET SCP: C-STORE sub-operations back on the requesting association. */
  async get(scp: EdgeScp, info: AssociationInfo, request: CGetRequest, send: (responses: CGetResponse[]) => void): Promise<void> {
    const respond = responder(scp, request, () => GetResponse.fromRequest(request), send);
    const plan = this.plan(scp, info, request, respond);
    if (!plan) return;
    info.logger.info({ event: 'c-get', known: plan.known.length, fromArchive: plan.fromArchive.length }, 'C-GET');
    sendFileDataSetsStreamed(scp);
    const codecs = initializeCodecs(info.logger);
    const respondFinal = await this.subOperations(scp, info, request, plan, respond, async (store) => {
      await codecs;
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
    respondFinal();
  }

  /**
   * Sends every instance as it becomes available (those here at once, those only in the archive as they
   * arrive), one at a time; resolves with what sends the final response. Pending responses follow each
   * sub-operation once the number remaining is known (the archive's listing is in); stops on C-CANCEL or a
   * closed connection.
   */
  private async subOperations(
    scp: EdgeScp, info: AssociationInfo, request: CMoveRequest | CGetRequest, plan: Plan, respond: Respond,
    sendOne: (store: StoreRequest) => Promise<Outcome | 'aborted'>, keepAlive: () => void,
  ): Promise<() => void> {
    const signal = scp.workSignal(request.getMessageId());
    const { archive } = this.options;
    const cloud = plan.fromArchive.length > 0 ? this.options.cloud?.() : undefined;
    const inArchiveScope = (target: Target) => plan.fromArchive.some((scope) => inScope(scope, target));
    const local: Ready[] = plan.known.filter((t) => !t.cloudOnly && !(cloud && inArchiveScope(t)))
      .map((t) => ({ sopInstanceUid: t.sopInstanceUid, sopClassUid: t.sopClassUid, transferSyntaxUid: t.transferSyntaxUid, path: t.path }));
    // The fetches start first, so that the listing joins theirs instead of asking the archive twice.
    const incoming = arrivals(local, cloud ? plan.fromArchive : [], cloud, (path) => archive.paths.absolute(path), signal, info.logger);
    const progress = new Progress(cloud ? undefined : plan.known.map((t) => t.sopInstanceUid));
    let listed: Listed | undefined;
    const listing: Promise<Listed> = cloud
      ? listAtArchive(cloud, plan.fromArchive, signal, info.logger).then((failures) => {
        listed = { targets: this.query(plan.keys), failure: failures.length > 0 ? `archive not reachable: ${failures[0]}` : undefined };
        progress.expect(listed.targets.map((t) => t.sopInstanceUid));
        return listed;
      })
      : Promise.resolve((listed = { targets: plan.known, failure: undefined }));
    // While an instance is on its way from the archive, neither association may idle out.
    const timer = setInterval(() => {
      scp.touch();
      keepAlive();
    }, KEEPALIVE_MS);
    const failedScopes: Array<{ scope: InstanceScope; reason: string }> = [];
    let stopped = false;
    const subOperation = async (ready: Ready): Promise<boolean> => {
      if (progress.has(ready.sopInstanceUid)) return true;
      const store = storeRequest(ready);
      const outcome = store ? await sendOne(store) : 'failed';
      if (outcome === 'aborted' || signal.aborted) return false;
      progress.add(ready, outcome);
      scp.touch();
      const remaining = progress.remaining;
      if (remaining !== undefined && remaining > 0) respond(DimseStatus.Pending, progress);
      return true;
    };
    try {
      for await (const arrival of incoming) {
        if (signal.aborted) break;
        if ('failed' in arrival) failedScopes.push({ scope: arrival.failed, reason: arrival.reason });
        else if (!(await subOperation(arrival.ready))) break;
      }
      stopped = signal.aborted;
      const { targets } = await untilAborted(listing, signal).catch(() => ({ targets: [] as Target[] }));
      stopped ||= signal.aborted;
      // What the archive listed and did not deliver: sent from here if it was kept after all, else failed.
      for (const target of targets) {
        if (stopped || progress.has(target.sopInstanceUid)) continue;
        const file = archive.reads.instanceFile(target.sopInstanceUid);
        if (file !== undefined) {
          if (!(await subOperation({ ...target, path: archive.paths.absolute(file) }))) stopped = true;
          continue;
        }
        const reason = failedScopes.find((f) => inScope(f.scope, target))?.reason ?? 'the archive did not send it';
        info.logger.warn({ event: 'retrieve-instance-failed', sopInstanceUid: target.sopInstanceUid, reason }, 'an instance could not be sent');
        progress.add(target, 'failed');
      }
    } finally {
      clearInterval(timer);
    }
    const failure = listed?.failure;
    if (progress.completed + progress.warnings + progress.failed.length === 0 && !scp.isCancelled(request.getMessageId())) {
      // Nothing to send: success, unless the archive could not be asked what it holds (A701).
      const why = failure ?? failedScopes[0]?.reason;
      return () => (why !== undefined ? respond(DimseStatus.OutOfResourcesMatches, progress, why) : respond(DimseStatus.Success, progress));
    }
    return () => finish(scp, request, progress, respond, failure);
  }

  /** The instances the index lists for a retrieve's keys (here, or known to be in the archive). */
  private query(keys: Record<string, string>): Target[] {
    const { reads, paths } = this.options.archive;
    return reads.query({ level: 'IMAGE', keys }).map((match): Target => {
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
  }

  /**
   * What an identifier names, as the index knows it now, and the scopes the archive must serve; undefined
   * after answering a bad identifier.
   */
  private plan(scp: EdgeScp, info: AssociationInfo, request: CMoveRequest | CGetRequest, respond: Respond): Plan | undefined {
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
      const cloud = this.options.cloud?.();
      const fromArchive = cloud ? retrieveScopes(this.options.archive.reads, parsed.level, keys).filter((scope) => cloud.needsArchive(scope)) : [];
      return { keys, level: parsed.level, known: this.query(keys), fromArchive };
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

/** Waits for `promise`, or rejects once `signal` aborts. */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const abort = () => reject(signal.reason);
    signal.addEventListener('abort', abort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', abort));
  });
}
