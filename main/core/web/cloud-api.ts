/**
 * The cloud routes of /api: pin a study as "keep local" (POST and DELETE /api/studies/:study/pin) and the
 * prefetch jobs (GET /api/prefetch). Requests and answers are the zod schemas of contract/cloud.ts,
 * validated and serialized by fastify's zod type provider in this routes' own scope.
 */
import type { FastifyInstance } from 'fastify';
import { serializerCompiler, validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import { CLOUD_API_ROUTES, type PrefetchList, type StudyPin } from '../contract/cloud.js';
import type { WebContext } from './context.js';
import { HttpError } from './http-errors.js';

export function registerCloudApi(app: FastifyInstance, ctx: WebContext): void {
  void app.register(async (scope) => {
    scope.setValidatorCompiler(validatorCompiler);
    scope.setSerializerCompiler(serializerCompiler);
    const api = scope.withTypeProvider<ZodTypeProvider>();

    const pin = (studyUid: string, pinned: boolean, peer: string): StudyPin => {
      if (!ctx.archive.cloud.setPinned(studyUid, pinned)) throw new HttpError(404, `no study ${studyUid} in the index`);
      const location = ctx.archive.cloud.studyLocation(studyUid)!.location;
      ctx.logger.info({ event: pinned ? 'study-pinned' : 'study-unpinned', studyUid, location, peer }, pinned ? 'study kept local' : 'study may be evicted again');
      return { studyUid, pinned, location };
    };

    api.post('/api/studies/:study/pin', { schema: CLOUD_API_ROUTES['POST /api/studies/:study/pin'] },
      async (request) => pin(request.params.study, true, request.ip));
    api.delete('/api/studies/:study/pin', { schema: CLOUD_API_ROUTES['DELETE /api/studies/:study/pin'] },
      async (request) => pin(request.params.study, false, request.ip));

    api.get('/api/prefetch', { schema: CLOUD_API_ROUTES['GET /api/prefetch'] }, async (request): Promise<PrefetchList> => {
      const { state, limit, offset } = request.query;
      const jobs = ctx.archive.prefetch.list({ state, limit, offset });
      return {
        counts: ctx.archive.prefetch.counts(),
        jobs: jobs.map((job) => ({
          studyUid: job.studyUid, state: job.state, triggerStudyUid: job.triggerStudyUid, patientName: job.patientName,
          studyDate: job.studyDate, studyDescription: job.studyDescription, modalities: job.modalities, numInstances: job.numInstances,
          numLocalInstances: job.numLocalInstances, instancesFetched: job.instancesFetched, attempts: job.attempts, lastError: job.lastError,
          createdAt: job.createdAt, updatedAt: job.updatedAt,
        })),
      };
    });
  });
}
