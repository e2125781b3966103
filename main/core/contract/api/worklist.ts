/**
 * The local worklist as /api shows and edits it (GET, POST /api/worklist, PUT and DELETE /api/worklist/:id):
 * one Requested Procedure with one Scheduled Procedure Step per item, the attributes a modality gets from
 * Modality Worklist C-FIND (PS3.4 Annex K). Values are checked against their VR here, so a bad one is
 * refused with the field named before anything is written.
 */
import { z } from 'zod';
import { uidProblem } from '../../dicom/uid.js';
import { aeTitle } from '../settings.js';

export const WORKLIST_STATES = ['SCHEDULED', 'IN PROGRESS', 'COMPLETED', 'DISCONTINUED', 'CANCELED'] as const;
export type WorklistState = (typeof WORKLIST_STATES)[number];

const NO_CONTROL = /^[^\\\x00-\x1f]*$/;
const TEXT_RULE = 'must not contain a backslash or control characters';
/** LO (64), SH (16): no backslash or control characters. Messages name the field: the server answers with them as they are. */
const text = (field: string, max: number) =>
  z.string({ error: `${field} must be text` }).max(max, `${field} must be at most ${max} characters`).regex(NO_CONTROL, `${field} ${TEXT_RULE}`);
/** PN: components separated by ^, at most 64 characters per component group. */
const personName = (field: string) =>
  z.string({ error: `${field} must be text` }).max(64 * 3 + 2, `${field} must be at most 64 characters per component group`).regex(NO_CONTROL, `${field} ${TEXT_RULE}`);
const date = (field: string) => z.string({ error: `${field} is required` })
  .regex(/^(\d{4})(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])$/, `${field} must be a date YYYYMMDD`);
const optionalDate = (field: string) => z.string({ error: `${field} must be text` })
  .regex(/^((\d{4})(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01]))?$/, `${field} must be a date YYYYMMDD or empty`).default('');
const optionalTime = (field: string) => z.string({ error: `${field} must be text` })
  .regex(/^(([01]\d|2[0-3])([0-5]\d([0-5]\d)?)?)?$/, `${field} must be a time HH, HHMM or HHMMSS, or empty`).default('');
const uid = (field: string) => z.string({ error: `${field} must be text` }).superRefine((value, ctx) => {
  const problem = uidProblem(value);
  if (problem) ctx.addIssue({ code: 'custom', message: `${field} must be a UID: it ${problem}` });
});
const optionalAeTitle = (field: string) => z.string({ error: `${field} must be text` })
  .refine((value) => value === '' || aeTitle.safeParse(value).success, `${field} must be an AE title (1 to 16 printable ASCII characters without backslash) or empty`)
  .default('');

export const worklistItemInputSchema = z.strictObject({
  patientName: personName('patientName').min(1, 'patientName is required'),
  patientId: text('patientId', 64).min(1, 'patientId is required'),
  patientBirthDate: optionalDate('patientBirthDate'),
  patientSex: z.enum(['', 'M', 'F', 'O'], { error: "patientSex must be 'M', 'F', 'O' or empty" }).default(''),
  accessionNumber: text('accessionNumber', 16).default(''),
  referringPhysicianName: personName('referringPhysicianName').default(''),
  requestedProcedureId: text('requestedProcedureId', 16).default(''),
  requestedProcedureDescription: text('requestedProcedureDescription', 64).default(''),
  /** Empty: any station may take it. */
  scheduledStationAeTitle: optionalAeTitle('scheduledStationAeTitle'),
  scheduledStartDate: date('scheduledStartDate'),
  scheduledStartTime: optionalTime('scheduledStartTime'),
  modality: z.string({ error: 'modality is required' }).regex(/^[A-Z0-9_ ]{1,16}$/, 'modality must be a modality code such as CT, MR or US'),
  scheduledProcedureStepId: text('scheduledProcedureStepId', 16).default(''),
  scheduledProcedureStepDescription: text('scheduledProcedureStepDescription', 64).default(''),
  scheduledPerformingPhysicianName: personName('scheduledPerformingPhysicianName').default(''),
  /** Generated when the item is scheduled without one. */
  studyInstanceUid: uid('studyInstanceUid').optional(),
}, { error: (issue) => (issue.code === 'unrecognized_keys' ? `unknown field(s): ${issue.keys.join(', ')}` : 'the body must be a JSON object') });
export type WorklistItemInput = z.input<typeof worklistItemInputSchema>;
export type WorklistItemFields = Omit<z.output<typeof worklistItemInputSchema>, 'studyInstanceUid'>;

export const worklistItemSchema = z.object({
  id: z.number().int(),
  state: z.enum(WORKLIST_STATES),
  studyInstanceUid: z.string(),
  patientName: z.string(),
  patientId: z.string(),
  patientBirthDate: z.string(),
  patientSex: z.string(),
  accessionNumber: z.string(),
  referringPhysicianName: z.string(),
  requestedProcedureId: z.string(),
  requestedProcedureDescription: z.string(),
  scheduledStationAeTitle: z.string(),
  scheduledStartDate: z.string(),
  scheduledStartTime: z.string(),
  modality: z.string(),
  scheduledProcedureStepId: z.string(),
  scheduledProcedureStepDescription: z.string(),
  scheduledPerformingPhysicianName: z.string(),
  /** The study that arrived for it ('' while none has). */
  arrivedStudyUid: z.string(),
  /** local: scheduled here; cloud: a workitem of the archive's UPS-RS worklist, refreshed from there and read-only here. */
  source: z.enum(['local', 'cloud']),
  /** The cloud workitem's UID ('' for a local item). */
  workitemUid: z.string(),
  createdAt: z.number(),
  updatedAt: z.number(),
});
export type WorklistItem = z.infer<typeof worklistItemSchema>;

export const worklistQuerySchema = z.object({
  state: z.enum(WORKLIST_STATES, { error: `state must be one of ${WORKLIST_STATES.join(', ')}` }).optional(),
});
export const worklistListSchema = z.object({ items: z.array(worklistItemSchema) });
export const worklistParamsSchema = z.object({
  id: z.coerce.number({ error: 'id must be a worklist item number' }).int('id must be a worklist item number').min(1, 'id must be a worklist item number'),
});
