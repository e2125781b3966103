/** Where studies and instances stand on their way to the destinations, and the failures a technician acts on. */
import { z } from 'zod';
import { uidProblem } from '../../dicom/uid.js';
import { STUDY_LOCATIONS } from '../cloud.js';
import { OUTBOX_STATES } from '../outbox-states.js';
import { countSchema, integerQuery, offsetQuery } from './common.js';
import { stateCountsSchema } from './destinations.js';

const outboxStateSchema = z.enum(OUTBOX_STATES);

/**
 * A study's state over all its outbox rows: local-only (never queued), failed (any failed or conflict),
 * pending or partial (some still to send, none or some delivered), synced, synced-with-cancellations
 * (delivered where not cancelled), cancelled.
 */
export const STUDY_SYNC_STATES = ['local-only', 'failed', 'partial', 'pending', 'synced', 'synced-with-cancellations', 'cancelled'] as const;
export const studySyncStateSchema = z.enum(STUDY_SYNC_STATES);
export type StudySyncState = z.infer<typeof studySyncStateSchema>;

export const studySyncSchema = z.object({
  studyUid: z.string(),
  state: studySyncStateSchema,
  /** One entry per destination the study is queued for ('*': received while no destination existed). */
  destinations: z.array(z.object({ name: z.string(), counts: stateCountsSchema, state: studySyncStateSchema })),
  /** The study's local size on disk. */
  sizeBytes: countSchema,
  /** Where its instances are (local, cloud: only in the archive, both); null when the index does not know the study. */
  location: z.enum(STUDY_LOCATIONS).nullable(),
  /** Instances known (here, or as the archive reported them) and those held here. */
  numInstances: countSchema,
  numLocalInstances: countSchema,
  /** Kept local: never evicted. */
  pinned: z.boolean(),
});
export type StudySync = z.infer<typeof studySyncSchema>;

/** The most studies one GET /api/sync answers for. */
export const MAX_SYNC_STUDIES = 1000;

/** GET /api/sync?study=uid,uid&study=uid: the given studies (at most 1000), or the 100 changed last. */
export const syncQuerySchema = z.object({
  study: z
    .union([z.string(), z.array(z.string())])
    .optional()
    .transform((given, ctx) => {
      const uids = [given ?? []].flat().flatMap((s) => s.split(',')).filter(Boolean);
      for (const uid of uids) {
        const problem = uidProblem(uid);
        if (problem) ctx.addIssue({ code: 'custom', message: `StudyInstanceUID ${JSON.stringify(uid)} in the path ${problem}` });
      }
      return uids.slice(0, MAX_SYNC_STUDIES);
    }),
});

export const studySyncListSchema = z.array(studySyncSchema);

// The fields of an instance's upload to one destination; the answers list them in this order.
const id = z.number().int();
const delivery = {
  /** '*' while no destination was configured when the instance arrived. */
  destination: z.string(),
  state: outboxStateSchema,
  attempts: countSchema,
  lastError: z.string().nullable(),
  /** The DICOM Failure Reason (0008,1197) the destination answered, if any. */
  failureReason: z.number().int().nullable(),
  updatedAt: z.number(),
};

/** One instance's upload to one destination; `id` is its outbox entry (for /api/failures/:id). */
export const deliverySchema = z.object({ id, ...delivery });
export type Delivery = z.infer<typeof deliverySchema>;

export const instanceSyncSchema = z.object({
  sopInstanceUid: z.string(),
  seriesUid: z.string(),
  seriesNumber: z.number().int().nullable(),
  instanceNumber: z.number().int().nullable(),
  /** Where the instance is: here only, only in the archive, or both (e.g. fetched from the archive). */
  location: z.enum(STUDY_LOCATIONS),
  /** One entry per destination; empty when the instance was never queued (here only, or fetched from the archive). */
  destinations: z.array(deliverySchema),
});
export type InstanceSync = z.infer<typeof instanceSyncSchema>;

export const studySyncQuerySchema = z.object({
  limit: integerQuery('limit', 1, 5000, 1000),
  offset: offsetQuery,
});

/** GET /api/studies/:study/sync: the summary, the failed or conflicting rows, and one page of instances (those first). */
export const studySyncDetailSchema = studySyncSchema.extend({
  /** Failed or conflicting uploads, newest first (at most 500). */
  problems: z.array(z.object({ id, sopInstanceUid: z.string(), ...delivery })),
  instances: z.object({ total: countSchema, limit: countSchema, offset: countSchema, items: z.array(instanceSyncSchema) }),
});
export type StudySyncDetail = z.infer<typeof studySyncDetailSchema>;

export const failuresQuerySchema = z.object({
  limit: integerQuery('limit', 1, 1000, 100),
  offset: offsetQuery,
  destination: z.string().optional(),
});

/** A failed or conflicting instance, with the study it belongs to (null fields when the study is gone). */
export const failureSchema = z.object({
  id,
  sopInstanceUid: z.string(),
  studyUid: z.string(),
  ...delivery,
  patientName: z.string().nullable(),
  patientId: z.string().nullable(),
  studyDate: z.string().nullable(),
  studyDescription: z.string().nullable(),
});
export type Failure = z.infer<typeof failureSchema>;

export const failuresPageSchema = z.object({ total: countSchema, limit: countSchema, offset: countSchema, items: z.array(failureSchema) });
export type FailuresPage = z.infer<typeof failuresPageSchema>;

export const failureParamsSchema = z.object({
  id: z.coerce
    .number({ error: 'outbox entry id must be a positive integer' })
    .int('outbox entry id must be a positive integer')
    .min(1, 'outbox entry id must be a positive integer')
    .max(Number.MAX_SAFE_INTEGER, 'outbox entry id must be a positive integer'),
});

/** One outbox entry as stored. */
export const outboxEntrySchema = z.object({
  id: z.number().int(),
  sopInstanceUid: z.string(),
  studyUid: z.string(),
  destination: z.string(),
  state: outboxStateSchema,
  /** 0: the first copy; 1: it replaced an earlier local copy; 2: a user chose overwrite (sent with PUT). */
  replacesEarlier: z.number().int().min(0).max(2),
  attempts: countSchema,
  nextAttemptAt: z.number(),
  lastError: z.string().nullable(),
  failureReason: z.number().int().nullable(),
  warningReason: z.number().int().nullable(),
  sizeBytes: countSchema,
  createdAt: z.number(),
  updatedAt: z.number(),
});

export const failureInstanceSchema = z.object({
  sopInstanceUid: z.string(),
  seriesUid: z.string(),
  studyUid: z.string(),
  sopClassUid: z.string(),
  transferSyntaxUid: z.string(),
  sizeBytes: countSchema,
  callingAe: z.string(),
  receivedAt: z.number(),
});

export const failureStudySchema = z.object({
  studyUid: z.string(),
  patientName: z.string(),
  patientId: z.string(),
  patientBirthDate: z.string(),
  patientSex: z.string(),
  studyDate: z.string(),
  studyTime: z.string(),
  accessionNumber: z.string(),
  studyId: z.string(),
  studyDescription: z.string(),
  referringPhysicianName: z.string(),
  specificCharacterSet: z.string(),
  /** Backslash-separated, as indexed. */
  modalitiesInStudy: z.string(),
  numSeries: countSchema,
  numInstances: countSchema,
  sizeBytes: countSchema,
  receivedAt: z.number(),
  updatedAt: z.number(),
  /** Of its instances, those with a local copy. */
  numLocalInstances: countSchema,
  /** As the archive destination reported them (null: not reported). */
  cloudNumSeries: countSchema.nullable(),
  cloudNumInstances: countSchema.nullable(),
  /** The archive destination's modalities: a JSON array, as stored. */
  cloudModalities: z.string(),
  lastAccessAt: z.number(),
  /** 1: kept local, never evicted. */
  pinned: z.number().int().min(0).max(1),
});

/** GET /api/failures/:id: the entry, and its instance and study while they are still held here. */
export const failureDetailSchema = z.object({
  entry: outboxEntrySchema,
  instance: failureInstanceSchema.nullable(),
  study: failureStudySchema.nullable(),
});
export type FailureDetail = z.infer<typeof failureDetailSchema>;

/** POST /api/studies/:study/{retry,cancel,overwrite}?destination=name: one destination, or all. */
export const studyActionQuerySchema = z.object({ destination: z.string().optional() });
