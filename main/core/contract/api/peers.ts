/** POST /api/peers/echo: C-ECHO to a configured peer by AE title, or to an unsaved one with host and port. */
import { z } from 'zod';

/**
 * `{aeTitle}` names a configured peer; with host or port the body is a whole peer, checked by the
 * settings' peer rules (so the answer names the bad field as a settings write would).
 */
export const echoRequestSchema = z.looseObject(
  { aeTitle: z.string({ error: 'aeTitle (a string) is required' }) },
  { error: 'the body must be a JSON object: {"aeTitle"} of a configured peer, or {"aeTitle","host","port"}' },
);

/** Answered with 200 whether or not the peer answered. */
export const echoOutcomeSchema = z.object({
  ok: z.boolean(),
  /** The C-ECHO-RSP status (0 = success); null when no response came back. */
  status: z.number().int().nullable(),
  /** From the first byte sent to the answer (or the failure). */
  ms: z.number(),
  error: z.string().nullable(),
});
export type EchoOutcome = z.infer<typeof echoOutcomeSchema>;
