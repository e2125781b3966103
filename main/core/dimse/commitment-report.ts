/**
 * The N-EVENT-REPORT of a Storage Commitment transaction (PS3.4 J.3.3): built from the decision, and sent on
 * an association of its own to the requesting AE, on which we propose the SCP role only (J.3.3, role selection).
 */
import dimse from 'dcmjs-dimse';
import type { PeerSettings } from '../contract/settings.js';
import { TransferSyntax } from '../dicom/transfer-syntax.js';
import { STORAGE_COMMITMENT_PUSH_MODEL_INSTANCE, StorageCommitmentIds, WORKFLOW_SOP_CLASSES } from '../dicom/workflow-sop-classes.js';
import type { CommitmentDecision } from '../store/commitments.js';
import { proposeScpRoleOnly, tuneClientForRequests } from './dcmjs-dimse-internals.js';

const { Client, Dataset } = dimse;
const { NEventReportRequest } = dimse.requests;

export type EventReportRequest = InstanceType<typeof NEventReportRequest>;

/** Event Type 1 when everything was committed, else 2 with the Failed SOP Sequence (J.3.3.1). */
export function eventReportRequest(transactionUid: string, decision: Pick<CommitmentDecision, 'committed' | 'failed'>): EventReportRequest {
  const allCommitted = decision.failed.length === 0;
  const request = new NEventReportRequest(
    WORKFLOW_SOP_CLASSES.storageCommitmentPushModel,
    STORAGE_COMMITMENT_PUSH_MODEL_INSTANCE,
    allCommitted ? StorageCommitmentIds.allCommitted : StorageCommitmentIds.someFailed,
  );
  const elements: Record<string, unknown> = { TransactionUID: transactionUid };
  if (decision.committed.length > 0) {
    elements.ReferencedSOPSequence = decision.committed.map((item) => ({
      ReferencedSOPClassUID: item.sopClassUid, ReferencedSOPInstanceUID: item.sopInstanceUid,
    }));
  }
  if (!allCommitted) {
    elements.FailedSOPSequence = decision.failed.map((item) => ({
      ReferencedSOPClassUID: item.sopClassUid, ReferencedSOPInstanceUID: item.sopInstanceUid, FailureReason: item.failureReason,
    }));
  }
  request.setDataset(new Dataset(elements, TransferSyntax.ExplicitVRLittleEndian));
  return request;
}

export interface ReportTimeouts {
  connectTimeout: number;
  associationTimeout: number;
  pduTimeout: number;
}

/**
 * Opens an association to `peer` as `callingAe`, sends the report and resolves with the peer's status once
 * its N-EVENT-REPORT-RSP arrives; rejects when the association cannot be had or ends without an answer.
 */
export function sendReportOnNewAssociation(
  peer: Pick<PeerSettings, 'aeTitle' | 'host' | 'port'>, callingAe: string, request: EventReportRequest, timeouts: ReportTimeouts,
): Promise<number> {
  return new Promise((resolve, reject) => {
    const client = new Client();
    let status: number | undefined;
    let failure: string | undefined;
    request.on('response', (response: { getStatus(): number }) => {
      status = response.getStatus();
    });
    client.addRequest(request); // send() proposes the request's SOP class with both little-endian syntaxes
    client.on('associationRejected', (rejection: { result: number; source: number; reason: number }) => {
      failure = `association rejected (result ${rejection.result}, source ${rejection.source}, reason ${rejection.reason})`;
    });
    client.on('associationAccepted', (association: { getAcceptedPresentationContextFromRequest(r: unknown): unknown }) => {
      if (!association.getAcceptedPresentationContextFromRequest(request)) failure = 'the peer accepted no Storage Commitment context';
    });
    client.on('networkError', (error: Error) => {
      failure ??= error.message;
    });
    client.on('closed', () => {
      if (status !== undefined) resolve(status);
      else reject(new Error(failure ?? 'the association closed without an N-EVENT-REPORT response'));
    });
    client.send(peer.host, peer.port, callingAe, peer.aeTitle, timeouts);
    proposeScpRoleOnly(client, WORKFLOW_SOP_CLASSES.storageCommitmentPushModel);
    tuneClientForRequests(client);
  });
}
