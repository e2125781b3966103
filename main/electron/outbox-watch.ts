/**
 * What the shell needs from the appliance, without Electron: the tray summary (outbox counts per
 * destination, read from the index, plus destination states from the forward events) and permanent
 * failures to notify about, batched per study so a failing study of 500 instances is one notification.
 */
import type { Appliance, ArchiveEvents, DestinationState } from '../core/appliance.js';
import type { DestinationSummary, TraySummaryInput } from './tray-state.js';

export function readTraySummary(
  appliance: Pick<Appliance, 'archive'>, destinationNames: string[], states: ReadonlyMap<string, DestinationState>,
): TraySummaryInput {
  const byName = new Map<string, DestinationSummary>(
    destinationNames.map((name) => [name, { name, state: states.get(name) ?? 'idle', counts: {} }]),
  );
  let unrouted = 0;
  for (const row of appliance.archive.reads.outboxCounts()) {
    if (row.destination === '*') {
      if (row.state === 'pending') unrouted += row.count;
      continue;
    }
    const summary = byName.get(row.destination);
    if (summary) summary.counts[row.state] = row.count;
  }
  return { destinations: [...byName.values()], unrouted };
}

export interface FailureNotice {
  studyUid: string;
  destination: string;
  count: number;
  reason: string;
}

/** Collects 'failed' outbox changes and reports them once per study and destination after a quiet period. */
export function watchPermanentFailures(events: ArchiveEvents, notify: (notice: FailureNotice) => void, quietMs = 2000): () => void {
  const pending = new Map<string, FailureNotice>();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const flush = (): void => {
    timer = undefined;
    for (const notice of pending.values()) notify(notice);
    pending.clear();
  };
  const off = events.on('outbox-changed', (change) => {
    if (change.state !== 'failed') return;
    const key = `${change.destination}\u0000${change.studyUid}`;
    const notice = pending.get(key) ?? { studyUid: change.studyUid, destination: change.destination, count: 0, reason: change.reason ?? 'unknown reason' };
    notice.count += change.sopInstanceUids.length;
    pending.set(key, notice);
    timer ??= setTimeout(flush, quietMs);
  });
  return () => {
    off();
    if (timer) clearTimeout(timer);
  };
}

/** Destination states as the forward service reports them through events. */
export function trackDestinationStates(appliance: Pick<Appliance, 'archive'>, onChange: () => void): { states: Map<string, DestinationState>; stop: () => void } {
  const states = new Map<string, DestinationState>();
  const stop = appliance.archive.events.on('destination-status', (status) => {
    states.set(status.destination, status.state);
    onChange();
  });
  return { states, stop };
}
