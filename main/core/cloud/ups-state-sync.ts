/**
 * MPPS → UPS: sends the UPS-RS state changes MPPS queued for cloud worklist items (store/ups-state-changes.ts)
 * to the archive destination the workitem came from: the claim (IN PROGRESS with this appliance's new
 * Transaction UID), then COMPLETED or CANCELED with the same Transaction UID, in queue order per workitem.
 * Before a final state the workitem is updated with the final-state attributes the MPPS step gives
 * (cloud/workitems.ts finalStateAttributes); an update refused as such does not stop the state change, whose
 * answer decides (a retry after a lost answer finds the workitem final already). A claim retried after a lost
 * answer and refused as "already IN PROGRESS" is checked: if this appliance's Transaction UID owns the
 * workitem, the earlier attempt claimed it and the claim is done.
 *
 * An archive that cannot take it now (offline, 408, 429, 5xx, sign-in) is tried again with backoff
 * (cloud.worklist.retryBaseMs·2^n up to retryCapMs), also after a restart: the queue is in the index. An
 * answer of 200 with "already in the requested state" counts as done (a retry after a lost answer). A refusal
 * (400, 404, 409, an answer that makes no sense) is final: the change and the later ones of that workitem are
 * marked failed and logged with the archive's reason; nothing else changes. One log line per change.
 */
import type { Logger } from 'pino';
import type { CloudSettings } from '../contract/settings.js';
import type { ApplianceService } from '../service.js';
import type { Archive } from '../store/archive.js';
import type { UpsStateChange } from '../store/ups-state-changes.js';
import { ArchiveReadError } from './archive-errors.js';
import type { ArchiveReader } from './archive-reader.js';
import { finalStateAttributes, labelUpdate } from './workitems.js';
import { RoundLoop } from './round-loop.js';

type RequestOptions = { timeoutMs: number; signal: AbortSignal };

export type WorkitemStateTarget = Pick<ArchiveReader, 'name' | 'changeWorkitemState' | 'updateWorkitem'>;

export interface UpsStateSyncOptions {
  archive: Pick<Archive, 'upsChanges' | 'mpps' | 'worklist'>;
  /** The archive destination's reader, asked at each round; undefined while no destination is the archive. */
  reader: () => WorkitemStateTarget | undefined;
  /** Read at each round (the backoff). */
  settings: () => CloudSettings['worklist'];
  logger: Logger;
  /** How often the queue is looked at (default 1 s); a change waits at most this long before it is sent. */
  pollMs?: number;
  now?: () => number;
}

export interface UpsSyncRound {
  done: number;
  deferred: number;
  failed: number;
}

/** Worth trying again without anyone acting on the workitem: offline, 408/429/5xx, or a sign-in to be done. */
function isRetryable(error: ArchiveReadError): boolean {
  return error.retryable || error.kind === 'offline' || error.kind === 'auth';
}

/** Longest wait for one state change. */
const REQUEST_TIMEOUT_MS = 60_000;

export class UpsStateSync implements ApplianceService {
  readonly name = 'ups-state-sync';
  private readonly log: Logger;
  private readonly loop: RoundLoop<UpsSyncRound> = new RoundLoop({
    round: () => this.round(),
    tick: () => this.sendDue().catch((error: unknown) => {
      this.log.error({ event: 'ups-state-sync-failed', reason: (error as Error)?.message ?? String(error) }, 'UPS state changes not worked');
    }),
    nextDelay: () => this.options.pollMs ?? 1000,
    stopReason: 'UPS state sync stopped',
  });

  constructor(private readonly options: UpsStateSyncOptions) {
    this.log = options.logger.child({ component: 'ups-state-sync' });
  }

  async start(): Promise<string[]> {
    this.loop.start();
    return [];
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }

  /** Sends what is due now (after the round running). */
  sendDue(): Promise<UpsSyncRound> {
    return this.loop.runOnce();
  }

  private now(): number {
    return this.options.now?.() ?? Date.now();
  }

  private async round(): Promise<UpsSyncRound> {
    const queue = this.options.archive.upsChanges;
    const round: UpsSyncRound = { done: 0, deferred: 0, failed: 0 };
    // One workitem's next change per pass; a later change of the same workitem is due in the next pass.
    for (let changes = queue.due(this.now()); changes.length > 0 && !this.loop.stopped; changes = queue.due(this.now())) {
      for (const change of changes) {
        if (this.loop.stopped) break;
        const outcome = await this.send(change);
        round[outcome]++;
      }
    }
    return round;
  }

  private async send(change: UpsStateChange): Promise<'done' | 'deferred' | 'failed'> {
    const queue = this.options.archive.upsChanges;
    const fields = { workitemUid: change.workitemUid, state: change.targetState, transactionUid: change.transactionUid, destination: change.destination,
      worklistItemId: change.worklistItemId, attempt: change.attempts + 1 };
    const reader = this.options.reader();
    if (!reader || reader.name !== change.destination) {
      return this.defer(change, fields, `the workitem's destination ${change.destination} is not the archive destination now`, 'other');
    }
    const options = { timeoutMs: REQUEST_TIMEOUT_MS, signal: this.loop.signal };
    let updateRefused: string | undefined;
    try {
      if (change.targetState !== 'IN PROGRESS') updateRefused = await this.setFinalStateAttributes(reader, change, options);
      const answer = await reader.changeWorkitemState(change.workitemUid, change.targetState, change.transactionUid, options);
      return this.done(change, fields, answer.warning);
    } catch (error) {
      if (this.loop.signal.aborted) return 'deferred'; // cut by stop(): still queued, sent after the next start
      const message = (error as Error)?.message ?? String(error);
      if (error instanceof ArchiveReadError && isRetryable(error)) return this.defer(change, fields, message, error.kind, error.status);
      let reason = updateRefused ? `${message} (the update with the final-state attributes before it was refused too: ${updateRefused})` : message;
      if (change.targetState === 'IN PROGRESS' && change.attempts > 0 && error instanceof ArchiveReadError && error.status === 409) {
        // "Already IN PROGRESS" after an attempt whose answer never came: that attempt may have been the one that claimed it.
        const probe = await this.probeOwnership(reader, change, options);
        if (probe === 'owner') return this.done(change, fields, 'claimed by an earlier attempt whose answer was lost');
        if (probe instanceof ArchiveReadError) return this.defer(change, fields, probe.message, probe.kind, probe.status);
        reason = `${reason} (and this appliance's Transaction UID does not own it: ${probe})`;
      }
      const abandoned = queue.failed(change.id, reason, this.now());
      this.log.error({ event: 'ups-state-change-refused', ...fields, status: error instanceof ArchiveReadError ? error.status : undefined, reason,
        abandoned: abandoned.map((later) => later.targetState) }, 'the cloud worklist refused the workitem state change; it is not sent again');
      return 'failed';
    }
  }

  private done(change: UpsStateChange, fields: Record<string, unknown>, warning: string | undefined): 'done' {
    this.options.archive.upsChanges.done(change.id, this.now());
    this.log.info({ event: 'ups-state-changed', ...fields, ...(warning ? { warning } : {}) },
      warning ? 'workitem state change taken, with a warning' : 'workitem state changed in the cloud worklist');
    return 'done';
  }

  /**
   * Update Workitem with the final-state attributes the MPPS step gives; resolves with the reason when the
   * archive refused it as such (the state change then goes ahead and its answer decides), rejects otherwise.
   */
  private async setFinalStateAttributes(reader: WorkitemStateTarget, change: UpsStateChange, options: RequestOptions): Promise<string | undefined> {
    const step = this.options.archive.mpps.latestForItem(change.worklistItemId);
    const studyUid = this.options.archive.worklist.get(change.worklistItemId)?.studyInstanceUid ?? '';
    const target = change.targetState === 'COMPLETED' ? 'COMPLETED' : 'CANCELED';
    try {
      await reader.updateWorkitem(change.workitemUid, change.transactionUid, finalStateAttributes(target, step, studyUid, new Date(this.now())), options);
      return undefined;
    } catch (error) {
      if (!(error instanceof ArchiveReadError) || isRetryable(error)) throw error;
      return error.message;
    }
  }

  /**
   * Whether this appliance's Transaction UID owns the workitem: an Update Workitem that sets the Procedure Step
   * Label to the value it had is taken only from the owner (PS3.18 11.6). 'owner', the refusal, or a retryable failure.
   */
  private async probeOwnership(reader: WorkitemStateTarget, change: UpsStateChange, options: RequestOptions): Promise<'owner' | string | ArchiveReadError> {
    const label = this.options.archive.worklist.get(change.worklistItemId)?.scheduledProcedureStepDescription ?? '';
    try {
      await reader.updateWorkitem(change.workitemUid, change.transactionUid, labelUpdate(label), options);
      return 'owner';
    } catch (error) {
      if (error instanceof ArchiveReadError && isRetryable(error)) return error;
      return (error as Error)?.message ?? String(error);
    }
  }

  private defer(change: UpsStateChange, fields: Record<string, unknown>, reason: string, kind: string, status?: number): 'deferred' {
    const settings = this.options.settings();
    const delay = Math.min(settings.retryCapMs, settings.retryBaseMs * 2 ** Math.min(change.attempts, 20));
    this.options.archive.upsChanges.retryLater(change.id, reason, this.now() + delay, this.now());
    this.log.warn({ event: 'ups-state-change-deferred', ...fields, kind, status, reason, retryInMs: delay },
      'workitem state change not taken now; tried again later');
    return 'deferred';
  }
}
