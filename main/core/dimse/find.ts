import { setImmediate as yieldToLoop } from 'node:timers/promises';
import dimse from 'dcmjs-dimse';
import { InvalidMatchKeyError } from '../dicom/matching.js';
import { readRawDataSet, type RawDataSet } from '../dicom/raw-data-set.js';
import { QUERY_RETRIEVE_SOP_CLASSES } from '../dicom/storage-sop-classes.js';
import type { FederatedSearch } from '../cloud/federated-search.js';
import { drainedOrClosed } from '../runtime/drained-or-closed.js';
import type { Archive } from '../store/archive.js';
import type { QueryMatch } from '../store/query-types.js';
import type { AssociationInfo, CFindRequest, CFindResponse, CGetRequest, CMoveRequest, EdgeScp } from './association.js';
import { receivedDatasetBytes } from './dcmjs-dimse-internals.js';
import { IdentifierError, parseIdentifier, responseIdentifier, type InformationModel } from './identifier.js';
import { DimseStatus, errorComment } from './statuses.js';

const { CFindResponse: FindResponse } = dimse.responses;
const { Dataset } = dimse;

/** Outgoing bytes buffered on the socket before we wait for it to drain. */
const SOCKET_BACKLOG_BYTES = 1024 * 1024;

export function modelOf(sopClassUid: string): InformationModel | undefined {
  switch (sopClassUid) {
    case QUERY_RETRIEVE_SOP_CLASSES.patientRootFind:
    case QUERY_RETRIEVE_SOP_CLASSES.patientRootMove:
    case QUERY_RETRIEVE_SOP_CLASSES.patientRootGet:
      return 'patientRoot';
    case QUERY_RETRIEVE_SOP_CLASSES.studyRootFind:
    case QUERY_RETRIEVE_SOP_CLASSES.studyRootMove:
    case QUERY_RETRIEVE_SOP_CLASSES.studyRootGet:
      return 'studyRoot';
    default:
      return undefined;
  }
}

/** The transfer syntax a response data set must be written in: the one accepted for the request's context. */
export function responseSyntax(scp: EdgeScp, request: Parameters<EdgeScp['cFindRequest']>[0]): string {
  const association = (scp as unknown as { association?: { getAcceptedPresentationContextFromRequest(r: unknown): { getAcceptedTransferSyntaxUid(): string | undefined } | undefined } }).association;
  return association?.getAcceptedPresentationContextFromRequest(request)?.getAcceptedTransferSyntaxUid() ?? '1.2.840.10008.1.2';
}

/** A request's identifier as received, for what dcmjs' naturalized copy of it loses (identifier.ts). */
export function receivedIdentifier(scp: EdgeScp, request: CFindRequest | CMoveRequest | CGetRequest): RawDataSet | undefined {
  const identifier = request.getDataset();
  const bytes = identifier ? receivedDatasetBytes(identifier) : undefined;
  return bytes ? readRawDataSet(bytes, responseSyntax(scp, request as CFindRequest)) : undefined;
}

/** Lets the socket drain (or a C-CANCEL in) between pending responses. */
export async function waitForSocket(scp: EdgeScp): Promise<void> {
  if (scp.socket.writableLength > SOCKET_BACKLOG_BYTES) {
    await drainedOrClosed(scp.socket);
  } else {
    await yieldToLoop(); // lets a C-CANCEL in
  }
}

export interface FindSources {
  archive: Archive;
  /** Local and archive matches merged (cloud/federated-search.ts); absent, the local index alone answers. */
  federated?: () => Pick<FederatedSearch, 'search'> | undefined;
}

/**
 * C-FIND SCP: one pending response per match, streamed; C-CANCEL stops them. With an archive, its matches
 * join the local ones within the federation time limit; without its part, the local ones come back anyway.
 */
export async function handleFind(
  sources: FindSources, aeTitle: () => string, scp: EdgeScp, info: AssociationInfo, request: CFindRequest,
  send: (responses: CFindResponse[]) => void,
): Promise<void> {
  const final = (status: number, comment?: string) => {
    const response = FindResponse.fromRequest(request);
    response.setStatus(status);
    if (comment) response.setErrorComment(errorComment(comment));
    send([response]);
  };
  const model = modelOf(request.getAffectedSopClassUid());
  const identifier = request.getDataset();
  if (!model || !identifier) {
    final(DimseStatus.IdentifierDoesNotMatch, 'no identifier or unknown information model');
    return;
  }
  const messageId = request.getMessageId();
  let parsed;
  let matches: QueryMatch[];
  try {
    parsed = parseIdentifier(identifier.getElements(), model, receivedIdentifier(scp, request));
    const query = { level: parsed.level, keys: parsed.keys };
    const federated = sources.federated?.();
    if (federated) {
      const signal = scp.workSignal(messageId);
      const keepAlive = setInterval(() => scp.touch(), 1_000); // the archive may take up to the time limit
      const result = await federated.search(query, { signal }).catch((error: unknown) => {
        if (signal.aborted) return undefined;
        throw error;
      }).finally(() => clearInterval(keepAlive));
      if (!result) {
        info.logger.info({ event: 'c-find-cancelled' }, 'C-FIND cancelled');
        if (!scp.socket.destroyed) final(DimseStatus.Cancel);
        return;
      }
      matches = result.matches;
      if (result.archive.state === 'missing') {
        info.logger.warn({ event: 'c-find-archive-missing', queryLevel: parsed.level, reason: result.archive.reason, message: result.archive.message,
          localMatches: matches.length }, 'C-FIND answered without the archive\'s matches');
      }
    } else {
      matches = sources.archive.reads.query(query);
    }
  } catch (error) {
    if (error instanceof IdentifierError || error instanceof InvalidMatchKeyError) {
      info.logger.warn({ event: 'c-find-refused', reason: error.message }, 'C-FIND identifier refused');
      final(DimseStatus.IdentifierDoesNotMatch, error.message);
      return;
    }
    throw error;
  }
  info.logger.info({ event: 'c-find', queryLevel: parsed.level, keys: parsed.keys, matches: matches.length }, 'C-FIND');
  const syntax = responseSyntax(scp, request);
  for (const match of matches) {
    if (scp.isCancelled(messageId) || scp.socket.destroyed) {
      info.logger.info({ event: 'c-find-cancelled' }, 'C-FIND cancelled');
      final(DimseStatus.Cancel);
      return;
    }
    const response = FindResponse.fromRequest(request);
    response.setStatus(DimseStatus.Pending);
    response.setDataset(new Dataset(responseIdentifier(parsed, model, match, aeTitle()), syntax));
    send([response]);
    await waitForSocket(scp);
  }
  final(DimseStatus.Success);
}
