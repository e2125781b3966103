/**
 * Works one destination's outbox: claims batches (one study each, oldest and newest study in turn),
 * streams them as STOW-RS, records each instance's outcome from the response body, and backs off as a
 * whole when the destination is unreachable (one probe per backoff interval, full speed after the first
 * success).
 */
import { closeSync, fstatSync, openSync, read } from 'node:fs';
import type { Logger } from 'pino';
import type { Dispatcher } from 'undici';
import type { Egress } from '../network/egress.js';
import { multipartBody, type PartSource } from '../multipart/writer.js';
import type { DestinationSettings } from '../contract/settings.js';
import { isDiskFull } from '../store/disk-full.js';
import type { ArchiveEvents, OutboxState } from '../store/events.js';
import { OutboxWorkerQueries, REPLACES_EARLIER, type ClaimedRow } from '../store/outbox-worker-queries.js';
import { SignInRequiredError, TokenError, type AuthProvider } from './auth.js';
import { backoffDelayMs, type BackoffPolicy } from './backoff.js';
import { classifyNetworkError, classifyStow, FAILURE, type InstanceOutcome, type Verdict } from './classify.js';
import type { DestinationState, DestinationStatus } from './control.js';
import { RateMeter } from './rate.js';
import { listStudyInstances, sendStow } from './stow-client.js';

export interface WorkerOptions {
  destination: DestinationSettings;
  queries: OutboxWorkerQueries;
  /** Absolute path of an archive-relative instance path. */
  resolvePath: (relativePath: string) => string;
  events: ArchiveEvents;
  auth: AuthProvider;
  /** The proxy and CAs of every request to the destination. */
  egress: Egress;
  logger: Logger;
  backoff: BackoffPolicy;
}

interface Batch {
  studyUid: string;
  rows: ClaimedRow[];
  method: 'POST' | 'PUT';
}

interface OpenPart {
  row: ClaimedRow;
  handle: FileSource;
  sizeBytes: number;
}

/**
 * A file read by descriptor. Closing waits for reads still in flight (a request can end while its body is
 * being read): a descriptor number closed under a pending read could be reused by the next open, and the
 * read would then take another file's bytes.
 */
class FileSource implements PartSource {
  private pending = 0;
  private closeRequested = false;
  private closed = false;

  constructor(private readonly fd: number) {}

  read(buffer: Buffer, offset: number, length: number, position: number): Promise<{ bytesRead: number }> {
    if (this.closeRequested) return Promise.reject(new Error('the file was closed'));
    this.pending++;
    return new Promise((resolve, reject) => {
      read(this.fd, buffer, offset, length, position, (error, bytesRead) => {
        this.pending--;
        if (this.closeRequested) this.closeNow();
        if (error) reject(error);
        else resolve({ bytesRead });
      });
    });
  }

  close(): void {
    this.closeRequested = true;
    this.closeNow();
  }

  private closeNow(): void {
    if (this.closed || this.pending > 0) return;
    this.closed = true;
    try {
      closeSync(this.fd);
    } catch {
      // already gone: nothing to release
    }
  }
}

const MAX_TIMER_MS = 60_000;
/** How soon the outbox is worked again after the index could not be written (a full disk). */
const INDEX_RETRY_MS = 1_000;
const VERIFY_SETTLE_MS = 2_000;

export class DestinationWorker {
  readonly name: string;
  private state: DestinationState = 'idle';
  private since = Date.now();
  private lastError: string | null = null;
  private userPaused = false;
  private stopping = false;
  private started = false;
  private readonly inFlight = new Set<Promise<void>>();
  private timer: NodeJS.Timeout | undefined;
  private pumpQueued = false;
  private offlineFailures = 0;
  private nextProbeAt = 0;
  private probeInFlight = false;
  private newestTurn = false;
  private readonly rate = new RateMeter();
  private readonly verifying = new Set<string>();
  private readonly verifyTimers = new Map<string, NodeJS.Timeout>();
  private readonly abort = new AbortController();
  private readonly dispatcher: Dispatcher;
  private readonly log: Logger;

  constructor(private readonly options: WorkerOptions) {
    this.name = options.destination.name;
    this.log = options.logger.child({ component: 'forward', destination: this.name });
    this.dispatcher = options.egress.dispatcher(options.destination.baseUrl, { connections: options.destination.maxConcurrentRequests, timeoutMs: options.destination.requestTimeoutMs });
  }

  get settings(): DestinationSettings {
    return this.options.destination;
  }

  start(): void {
    this.started = true;
    this.kick();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.timer) clearTimeout(this.timer);
    for (const timer of this.verifyTimers.values()) clearTimeout(timer);
    this.abort.abort(new Error('the appliance is stopping'));
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
    await this.dispatcher.close().catch(() => undefined);
  }

  /** Something may be due: look soon (coalesced). */
  kick(): void {
    if (this.pumpQueued || this.stopping || !this.started) return;
    this.pumpQueued = true;
    setImmediate(() => {
      this.pumpQueued = false;
      this.pump();
    });
  }

  pause(): void {
    this.userPaused = true;
    this.setState('paused', 'paused by a user');
  }

  /** Clears a user pause and an auth/forbidden stop; a due probe goes out at once. */
  resume(): void {
    this.userPaused = false;
    this.offlineFailures = 0;
    this.nextProbeAt = 0;
    this.options.queries.makeDueNow(this.name, Date.now());
    if (this.state !== 'online') this.setState('idle', null);
    this.kick();
  }

  status(): DestinationStatus {
    const { counts, pendingBytes } = this.options.queries.counts(this.name);
    return {
      name: this.name,
      baseUrl: this.options.destination.baseUrl,
      state: this.state,
      since: this.since,
      lastError: this.lastError,
      counts,
      pendingBytes,
      ...this.rate.rates(),
      nextAttemptAt: this.state === 'offline' ? this.nextProbeAt : null,
    };
  }

  private setState(state: DestinationState, lastError: string | null): void {
    const changed = state !== this.state;
    if (changed) this.since = Date.now();
    const errorChanged = lastError !== this.lastError;
    this.state = state;
    this.lastError = lastError;
    if (changed || errorChanged) {
      this.options.events.emit('destination-status', { destination: this.name, state, since: this.since, lastError });
      if (changed) this.log.info({ event: 'destination-state', state, reason: lastError }, `destination ${state}`);
    }
  }

  private blocked(): boolean {
    return this.userPaused || this.state === 'auth' || this.state === 'forbidden' || this.state === 'paused';
  }

  /**
   * Claiming writes the outbox; on a full disk that fails. Sending waits until the index can be written
   * again, and the appliance stays up (this runs outside any caller that could catch it).
   */
  private pump(): void {
    try {
      this.pumpNow();
    } catch (error) {
      if (isDiskFull(error)) {
        this.log.warn({ event: 'forward-deferred', reason: (error as Error).message, retryInMs: INDEX_RETRY_MS }, 'the disk is full: forwarding waits until the outbox can be written');
      } else {
        this.log.error({ event: 'forward-bug', reason: (error as Error)?.stack ?? String(error), retryInMs: INDEX_RETRY_MS }, 'unexpected error while working the outbox');
      }
      this.schedule(Date.now() + INDEX_RETRY_MS);
    }
  }

  private pumpNow(): void {
    if (this.stopping || this.blocked()) return;
    const now = Date.now();
    const limit = this.state === 'offline' ? 1 : this.options.destination.maxConcurrentRequests;
    if (this.state === 'offline') {
      if (this.probeInFlight || this.inFlight.size > 0) return;
      if (now < this.nextProbeAt) return this.schedule(this.nextProbeAt);
    }
    while (this.inFlight.size < limit) {
      const batch = this.claim(now);
      if (!batch) break;
      const isProbe = this.state === 'offline';
      if (isProbe) this.probeInFlight = true;
      const work = this.send(batch, isProbe).catch((error: unknown) => {
        this.log.error({ event: 'forward-bug', reason: (error as Error).stack ?? String(error) }, 'unexpected error while sending');
      }).finally(() => {
        if (isProbe) this.probeInFlight = false;
        this.inFlight.delete(work);
        this.kick();
      });
      this.inFlight.add(work);
      if (isProbe) return;
    }
    if (this.inFlight.size === 0) {
      const due = this.options.queries.nextDue(this.name);
      if (due !== undefined) this.schedule(Math.max(due, this.state === 'offline' ? this.nextProbeAt : 0));
    }
  }

  private schedule(at: number): void {
    if (this.timer) clearTimeout(this.timer);
    const delay = Math.min(Math.max(at - Date.now(), 5), MAX_TIMER_MS);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.kick();
    }, delay);
    this.timer.unref?.();
  }

  /** Oldest study and newest study in turn, so a new study is not starved by a backlog. */
  private claim(now: number): Batch | undefined {
    const { queries, destination } = this.options;
    this.newestTurn = !this.newestTurn;
    const studyUid = queries.pickStudy(this.name, now, this.newestTurn) ?? queries.pickStudy(this.name, now, !this.newestTurn);
    if (!studyUid) return undefined;
    const rows = queries.claim(this.name, studyUid, now, destination.maxInstancesPerRequest, destination.maxBytesPerRequest);
    if (rows.length === 0) return undefined;
    // A user's "overwrite" goes with PUT; keep POST and PUT rows in separate requests.
    const put = rows.filter((r) => r.replaces_earlier === REPLACES_EARLIER.overwrite);
    if (put.length > 0 && put.length < rows.length) {
      for (const row of rows.filter((r) => r.replaces_earlier !== REPLACES_EARLIER.overwrite)) queries.release(row.id, now, now, null, null, { refundAttempt: true });
      return { studyUid, rows: put, method: 'PUT' };
    }
    return { studyUid, rows, method: put.length > 0 ? 'PUT' : 'POST' };
  }

  private async send(batch: Batch, isProbe: boolean): Promise<void> {
    const parts: OpenPart[] = [];
    try {
      for (const row of batch.rows) {
        const part = this.openRow(row);
        if (part) parts.push(part);
      }
      if (parts.length > 0) await this.sendParts(batch, parts, isProbe);
    } finally {
      for (const part of parts) part.handle.close();
    }
  }

  /**
   * Opened and sized synchronously: for a batch of archive files that is a fraction of a millisecond, where
   * 100 thread-pool round trips (open, stat) kept each request from starting for 10 to 20 ms.
   */
  private openRow(row: ClaimedRow): OpenPart | undefined {
    const now = Date.now();
    if (!row.path || row.file_missing) {
      this.settle(row, { kind: 'failed', failureReason: null, message: 'the local file is missing' }, now);
      return undefined;
    }
    let fd: number | undefined;
    try {
      fd = openSync(this.options.resolvePath(row.path), 'r');
      const sizeBytes = fstatSync(fd).size;
      return { row, handle: new FileSource(fd), sizeBytes };
    } catch (error) {
      if (fd !== undefined) closeSync(fd);
      this.settle(row, { kind: 'failed', failureReason: null, message: `the local file cannot be read: ${(error as Error).message}` }, now);
      return undefined;
    }
  }

  private async sendParts(batch: Batch, parts: OpenPart[], isProbe: boolean, refreshed = false): Promise<void> {
    const { destination } = this.options;
    let authorization: string | undefined;
    try {
      authorization = await this.options.auth.authorization(refreshed);
    } catch (error) {
      return this.authFailed(parts, error, isProbe);
    }
    let verdict: Verdict;
    const started = Date.now();
    try {
      const answer = await sendStow({
        dispatcher: this.dispatcher, baseUrl: destination.baseUrl, studyUid: batch.studyUid, method: batch.method,
        body: multipartBody(parts.map((p) => ({ handle: p.handle, sizeBytes: p.sizeBytes }))),
        authorization, timeoutMs: destination.requestTimeoutMs, signal: this.abort.signal,
      });
      verdict = classifyStow(answer, parts.map((p) => ({ sopInstanceUid: p.row.sop_instance_uid, replacesEarlier: p.row.replaces_earlier !== REPLACES_EARLIER.no })),
        { upsert: destination.upsert || batch.method === 'PUT' });
      if (batch.method === 'PUT' && verdict.kind === 'per-instance') {
        // A PUT that answers 45070 would be a server without upsert: do not loop, ask the user.
        for (const [uid, outcome] of verdict.outcomes) if (outcome.kind === 'resend-put') verdict.outcomes.set(uid, { kind: 'conflict', message: 'the destination refused to replace the instance (PUT answered 45070)' });
      }
      this.log.debug({ event: 'stow', studyUid: batch.studyUid, method: batch.method, status: answer.status, instances: parts.length, ms: Date.now() - started }, 'STOW answered');
    } catch (error) {
      if (this.stopping) return this.releaseAll(parts, Date.now(), null, true);
      verdict = classifyNetworkError(this.options.egress.explain(error, destination.baseUrl));
    }
    await this.apply(batch, parts, verdict, isProbe, refreshed);
  }

  private async apply(batch: Batch, parts: OpenPart[], verdict: Verdict, isProbe: boolean, refreshed: boolean): Promise<void> {
    const now = Date.now();
    switch (verdict.kind) {
      case 'per-instance': {
        this.reachable();
        let deliveredBytes = 0;
        let delivered = 0;
        const changes = new Map<OutboxState, string[]>();
        this.options.queries.inTransaction(() => {
          for (const part of parts) {
            const outcome = verdict.outcomes.get(part.row.sop_instance_uid)!;
            const state = this.settle(part.row, outcome, now, false);
            if (state) changes.set(state, [...(changes.get(state) ?? []), part.row.sop_instance_uid]);
            if (state === 'delivered') {
              delivered++;
              deliveredBytes += part.sizeBytes;
            }
          }
        });
        this.rate.record(deliveredBytes, delivered, now);
        for (const [state, uids] of changes) this.emitChange(batch.studyUid, uids, state);
        if (delivered > 0) this.afterDelivery(batch.studyUid);
        return;
      }
      case 'transient': {
        this.releaseAll(parts, now, verdict.message, false);
        this.unreachable(verdict.message, verdict.retryAfterMs, isProbe);
        return;
      }
      case 'unauthorized': {
        if (!refreshed) {
          this.log.info({ event: 'token-rejected', studyUid: batch.studyUid }, 'token rejected, getting a new one');
          return this.sendParts(batch, parts, isProbe, true);
        }
        this.releaseAll(parts, now, verdict.message, true);
        this.setState('auth', verdict.message);
        return;
      }
      case 'forbidden': {
        this.releaseAll(parts, now, verdict.message, true);
        this.setState('forbidden', verdict.message);
        return;
      }
      case 'too-large': {
        this.reachable();
        if (parts.length === 1) {
          this.settle(parts[0]!.row, { kind: 'failed', failureReason: FAILURE.tooLarge, message: `the destination refuses this instance as too large (${parts[0]!.sizeBytes} bytes): ${verdict.message}` }, now);
          return;
        }
        const half = Math.ceil(parts.length / 2);
        this.log.info({ event: 'split', studyUid: batch.studyUid, instances: parts.length }, 'request too large, splitting');
        await this.sendParts(batch, parts.slice(0, half), isProbe, refreshed);
        await this.sendParts(batch, parts.slice(half), isProbe, refreshed);
        return;
      }
    }
  }

  /** Records one instance's outcome; returns the new state when the row was still ours. */
  private settle(row: ClaimedRow, outcome: InstanceOutcome, now: number, emit = true): OutboxState | undefined {
    const q = this.options.queries;
    let state: OutboxState | undefined;
    switch (outcome.kind) {
      case 'delivered':
        if (q.delivered(row.id, outcome.warningReason ?? null, now)) state = 'delivered';
        break;
      case 'failed':
        if (q.failed(row.id, outcome.failureReason, outcome.message, now)) state = 'failed';
        this.log.warn({ event: 'instance-failed', studyUid: row.study_uid, sopInstanceUid: row.sop_instance_uid, failureReason: outcome.failureReason, reason: outcome.message }, 'instance failed permanently');
        break;
      case 'conflict':
        if (q.conflict(row.id, outcome.message, now)) state = 'conflict';
        this.log.warn({ event: 'instance-conflict', studyUid: row.study_uid, sopInstanceUid: row.sop_instance_uid }, outcome.message);
        break;
      case 'resend-put':
        if (q.release(row.id, now, now, null, null, { refundAttempt: true, replacesEarlier: REPLACES_EARLIER.overwrite })) state = 'pending';
        break;
      case 'retry': {
        const at = now + backoffDelayMs(row.attempts, this.options.backoff);
        if (q.release(row.id, at, now, outcome.message, outcome.failureReason)) state = 'pending';
        break;
      }
    }
    if (emit && state) this.emitChange(row.study_uid, [row.sop_instance_uid], state, outcome.kind === 'failed' || outcome.kind === 'conflict' ? outcome.message : undefined);
    return state;
  }

  private releaseAll(parts: OpenPart[], now: number, message: string | null, refund: boolean): void {
    this.options.queries.inTransaction(() => {
      for (const part of parts) this.options.queries.release(part.row.id, now, now, message, null, { refundAttempt: refund });
    });
  }

  private emitChange(studyUid: string, sopInstanceUids: string[], state: OutboxState, reason?: string): void {
    this.options.events.emit('outbox-changed', { studyUid, destination: this.name, sopInstanceUids, state, ...(reason ? { reason } : {}) });
  }

  private authFailed(parts: OpenPart[], error: unknown, isProbe: boolean): void {
    const now = Date.now();
    const message = (error as Error).message;
    if (error instanceof SignInRequiredError || (error instanceof TokenError && error.permanent)) {
      this.releaseAll(parts, now, message, true);
      this.setState('auth', message);
      return;
    }
    // The token endpoint is unreachable: as good as offline.
    this.releaseAll(parts, now, message, false);
    this.unreachable(message, undefined, isProbe);
  }

  private reachable(): void {
    if (this.state === 'online') return;
    const wasOffline = this.state === 'offline';
    this.offlineFailures = 0;
    this.nextProbeAt = 0;
    this.setState('online', null);
    if (wasOffline) this.options.queries.makeDueNow(this.name, Date.now());
  }

  private unreachable(message: string, retryAfterMs: number | undefined, isProbe: boolean): void {
    if (this.stopping) return;
    // Requests already in flight when the destination went offline do not push the backoff further.
    if (this.state !== 'offline' || isProbe) this.offlineFailures++;
    else if (this.nextProbeAt > Date.now()) return;
    const delay = backoffDelayMs(this.offlineFailures, this.options.backoff, retryAfterMs);
    this.nextProbeAt = Date.now() + delay;
    this.log.warn({ event: 'destination-unreachable', reason: message, failures: this.offlineFailures, retryInMs: delay }, 'destination unreachable, backing off');
    if (this.state !== 'offline') this.setState('offline', message);
    else if (this.lastError !== message) this.setState('offline', message);
    this.schedule(this.nextProbeAt);
  }

  /**
   * After a study's last instance is delivered (nothing open for it for VERIFY_SETTLE_MS, since a modality
   * may still be sending): count on the destination, queue what is missing again.
   */
  private afterDelivery(studyUid: string): void {
    if (!this.options.destination.verifyAfterDelivery || this.stopping) return;
    clearTimeout(this.verifyTimers.get(studyUid));
    const timer = setTimeout(() => {
      this.verifyTimers.delete(studyUid);
      if (this.stopping || this.verifying.has(studyUid) || this.options.queries.openRowsOfStudy(this.name, studyUid) > 0) return;
      this.verifying.add(studyUid);
      const work = this.verify(studyUid).finally(() => {
        this.verifying.delete(studyUid);
        this.inFlight.delete(work);
      });
      this.inFlight.add(work);
    }, VERIFY_SETTLE_MS);
    timer.unref?.();
    this.verifyTimers.set(studyUid, timer);
  }

  private async verify(studyUid: string): Promise<void> {
    const { destination, queries } = this.options;
    try {
      // Read what we delivered before asking, so a delivery landing in between is not taken for missing.
      const delivered = queries.deliveredOfStudy(this.name, studyUid);
      const authorization = await this.options.auth.authorization();
      const found = await listStudyInstances({ dispatcher: this.dispatcher, baseUrl: destination.baseUrl, studyUid, authorization, timeoutMs: destination.requestTimeoutMs });
      if (found.status !== 200) {
        this.log.warn({ event: 'verify-failed', studyUid, status: found.status, reason: found.text }, 'verification query failed');
        return;
      }
      const missing = delivered.filter((uid) => !found.uids.has(uid));
      this.log.info({ event: 'verified', studyUid, delivered: delivered.length, found: found.uids.size, missing: missing.length }, 'study verified on the destination');
      if (missing.length > 0) {
        queries.requeue(this.name, missing, Date.now());
        this.emitChange(studyUid, missing, 'pending', 'missing on the destination after delivery');
        this.kick();
      }
    } catch (error) {
      const explained = this.options.egress.explain(error, destination.baseUrl) as Error;
      this.log.warn({ event: 'verify-failed', studyUid, reason: explained.message }, 'verification query failed');
    }
  }
}
