/**
 * The live events of GET /api/events (Server-Sent Events: `event: <name>`, `data: <JSON>`). The archive
 * emits all but `hello` (forward/ reports through it too); the stream says hello when it opens.
 */
import { z } from 'zod';
import { destinationStateSchema } from './api/destinations.js';
import { OUTBOX_STATES } from './outbox-states.js';

export const liveEventSchemas = {
  hello: z.object({ time: z.number() }),
  'instance-stored': z.object({
    sopInstanceUid: z.string(),
    seriesUid: z.string(),
    studyUid: z.string(),
    callingAe: z.string(),
    outcome: z.enum(['stored', 'replaced']),
    sizeBytes: z.number(),
    /** 'cloud': fetched from the archive destination (read-through, prefetch); 'local': acquired here. */
    origin: z.enum(['local', 'cloud']),
  }),
  'instance-deleted': z.object({ sopInstanceUid: z.string(), seriesUid: z.string(), studyUid: z.string() }),
  /** The local copy was dropped to free space; the archive holds the instance and its rows stay (cloud-only). */
  'instance-evicted': z.object({ sopInstanceUid: z.string(), seriesUid: z.string(), studyUid: z.string() }),
  /** numSeries and numInstances are -1 for a study an instance left (it arrived again under another study): read it again. */
  'study-updated': z.object({ studyUid: z.string(), numInstances: z.number(), numSeries: z.number() }),
  'outbox-changed': z.object({
    studyUid: z.string(),
    destination: z.string(),
    sopInstanceUids: z.array(z.string()),
    state: z.enum(OUTBOX_STATES),
    reason: z.string().optional(),
  }),
  /** A forward destination changed state. */
  'destination-status': z.object({
    destination: z.string(),
    state: destinationStateSchema,
    since: z.number(),
    lastError: z.string().nullable(),
  }),
};

export type LiveEventName = keyof typeof liveEventSchemas;
export type LiveEventData<K extends LiveEventName> = z.infer<(typeof liveEventSchemas)[K]>;
export type LiveEvent = { [K in LiveEventName]: { type: K; data: LiveEventData<K> } }[LiveEventName];

/** What the archive's event stream carries: every live event but the stream's own hello. */
export type ArchiveEventMap = { [K in Exclude<LiveEventName, 'hello'>]: LiveEventData<K> };

export function isLiveEventName(name: string): name is LiveEventName {
  return Object.hasOwn(liveEventSchemas, name);
}

/** The event as the contract types it; throws a ZodError naming the field when the data does not fit. */
export function parseLiveEvent(type: LiveEventName, data: unknown): LiveEvent {
  return { type, data: liveEventSchemas[type].parse(data) } as LiveEvent;
}
