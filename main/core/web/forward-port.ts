/**
 * What web/ needs from store-and-forward (main/core/forward/). Defined here so the HTTP server does not
 * depend on forward/'s internals; forward/control.ts's `ForwardControl` is expected to satisfy it.
 */
export type DestinationState = 'online' | 'offline' | 'paused' | 'auth' | 'forbidden';

export interface DestinationStatus {
  name: string;
  state: DestinationState;
  /** Epoch ms since the state holds. */
  since: number;
  lastError?: string | null;
  lastErrorAt?: number | null;
  /** Delivery rate over the recent past, when forward/ measures it. */
  instancesPerMinute?: number;
  bytesPerSecond?: number;
  [extra: string]: unknown;
}

/** Which outbox rows an action applies to; every given field must match. */
export interface OutboxSelector {
  destination?: string;
  studyUid?: string;
  sopInstanceUids?: string[];
  outboxIds?: number[];
}

export interface ForwardPort {
  status(): DestinationStatus[] | Promise<DestinationStatus[]>;
  pause(destination: string): unknown;
  resume(destination: string): unknown;
  /** Re-queues failed/conflict rows; returns how many rows changed. */
  retry(selector: OutboxSelector): number | Promise<number>;
  /** Cancels rows still waiting; returns how many rows changed. */
  cancel(selector: OutboxSelector): number | Promise<number>;
  /** Re-sends conflicting rows so they replace what the destination holds; returns how many rows changed. */
  overwrite(selector: OutboxSelector): number | Promise<number>;
  /** Extra events (beyond the archive's) for /api/events. */
  onEvent?(listener: (name: string, payload: unknown) => void): () => void;
}

function isForwardPort(value: unknown): value is ForwardPort {
  if (!value || typeof value !== 'object') return false;
  const v = value as Record<string, unknown>;
  return ['status', 'pause', 'resume', 'retry', 'cancel'].every((k) => typeof v[k] === 'function');
}

/** Finds the forward service among the appliance's services: itself a port, or carrying one as `control`. */
export function findForwardPort(services: readonly unknown[]): ForwardPort | undefined {
  for (const service of services) {
    if (isForwardPort(service)) return service;
    const control = (service as { control?: unknown } | undefined)?.control;
    if (isForwardPort(control)) return control;
  }
  return undefined;
}
