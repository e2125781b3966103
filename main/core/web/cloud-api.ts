/**
 * The cloud routes of /api: pin a study as "keep local" (POST and DELETE /api/studies/:study/pin) and the
 * prefetch jobs (GET /api/prefetch). Requests and answers are the zod schemas of contract/cloud.ts,
 * validated and serialized by fastify's zod type provider in this routes' own scope.
 */
import type { FastifyInstance } from 'fastify';
import { serializerCompiler, validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import { CLOUD_API_ROUTES, type PrefetchList, type StudyPin, type StudyRetrieve } from '../contract/cloud.js';
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

    // Make a study local: the whole study through read-through (one fetch per study serves everyone, so a
    // second click or a viewer reading it meanwhile follows the same fetch). Answers before the fetch ends;
    // its progress is the study's location and local count (GET /api/sync).
    api.post('/api/studies/:study/retrieve', { schema: CLOUD_API_ROUTES['POST /api/studies/:study/retrieve'] }, async (request, reply) => {
      const studyUid = request.params.study;
      const readThrough = ctx.cloud?.()?.readThrough;
      if (!readThrough || !ctx.cloud?.()?.reader()) throw new HttpError(409, 'no archive destination is configured to retrieve from');
      const fetching = readThrough.needsArchive({ studyUid });
      const answer: StudyRetrieve = { studyUid, fetching, location: ctx.archive.cloud.studyLocation(studyUid)?.location ?? null };
      if (!fetching) return reply.code(200).send(answer);
      ctx.logger.info({ event: 'study-retrieve-started', studyUid, peer: request.ip }, 'retrieving study from the archive');
      void (async () => {
        let instances = 0;
        try {
          for await (const _instance of readThrough.retrieve({ studyUid })) instances++;
          ctx.logger.info({ event: 'study-retrieved', studyUid, instances, location: ctx.archive.cloud.studyLocation(studyUid)?.location }, 'study retrieved from the archive');
        } catch (error) {
          ctx.logger.warn({ event: 'study-retrieve-failed', studyUid, instances, err: error }, 'retrieving study from the archive failed');
        }
      })();
      return reply.code(202).send(answer);
    });

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
