/**
 * The wire contract of the cloud routes of /api (web/cloud-api.ts): pinning a study as "keep local", and the
 * prefetch jobs the app shows. Each route as "METHOD /path" with the zod schemas of its request and answers,
 * in the shape of the /api route table. Browser-safe: zod and dicom/ only.
 */
import { z } from 'zod';
import { uidProblem } from '../dicom/uid.js';

const count = z.number().int().min(0);

/** :study in the path: a valid UID, or 400 with the reason. */
export const studyPinParamsSchema = z.object({
  study: z.string().superRefine((value, ctx) => {
    const problem = uidProblem(value);
    if (problem) ctx.addIssue({ code: 'custom', message: `StudyInstanceUID ${JSON.stringify(value)} in the path ${problem}` });
  }),
});

/** Where a study's instances are: all here, only in the archive, or here and in the archive. */
export const STUDY_LOCATIONS = ['local', 'cloud', 'both'] as const;
export type StudyLocation = (typeof STUDY_LOCATIONS)[number];

/** A study's pin ("keep local": never evicted) after POST or DELETE …/pin. */
export const studyPinSchema = z.object({
  studyUid: z.string(),
  pinned: z.boolean(),
  location: z.enum(STUDY_LOCATIONS),
});
export type StudyPin = z.infer<typeof studyPinSchema>;

export const PREFETCH_STATES = ['queued', 'fetching', 'done', 'failed'] as const;
export const prefetchStateSchema = z.enum(PREFETCH_STATES, { error: `state must be one of ${PREFETCH_STATES.join(', ')}` });

const limitMessage = 'limit must be an integer from 1 to 500';
const offsetMessage = 'offset must be an integer from 0';

/** GET /api/prefetch?state=&limit=&offset= */
export const prefetchQuerySchema = z.object({
  state: prefetchStateSchema.optional(),
  limit: z.coerce.number({ error: limitMessage }).int(limitMessage).min(1, limitMessage).max(500, limitMessage).default(100),
  offset: z.coerce.number({ error: offsetMessage }).int(offsetMessage).min(0, offsetMessage).default(0),
});

/** One prior study fetched (or to be fetched) from the archive in the background. */
export const prefetchJobSchema = z.object({
  studyUid: z.string(),
  state: prefetchStateSchema,
  /** The study whose arrival asked for it; '' when a new study in the archive did. */
  triggerStudyUid: z.string(),
  patientName: z.string(),
  studyDate: z.string(),
  studyDescription: z.string(),
  modalities: z.array(z.string()),
  /** Instances of the study (as far as known) and those here now. */
  numInstances: count,
  numLocalInstances: count,
  instancesFetched: count,
  attempts: count,
  lastError: z.string().nullable(),
  createdAt: z.number(),
  updatedAt: z.number(),
});
export type PrefetchJobWire = z.infer<typeof prefetchJobSchema>;

export const prefetchListSchema = z.object({
  counts: z.object({ queued: count, fetching: count, done: count, failed: count }),
  /** Fetching first, then queued, then the most recently finished. */
  jobs: z.array(prefetchJobSchema),
});
export type PrefetchList = z.infer<typeof prefetchListSchema>;

/** POST /api/studies/:study/retrieve: whether a fetch from the archive runs now, and where the study stands. */
export const studyRetrieveSchema = z.object({
  studyUid: z.string(),
  /** true: instances are being fetched in the background (202); false: all of it is here already (200). */
  fetching: z.boolean(),
  /** null while the index does not know the study yet (the archive may still hold it). */
  location: z.enum(STUDY_LOCATIONS).nullable(),
});
export type StudyRetrieve = z.infer<typeof studyRetrieveSchema>;

export const CLOUD_API_ROUTES = {
  /** Keep the study local: eviction never chooses it. 404 for a study the index does not know. */
  'POST /api/studies/:study/pin': { params: studyPinParamsSchema, response: { 200: studyPinSchema } },
  /** The study may be evicted again (least recently used first). */
  'DELETE /api/studies/:study/pin': { params: studyPinParamsSchema, response: { 200: studyPinSchema } },
  /**
   * Make the study local: 202 at once while a background read-through fetch of the whole study runs (its
   * progress shows in the study's location and local counts, GET /api/sync); 200 when it is all here;
   * 409 without an archive destination.
   */
  'POST /api/studies/:study/retrieve': { params: studyPinParamsSchema, response: { 200: studyRetrieveSchema, 202: studyRetrieveSchema } },
  'GET /api/prefetch': { querystring: prefetchQuerySchema, response: { 200: prefetchListSchema } },
} as const;
