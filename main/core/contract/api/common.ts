/**
 * Pieces every /api route uses: the error body, UID path parameters and paging parameters. Request
 * messages name their parameter, because the server answers a bad request with them as they are.
 */
import { z } from 'zod';
import { uidProblem } from '../../dicom/uid.js';

/** What every refused or failed request answers; `problems` lists bad settings fields, one line each. */
export const errorBodySchema = z.object({
  status: z.number().int(),
  error: z.string(),
  problems: z.array(z.string()).optional(),
});
export type ErrorBody = z.infer<typeof errorBodySchema>;

const UID_ATTRIBUTES = { study: 'StudyInstanceUID', series: 'SeriesInstanceUID', instance: 'SOPInstanceUID' } as const;

/** A UID given in the path as `:study`, `:series` or `:instance`. */
export function uidParam(name: keyof typeof UID_ATTRIBUTES) {
  return z.string().superRefine((value, ctx) => {
    const problem = uidProblem(value);
    if (problem) ctx.addIssue({ code: 'custom', message: `${UID_ATTRIBUTES[name]} ${JSON.stringify(value)} in the path ${problem}` });
  });
}

export const studyParamsSchema = z.object({ study: uidParam('study') });

/** An integer query parameter from `min` to `max`, `fallback` when absent. */
export function integerQuery(name: string, min: number, max: number, fallback: number) {
  const message = `${name} must be an integer from ${min} to ${max}`;
  return z.coerce.number({ error: message }).int(message).min(min, message).max(max, message).default(fallback);
}

/** Where a page of a longer list starts. */
export const offsetQuery = integerQuery('offset', 0, Number.MAX_SAFE_INTEGER, 0);

/** How many of something: instances, bytes. */
export const countSchema = z.number().int().min(0);
