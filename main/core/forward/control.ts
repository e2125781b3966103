/**
 * What the rest of the appliance (web/ `/api`, the Electron shell) may ask of store-and-forward.
 * The forward service implements it. web/ wires its actions to these methods; what it shows of the outbox it
 * reads through store/'s read models, and it never changes an outbox row itself.
 */
import type { DestinationSettings } from '../settings/schema.js';
import type { OutboxState } from '../store/events.js';
import type { StudyProgress } from '../store/read-models/study-progress.js';

export type { StudyProgress };

/** online: last request succeeded; offline: unreachable, probing per backoff interval;
 *  paused: a user paused it; auth: token rejected twice (401); forbidden: 403 (missing role);
 *  idle: nothing to send and nothing tried yet. */
export type DestinationState = 'online' | 'offline' | 'paused' | 'auth' | 'forbidden' | 'idle';

export interface DestinationStatus {
  name: string;
  baseUrl: string;
  state: DestinationState;
  /** When the state last changed (ms since epoch). */
  since: number;
  /** Human-readable reason for offline/auth/forbidden, or the last transient error. Never contains secrets. */
  lastError: string | null;
  /** Outbox rows for this destination by state. */
  counts: Record<OutboxState, number>;
  /** Bytes still to send (pending + sending). */
  pendingBytes: number;
  /** Rates over the last minute. */
  bytesPerSecond: number;
  instancesPerSecond: number;
  /** When the next attempt is due while offline (ms since epoch), else null. */
  nextAttemptAt: number | null;
}

/** Which outbox rows an action applies to. Empty filter: all rows of all destinations. */
export interface OutboxFilter {
  destination?: string;
  studyUid?: string;
  sopInstanceUid?: string;
}

export type DeviceCodeStatus =
  | { state: 'idle' }
  | { state: 'waiting'; userCode: string; verificationUri: string; message: string; expiresAt: number }
  | { state: 'signed-in'; account: string }
  | { state: 'failed'; error: string };

export interface TestConnectionResult {
  ok: boolean;
  /** Which step answered: 'token' (getting a token) or 'qido' (QIDO limit=1). */
  step: 'token' | 'qido';
  status?: number;
  message: string;
}

export interface ForwardControl {
  status(): DestinationStatus[];
  /** Per-study progress, newest study first; at most `limit` studies. */
  progress(filter?: { destination?: string; studyUid?: string; limit?: number }): StudyProgress[];
  /** failed/conflict/cancelled → pending, attempts reset. Returns the number of rows changed. */
  retry(filter: OutboxFilter): number;
  /** pending/failed/conflict → cancelled. Rows in flight are cancelled once their request ends. */
  cancel(filter: OutboxFilter): number;
  pause(destination: string): void;
  resume(destination: string): void;
  /** conflict → pending with a PUT (upsert) on the next send. */
  overwrite(filter: OutboxFilter): number;
  /** Gets a token and asks for one study: of the saved destination, or of `draft` (edited, not saved). */
  testConnection(destination: string, draft?: DestinationSettings): Promise<TestConnectionResult>;
  /** Starts an Entra device-code sign-in for a destination with auth kind 'entra-device-code'. */
  startDeviceCodeSignIn(destination: string): Promise<DeviceCodeStatus>;
  deviceCodeStatus(destination: string): DeviceCodeStatus;
}

/** Thrown by control methods for an unknown destination or an action that does not apply. */
export class ForwardControlError extends Error {
  constructor(message: string, readonly statusCode: 400 | 404 | 409 = 400) {
    super(message);
    this.name = 'ForwardControlError';
  }
}
