/** The tray's colour and tooltip from the outbox summary: a technician sees at a glance whether today's work reached the cloud. */
import type { OutboxState } from '../core/contract/outbox-states.js';
import type { DestinationState } from '../core/appliance.js';

export type TrayColour = 'green' | 'amber' | 'red';

export interface DestinationSummary {
  name: string;
  state: DestinationState;
  counts: Partial<Record<OutboxState, number>>;
}

export interface TrayStatus {
  colour: TrayColour;
  tooltip: string;
}

export interface TraySummaryInput {
  destinations: DestinationSummary[];
  /** Instances received while no destination was configured (outbox destination '*'). */
  unrouted: number;
}

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;

/**
 * red: something needs a person (failed or conflicting instances, or a destination refusing our
 * credentials); amber: work is still on its way (pending, sending, offline, paused, or nowhere to send);
 * green: everything received has been delivered.
 */
export function trayStatus(input: TraySummaryInput): TrayStatus {
  let failed = 0;
  let waiting = 0;
  const problems: string[] = [];
  const delays: string[] = [];
  for (const destination of input.destinations) {
    const c = destination.counts;
    failed += (c.failed ?? 0) + (c.conflict ?? 0);
    waiting += (c.pending ?? 0) + (c.sending ?? 0);
    if (destination.state === 'auth') problems.push(`${destination.name}: sign-in rejected`);
    if (destination.state === 'forbidden') problems.push(`${destination.name}: access denied`);
    if (destination.state === 'offline') delays.push(`${destination.name} offline`);
    if (destination.state === 'paused') delays.push(`${destination.name} paused`);
  }
  if (failed > 0 || problems.length > 0) {
    const parts = [failed > 0 ? `${plural(failed, 'instance')} failed` : '', ...problems].filter(Boolean);
    return { colour: 'red', tooltip: `DICOM Edge: ${parts.join('; ')}` };
  }
  if (input.destinations.length === 0 && input.unrouted > 0) {
    return { colour: 'amber', tooltip: `DICOM Edge: ${plural(input.unrouted, 'instance')} waiting, no destination configured` };
  }
  if (waiting > 0 || delays.length > 0) {
    const parts = [waiting > 0 ? `${plural(waiting, 'instance')} pending` : '', ...delays].filter(Boolean);
    return { colour: 'amber', tooltip: `DICOM Edge: ${parts.join('; ')}` };
  }
  return { colour: 'green', tooltip: 'DICOM Edge: all delivered' };
}
