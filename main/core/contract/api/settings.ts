/**
 * The settings over /api: read with every secret masked, written back with the mask where a secret is
 * kept. The schema of the settings themselves is ../settings.ts.
 */
import { z } from 'zod';
import { httpSchema, settingsSchema } from '../settings.js';

/** What a secret reads as over HTTP; writing it back keeps the stored value. */
export const SECRET_MASK = '********';

/** The settings as GET /api/settings shows them: secrets are the mask, which a password hash's own rule would refuse. */
export const maskedSettingsSchema = settingsSchema.extend({
  http: httpSchema
    .extend({ basicAuth: z.object({ user: z.string().min(1), passwordHash: z.literal(SECRET_MASK) }).optional() })
    .prefault({}),
});
export type MaskedSettings = z.infer<typeof maskedSettingsSchema>;
/** What a client sends to PUT /api/settings: defaults may be left out, and kept secrets are the mask. */
export type SettingsDraft = z.input<typeof maskedSettingsSchema>;

/**
 * PUT /api/settings: any JSON object here; the settings rules then check it field by field (after the
 * mask is resolved) and answer 400 with one `problems` line per bad field.
 */
export const settingsWriteSchema = z.record(z.string(), z.unknown(), { error: 'the settings must be a JSON object' });

export const settingsWriteResultSchema = z.object({
  /** The settings as saved, masked. */
  settings: maskedSettingsSchema,
  /** Paths whose new value is in force now. */
  applied: z.array(z.string()),
  /** Paths whose new value waits for a restart. */
  restartRequired: z.array(z.string()),
  /** Paths written to the file that a command-line flag keeps overriding. */
  overriddenByFlag: z.array(z.string()),
  /** The revision now stored; the ETag of the answer carries it too. */
  revision: z.string(),
});
export type SettingsWriteResult = z.infer<typeof settingsWriteResultSchema>;
