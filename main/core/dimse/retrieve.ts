import dimse from 'dcmjs-dimse';
import { InvalidMatchKeyError } from '../dicom/matching.js';
import type { PeerSettings } from '../settings/schema.js';
import type { Archive } from '../store/archive.js';
import { queryArchive } from '../store/query.js';
import type { AssociationInfo, CGetRequest, CGetResponse, CMoveRequest, CMoveResponse, EdgeScp } from './association.js';
import { modelOf } from './find.js';
import { IdentifierError, parseIdentifier } from './identifier.js';
import { DimseStatus } from './statuses.js';
import {
  finish, initializeCodecs, Progress, responder, storeRequest, track, type Outcome, type Respond, type Target,
} from './sub-operations.js';

const { Client } = dimse;
const { CMoveResponse: MoveResponse, CGetResponse: GetResponse } = dimse.responses;

export interface RetrieveOptions {
  archive: Archive;
  aeTitle: () => string;
  peers: () => readonly PeerSettings[];
  timeouts: () => { connectTimeout: number; associationTimeout: number; pduTimeout: number };
}

export class RetrieveHandlers {
  private readonly paths: (uid: string) => { path: string; file_missing: number } | undefined;

  constructor(private readonly options: RetrieveOptions) {
    const statement = options.archive.db.prepare('SELECT path, file_missing FROM instances WHERE sop_instance_uid = ?');
    this.paths = (uid) => statement.get(uid) as { path: string; file_missing: number } | undefined;
  }

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
    const targets = this.targets(info, request, respond);
    if (!targets) return;
    info.logger.info({ event: 'c-move', destination: destinationAe, host: destination.host, port: destination.port, instances: targets.length }, 'C-MOVE');
    const progress = new Progress(targets.length);
    if (targets.length === 0) return respond(DimseStatus.Success, progress);
    await initializeCodecs(info.logger);

    const client = new Client();
    let added = 0;
    const tracked = targets.map((target) => {
      const request = storeRequest(target);
      if (request) {
        client.addRequest(request);
        added++;
      }
      return request ? track(request) : { outcome: Promise.resolve<Outcome>('failed'), fail: () => undefined };
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
    const respond = responder(scp, request, () => GetResponse.fromRequest(request), send);
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
      const store = storeRequest(target);
      let outcome: Outcome = 'failed';
      if (store) {
        const tracked = track(store);
        const onClose = () => tracked.fail();
        scp.socket.once('close', onClose);
        scp.sendRequests([store]);
        outcome = await tracked.outcome;
        scp.socket.off('close', onClose);
      }
      progress.add(target, outcome);
      scp.touch();
      if (progress.remaining > 0) respond(DimseStatus.Pending, progress);
    }
    finish(scp, request, progress, respond);
  }

  private async report(
    scp: EdgeScp, request: CMoveRequest, targets: Target[], tracked: { outcome: Promise<Outcome> }[], progress: Progress,
    respond: Respond, abort: () => void,
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
    finish(scp, request, progress, respond);
  }

  /** The instances an identifier names, or undefined after answering a bad identifier. */
  private targets(
    info: AssociationInfo, request: CMoveRequest | CGetRequest, respond: Respond,
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
      return queryArchive(this.options.archive.db, { level: 'IMAGE', keys }).map((match) => {
        const sopInstanceUid = String(match.SOPInstanceUID);
        const row = this.paths(sopInstanceUid);
        return {
          sopInstanceUid,
          sopClassUid: String(match.SOPClassUID),
          transferSyntaxUid: String(match.TransferSyntaxUID),
          path: row && !row.file_missing ? this.options.archive.paths.absolute(row.path) : undefined,
          cloudOnly: match.InstanceAvailability === 'NEARLINE',
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
}
