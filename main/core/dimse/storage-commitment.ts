/**
 * Storage Commitment Push Model SCP (PS3.4 Annex J). The N-ACTION is recorded in the index and answered at
 * once; the reporter decides open transactions from the index (at each archive event, and every second for
 * time limits and retries) and sends each N-EVENT-REPORT on the requesting association while it is open,
 * else on a new one to the calling AE found in `peers`, with backoff while that AE does not take it.
 */
import dimse from 'dcmjs-dimse';
import type { Logger } from 'pino';
import { archiveDestination, type CommitmentPolicy, type Settings } from '../contract/settings.js';
import { uidProblem } from '../dicom/uid.js';
import { STORAGE_COMMITMENT_PUSH_MODEL_INSTANCE, StorageCommitmentIds } from '../dicom/workflow-sop-classes.js';
import type { Archive } from '../store/archive.js';
import type { CommitmentDecision, CommitmentItem, OpenCommitment } from '../store/commitments.js';
import type { AssociationInfo, EdgeScp, NActionRequest, NActionResponse, StorageCommitmentHandler } from './association.js';
import { eventReportRequest, sendReportOnNewAssociation, type ReportTimeouts } from './commitment-report.js';
import { toKeyString } from './identifier.js';
import { DimseStatus, errorComment } from './statuses.js';

const { NActionResponse: ActionResponse } = dimse.responses;

/** How often open transactions are looked at when no archive event asks for it (time limits, retries). */
const SWEEP_INTERVAL_MS = 1_000;

export class CommitmentRequestError extends Error {
  override name = 'CommitmentRequestError';
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

/** The Action Information of a "Request Storage Commitment" (J.3.2.1.1); throws naming the bad attribute. */
export function parseCommitmentRequest(elements: Record<string, unknown>): { transactionUid: string; items: CommitmentItem[] } {
  const transactionUid = toKeyString(elements.TransactionUID);
  const problem = uidProblem(transactionUid);
  if (problem) throw new CommitmentRequestError(DimseStatus.InvalidArgumentValue, `TransactionUID ${problem}`);
  const sequence = elements.ReferencedSOPSequence;
  const list = Array.isArray(sequence) ? sequence : sequence && typeof sequence === 'object' ? [sequence] : [];
  if (list.length === 0) throw new CommitmentRequestError(DimseStatus.InvalidArgumentValue, 'ReferencedSOPSequence is empty or missing');
  const items = list.map((item: Record<string, unknown>, index) => {
    const sopClassUid = toKeyString(item.ReferencedSOPClassUID);
    const sopInstanceUid = toKeyString(item.ReferencedSOPInstanceUID);
    const classProblem = uidProblem(sopClassUid);
    if (classProblem) throw new CommitmentRequestError(DimseStatus.InvalidArgumentValue, `ReferencedSOPSequence[${index}] ReferencedSOPClassUID ${classProblem}`);
    const instanceProblem = uidProblem(sopInstanceUid);
    if (instanceProblem) throw new CommitmentRequestError(DimseStatus.InvalidArgumentValue, `ReferencedSOPSequence[${index}] ReferencedSOPInstanceUID ${instanceProblem}`);
    return { sopClassUid, sopInstanceUid };
  });
  return { transactionUid, items };
}

export function policyFor(settings: Pick<Settings, 'storageCommitment'>, callingAe: string): CommitmentPolicy {
  const { policies, defaultPolicy } = settings.storageCommitment;
  return Object.hasOwn(policies, callingAe) ? policies[callingAe]! : defaultPolicy;
}

export interface StorageCommitmentOptions {
  archive: Archive;
  logger: Logger;
  settings: () => Settings;
  timeouts: () => ReportTimeouts;
  now?: () => number;
}

export class StorageCommitmentService implements StorageCommitmentHandler {
  /** The association each transaction was asked on, while it may still carry the report. */
  private readonly askedOn = new Map<string, EdgeScp>();
  private readonly reporting = new Set<string>();
  private readonly inFlight = new Set<Promise<void>>();
  private sweepTimer: NodeJS.Timeout | undefined;
  private kickPending = false;
  private stopped = true;
  private unsubscribe: (() => void)[] = [];
  private readonly logger: Logger;
  private readonly now: () => number;

  constructor(private readonly options: StorageCommitmentOptions) {
    this.logger = options.logger.child({ component: 'storage-commitment' });
    this.now = options.now ?? Date.now;
  }

  start(): void {
    this.stopped = false;
    const { events } = this.options.archive;
    this.unsubscribe = [events.on('instance-stored', () => this.kick()), events.on('outbox-changed', () => this.kick())];
    this.sweepTimer = setInterval(() => this.sweep(), SWEEP_INTERVAL_MS);
    this.sweepTimer.unref();
    this.kick(); // transactions left open by an earlier run
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.sweepTimer);
    for (const off of this.unsubscribe) off();
    this.unsubscribe = [];
    await Promise.allSettled([...this.inFlight]);
  }

  action(scp: EdgeScp, info: AssociationInfo, request: NActionRequest): NActionResponse {
    const response = ActionResponse.fromRequest(request);
    const answer = (status: number, comment?: string) => {
      response.setStatus(status);
      if (comment) response.setErrorComment(errorComment(comment));
      if (status !== DimseStatus.Success) {
        info.logger.warn({ event: 'commitment-refused', status, reason: comment }, 'Storage Commitment request refused');
      }
      return response;
    };
    if (request.getRequestedSopInstanceUid() !== STORAGE_COMMITMENT_PUSH_MODEL_INSTANCE) {
      return answer(DimseStatus.NoSuchSopInstance, `Requested SOP Instance must be ${STORAGE_COMMITMENT_PUSH_MODEL_INSTANCE}`);
    }
    if (request.getActionTypeId() !== StorageCommitmentIds.requestAction) {
      return answer(DimseStatus.NoSuchAction, `Action Type ID ${request.getActionTypeId()} is not 1 (Request Storage Commitment)`);
    }
    let parsed;
    try {
      parsed = parseCommitmentRequest(request.getDataset()?.getElements() ?? {});
    } catch (error) {
      if (error instanceof CommitmentRequestError) return answer(error.status, error.message);
      throw error;
    }
    const settings = this.options.settings();
    const policy = policyFor(settings, info.callingAe);
    const now = this.now();
    let outcome;
    try {
      outcome = this.options.archive.commitments.record({
        ...parsed, callingAe: info.callingAe, policy, now, deadlineAt: now + settings.storageCommitment.timeLimitMs,
      });
    } catch (error) {
      info.logger.error({ event: 'commitment-record-failed', transactionUid: parsed.transactionUid, reason: (error as Error).message },
        'Storage Commitment request not recorded');
      return answer(DimseStatus.ProcessingFailure, 'the request could not be recorded');
    }
    if (outcome === 'conflict') {
      return answer(DimseStatus.ProcessingFailure, `TransactionUID ${parsed.transactionUid} was used by another AE`);
    }
    info.logger.info({ event: 'commitment-requested', transactionUid: parsed.transactionUid, instances: parsed.items.length, policy,
      duplicate: outcome === 'duplicate' }, 'Storage Commitment requested');
    this.askedOn.set(parsed.transactionUid, scp);
    this.kick();
    return answer(DimseStatus.Success);
  }

  /** Looks at open transactions soon (coalesced): after the N-ACTION response has gone, or an archive event. */
  kick(): void {
    if (this.kickPending || this.stopped) return;
    this.kickPending = true;
    setImmediate(() => {
      this.kickPending = false;
      this.sweep();
    });
  }

  private sweep(): void {
    if (this.stopped) return;
    const settings = this.options.settings();
    const destination = archiveDestination(settings)?.name;
    const now = this.now();
    let due: OpenCommitment[];
    try {
      due = this.options.archive.commitments.due(now);
    } catch (error) {
      this.logger.error({ event: 'commitment-sweep-failed', reason: (error as Error).message }, 'open commitments not read');
      return;
    }
    // Associations that closed before their transactions were ready carry no report: let them go.
    for (const [transactionUid, scp] of this.askedOn) if (!scp.isOpen && !this.reporting.has(transactionUid)) this.askedOn.delete(transactionUid);
    for (const transaction of due) {
      if (this.reporting.has(transaction.transactionUid)) continue;
      const decision = this.options.archive.commitments.decide(transaction.transactionUid, { destination, now });
      if (!decision?.ready) continue;
      this.reporting.add(transaction.transactionUid);
      const work = this.report(transaction, decision, settings).finally(() => {
        this.reporting.delete(transaction.transactionUid);
        this.inFlight.delete(work);
      });
      this.inFlight.add(work);
    }
  }

  private async report(transaction: OpenCommitment, decision: CommitmentDecision, settings: Settings): Promise<void> {
    const { transactionUid, callingAe } = transaction;
    const request = eventReportRequest(transactionUid, decision);
    const eventType = request.getEventTypeId();
    const log = this.logger.child({ callingAe, transactionUid });
    const timeouts = this.options.timeouts();
    const scp = this.askedOn.get(transactionUid);
    let status: number;
    let via: 'same-association' | 'new-association';
    try {
      if (scp?.isOpen) {
        via = 'same-association';
        status = await scp.sendRequestToPeer(request, timeouts.pduTimeout);
      } else {
        via = 'new-association';
        this.askedOn.delete(transactionUid);
        const peer = settings.peers.find((candidate) => candidate.aeTitle === callingAe);
        if (!peer) throw new Error(`calling AE ${callingAe} is not in peers, so the report has nowhere to go`);
        status = await sendReportOnNewAssociation(peer, settings.aeTitle, request, timeouts);
      }
    } catch (error) {
      // The next attempt opens an association of its own: a peer that left this one unanswered may do so again.
      this.askedOn.delete(transactionUid);
      const reason = (error as Error).message;
      const { retryBaseMs, retryCapMs } = settings.storageCommitment;
      const delay = Math.min(retryCapMs, retryBaseMs * 2 ** Math.min(transaction.attempts, 20));
      this.options.archive.commitments.reportFailed(transactionUid, reason, this.now() + delay);
      log.warn({ event: 'commitment-report-failed', attempts: transaction.attempts + 1, retryInMs: delay, reason },
        'Storage Commitment report not delivered; will retry');
      return;
    }
    this.askedOn.delete(transactionUid);
    this.options.archive.commitments.reported(transactionUid, { eventType, failed: decision.failed, now: this.now() });
    const line = { event: 'commitment-reported', eventType, via, committed: decision.committed.length, failed: decision.failed.length,
      failures: decision.failed.map((item) => ({ sopInstanceUid: item.sopInstanceUid, failureReason: item.failureReason })), status };
    if (status === DimseStatus.Success) log.info(line, 'Storage Commitment reported');
    else log.warn(line, 'Storage Commitment reported; the requesting AE answered with a failure status');
  }
}
