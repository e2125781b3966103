/** Forward destinations over /api: their live status, manual actions, the connection test and device-code sign-in. */
import { z } from 'zod';
import { OUTBOX_STATES } from '../outbox-states.js';
import { countSchema } from './common.js';

/**
 * online: the last request succeeded; offline: unreachable, probed per backoff interval; paused: a user
 * paused it; auth: the token was rejected twice (401); forbidden: 403 (a role is missing); idle: nothing
 * to send and nothing tried yet.
 */
export const DESTINATION_STATES = ['online', 'offline', 'paused', 'auth', 'forbidden', 'idle'] as const;
export const destinationStateSchema = z.enum(DESTINATION_STATES);
export type DestinationState = z.infer<typeof destinationStateSchema>;

/** Outbox rows by state. */
export const stateCountsSchema = z.record(z.enum(OUTBOX_STATES), countSchema);

export const destinationStatusSchema = z.object({
  name: z.string(),
  baseUrl: z.string(),
  state: destinationStateSchema,
  /** When the state last changed (ms since epoch). */
  since: z.number(),
  /** Why it is offline, auth or forbidden, or the last transient error. Never contains secrets. */
  lastError: z.string().nullable(),
  counts: stateCountsSchema,
  /** Bytes still to send (pending + sending). */
  pendingBytes: countSchema,
  /** Rates over the last minute. */
  bytesPerSecond: z.number(),
  instancesPerSecond: z.number(),
  /** When the next attempt is due while offline (ms since epoch), else null. */
  nextAttemptAt: z.number().nullable(),
});
export type DestinationStatus = z.infer<typeof destinationStatusSchema>;

export const destinationParamsSchema = z.object({ name: z.string() });

/** What a manual action answers: pause and resume name the destination, the others count the rows they changed. */
export const actionResultSchema = z.union([
  z.object({ action: z.enum(['pause', 'resume']), destination: z.string() }),
  z.object({ action: z.enum(['retry', 'cancel', 'overwrite']), changed: countSchema }),
]);
export type ActionResult = z.infer<typeof actionResultSchema>;

/** POST /api/destinations/:name/test: `destination` is the edited, unsaved destination (secrets may be the mask); none tests the saved one. */
export const connectionTestRequestSchema = z
  .object({ destination: z.unknown().optional() }, { error: 'the body must be a JSON object, with the edited destination under "destination" or none' })
  .optional();

export const connectionTestResultSchema = z.object({
  ok: z.boolean(),
  /** Which step answered: getting a token, or the QIDO query for one study. */
  step: z.enum(['token', 'qido']),
  status: z.number().int().optional(),
  message: z.string(),
});
export type TestConnectionResult = z.infer<typeof connectionTestResultSchema>;

export const deviceCodeStatusSchema = z.discriminatedUnion('state', [
  z.object({ state: z.literal('idle') }),
  z.object({ state: z.literal('waiting'), userCode: z.string(), verificationUri: z.string(), message: z.string(), expiresAt: z.number() }),
  z.object({ state: z.literal('signed-in'), account: z.string() }),
  z.object({ state: z.literal('failed'), error: z.string() }),
]);
export type DeviceCodeStatus = z.infer<typeof deviceCodeStatusSchema>;
