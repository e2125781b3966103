/** The appliance's own state over /api: liveness, readiness, facts and the outbox summary. */
import { z } from 'zod';
import { OUTBOX_STATES } from '../outbox-states.js';
import { countSchema } from './common.js';
import { destinationStateSchema } from './destinations.js';

export const healthSchema = z.object({ status: z.literal('ok'), uptimeSeconds: countSchema });

/** 200 once every service has started, 503 before (same body). */
export const readinessSchema = z.object({ ready: z.boolean() });

/** Whether store-and-forward runs in this appliance. */
export const forwardingSchema = z.enum(['running', 'not available']);

export const applianceInfoSchema = z.object({
  version: z.string(),
  aeTitle: z.string(),
  /** dimseTls is null while DICOM TLS is off. */
  ports: z.object({ dimse: z.number().int(), dimseTls: z.number().int().nullable(), http: z.number().int() }),
  httpHost: z.string(),
  /**
   * The certificate the server speaks HTTPS with (whenever httpHost is not loopback), for a user to compare
   * with what the browser shows; null while it speaks plain HTTP on loopback.
   */
  https: z.object({
    source: z.enum(['configured', 'self-signed']),
    /** SHA-256, colon-separated hex. */
    fingerprint256: z.string(),
    certFile: z.string(),
    notAfter: z.string(),
  }).nullable(),
  dataDir: z.string(),
  storage: z.object({
    usedBytes: countSchema,
    /** Free space of the data dir's filesystem; null when it cannot be read. */
    freeBytes: countSchema.nullable(),
    maxArchiveBytes: countSchema,
    minFreeBytes: countSchema,
  }),
  counts: z.object({ studies: countSchema, series: countSchema, instances: countSchema }),
  forwarding: forwardingSchema,
  /**
   * The archive destination (the one marked archive: true) as forwarding last found it; null without one.
   * 'unknown' while no worker runs for it (forwarding off, or the destination disabled).
   */
  archive: z.object({
    name: z.string(),
    state: z.union([destinationStateSchema, z.literal('unknown')]),
    since: z.number().nullable(),
    lastError: z.string().nullable(),
  }).nullable(),
});
export type ApplianceInfo = z.infer<typeof applianceInfoSchema>;

const rowsAndBytesSchema = z.object({ count: countSchema, bytes: countSchema });
const rowsAndBytesByStateSchema = z.record(z.enum(OUTBOX_STATES), rowsAndBytesSchema);

export const outboxDestinationSchema = z.object({
  /** '*' holds what arrived while no destination was configured (`unrouted`). */
  name: z.string(),
  unrouted: z.boolean(),
  counts: rowsAndBytesByStateSchema,
  /** Bytes of pending and sending rows. */
  bytesPending: countSchema,
  rate: z.object({ instancesPerMinute: z.number(), bytesPerSecond: z.number() }),
  /** 'unknown' (since null) for a destination without a running worker. */
  connection: z.object({ state: z.union([destinationStateSchema, z.literal('unknown')]), since: z.number().nullable() }),
  lastError: z.string().nullable(),
  lastErrorAt: z.number().nullable(),
  nextAttemptAt: z.number().nullable(),
});
export type OutboxDestination = z.infer<typeof outboxDestinationSchema>;

export const outboxSummarySchema = z.object({
  totals: rowsAndBytesByStateSchema,
  bytesPending: countSchema,
  destinations: z.array(outboxDestinationSchema),
  forwarding: forwardingSchema,
});
export type OutboxSummary = z.infer<typeof outboxSummarySchema>;
