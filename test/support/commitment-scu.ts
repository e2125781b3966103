// A modality's Storage Commitment SCU (PS3.4 Annex J) built on dcmjs-dimse, a DICOM stack that is not ours:
// it asks with N-ACTION and takes the N-EVENT-REPORT on the same association, or on one the appliance opens
// to its own little SCP (with the appliance proposing the SCP role).
import dimse from 'dcmjs-dimse';
import { clientSocket, holdClientAssociation, type HeldAssociation } from '../../main/core/dimse/dcmjs-dimse-internals.js';
import { freePort, waitForPort } from './net.js';

const { Client, Dataset, Server, Scp } = dimse;
const { NActionRequest } = dimse.requests;
const { NEventReportResponse } = dimse.responses;
const { PresentationContextResult, TransferSyntax } = dimse.constants;

export const STORAGE_COMMITMENT_CLASS = '1.2.840.10008.1.20.1';
export const STORAGE_COMMITMENT_INSTANCE = '1.2.840.10008.1.20.1.1';

export interface CommitmentItem {
  sopClassUid: string;
  sopInstanceUid: string;
}

export interface CommitmentReport {
  eventType: number;
  transactionUid: string;
  committed: CommitmentItem[];
  failed: (CommitmentItem & { failureReason: number })[];
  /** The calling AE of the association the report came on. */
  callingAe: string;
  /** For a report on an association the appliance opened: the roles it proposed for the Storage Commitment context. */
  roles?: { scu: boolean | undefined; scp: boolean | undefined };
}

function readReport(request: { getEventTypeId(): number; getDataset(): { getElements(): Record<string, unknown> } | undefined }, callingAe: string): CommitmentReport {
  const elements = request.getDataset()?.getElements() ?? {};
  const list = (value: unknown) => (Array.isArray(value) ? value : value ? [value] : []) as Record<string, unknown>[];
  return {
    eventType: request.getEventTypeId(),
    transactionUid: String(elements.TransactionUID ?? ''),
    committed: list(elements.ReferencedSOPSequence).map((item) => ({
      sopClassUid: String(item.ReferencedSOPClassUID), sopInstanceUid: String(item.ReferencedSOPInstanceUID),
    })),
    failed: list(elements.FailedSOPSequence).map((item) => ({
      sopClassUid: String(item.ReferencedSOPClassUID), sopInstanceUid: String(item.ReferencedSOPInstanceUID), failureReason: Number(item.FailureReason),
    })),
    callingAe,
  };
}

export interface CommitmentAsk {
  port: number;
  calledAe: string;
  callingAe: string;
  transactionUid: string;
  items: CommitmentItem[];
  /** How long the association stays open after the N-ACTION response, waiting for the report (0: released at once). */
  waitForReportMs: number;
  actionTypeId?: number;
}

/** When (performance.now(), ms) each step of an ask happened on this side; undefined for one that did not. */
export interface CommitmentTiming {
  /** The association was accepted: dcmjs-dimse sends the N-ACTION right then. */
  actionSent: number | undefined;
  actionResponse: number | undefined;
  /** The N-EVENT-REPORT arrived on this association. */
  report: number | undefined;
}

/**
 * Sends N-ACTION "Request Storage Commitment". Resolves once the association is closed, with the N-ACTION
 * status, the report if it came on this association, and when each came.
 */
export function askForCommitment(ask: CommitmentAsk): Promise<{ actionStatus: number | undefined; report: CommitmentReport | undefined; timing: CommitmentTiming }> {
  return new Promise((resolve, reject) => {
    const client = new Client();
    const request = new NActionRequest(STORAGE_COMMITMENT_CLASS, STORAGE_COMMITMENT_INSTANCE, ask.actionTypeId ?? 1);
    request.setDataset(new Dataset({
      TransactionUID: ask.transactionUid,
      ReferencedSOPSequence: ask.items.map((item) => ({ ReferencedSOPClassUID: item.sopClassUid, ReferencedSOPInstanceUID: item.sopInstanceUid })),
    }, TransferSyntax.ExplicitVRLittleEndian));
    let actionStatus: number | undefined;
    let report: CommitmentReport | undefined;
    let held: HeldAssociation | undefined;
    let waiting: NodeJS.Timeout | undefined;
    const timing: CommitmentTiming = { actionSent: undefined, actionResponse: undefined, report: undefined };
    client.on('associationAccepted', () => (timing.actionSent = performance.now()));
    request.on('response', (response: { getStatus(): number }) => {
      timing.actionResponse = performance.now();
      actionStatus = response.getStatus();
      // Released at once, or kept open for the report (our own timer, unref'd, instead of dcmjs-dimse's linger).
      if (ask.waitForReportMs === 0) held?.release();
      else (waiting = setTimeout(() => held?.release(), ask.waitForReportMs)).unref();
    });
    client.addRequest(request);
    client.on('nEventReportRequest', (incoming: InstanceType<typeof dimse.requests.NEventReportRequest>, callback: (r: unknown) => void) => {
      timing.report = performance.now();
      report = readReport(incoming, ask.calledAe);
      const response = NEventReportResponse.fromRequest(incoming);
      response.setStatus(0);
      callback(response);
      // The report is what we waited for: end the association as a modality would.
      clearTimeout(waiting);
      setImmediate(() => held?.release());
    });
    client.on('networkError', (error: Error) => reject(error));
    client.on('closed', () => resolve({ actionStatus, report, timing }));
    client.send('127.0.0.1', ask.port, ask.callingAe, ask.calledAe, {
      connectTimeout: 10_000, associationTimeout: 10_000, pduTimeout: 60_000,
    });
    held = holdClientAssociation(client);
    // As DCMTK's tools do: with Nagle on, the N-ACTION's data set would wait for the SCP's delayed ACK.
    clientSocket(client).setNoDelay(true);
  });
}

export interface CommitmentScp {
  aeTitle: string;
  port: number;
  reports: CommitmentReport[];
  /** Resolves with the next report not yet taken by an earlier call. */
  nextReport(timeoutMs?: number): Promise<CommitmentReport>;
  close(): void;
}

/** The modality's listener for reports on associations the appliance opens. */
export async function startCommitmentScp(aeTitle: string, port?: number): Promise<CommitmentScp> {
  const reports: CommitmentReport[] = [];
  const waiters: (() => void)[] = [];
  let taken = 0;
  class ModalityScp extends Scp {
    private callingAe = '';
    private roles: CommitmentReport['roles'];

    override associationRequested(association: InstanceType<typeof dimse.association.Association>): void {
      this.callingAe = association.getCallingAeTitle();
      for (const { context } of association.getPresentationContexts()) {
        if (context.getAbstractSyntaxUid() === STORAGE_COMMITMENT_CLASS) {
          this.roles = { scu: context.getUserRole(), scp: context.getProviderRole() };
          context.setResult(PresentationContextResult.Accept, context.getTransferSyntaxUids()[0]);
        } else {
          context.setResult(PresentationContextResult.RejectAbstractSyntaxNotSupported);
        }
      }
      this.sendAssociationAccept();
    }

    override associationReleaseRequested(): void {
      this.sendAssociationReleaseResponse();
    }

    override nEventReportRequest(request: InstanceType<typeof dimse.requests.NEventReportRequest>, callback: (response: InstanceType<typeof NEventReportResponse>) => void): void {
      reports.push({ ...readReport(request, this.callingAe), roles: this.roles });
      const response = NEventReportResponse.fromRequest(request);
      response.setStatus(0);
      callback(response);
      for (const wake of waiters.splice(0)) wake();
    }
  }
  const listenPort = port ?? (await freePort());
  const server = new Server(ModalityScp);
  server.listen(listenPort);
  await waitForPort(listenPort, '127.0.0.1', 10_000);
  return {
    aeTitle, port: listenPort, reports,
    async nextReport(timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      while (reports.length <= taken) {
        if (Date.now() > deadline) throw new Error(`no N-EVENT-REPORT within ${timeoutMs} ms`);
        await new Promise<void>((resolve) => {
          waiters.push(resolve);
          setTimeout(resolve, 200).unref();
        });
      }
      return reports[taken++]!;
    },
    close: () => server.close(),
  };
}
