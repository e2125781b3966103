/**
 * What the rest of the appliance (web/ `/api`, the Electron shell) may ask of store-and-forward.
 * The forward service implements it. web/ wires its actions to these methods; what it shows of the outbox it
 * reads through store/'s read models, and it never changes an outbox row itself.
 */
import type { DestinationSettings } from '../contract/settings.js';
import type { DestinationState, DestinationStatus, DeviceCodeStatus, TestConnectionResult } from '../contract/api/destinations.js';
import type { StudyProgress } from '../store/read-models/study-progress.js';

export type { DestinationState, DestinationStatus, DeviceCodeStatus, StudyProgress, TestConnectionResult };

/** Which outbox rows an action applies to. Empty filter: all rows of all destinations. */
export interface OutboxFilter {
  destination?: string;
  studyUid?: string;
  sopInstanceUid?: string;
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
