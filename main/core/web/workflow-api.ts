import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { API_ROUTES } from '../contract/api/routes.js';
import { WorklistError } from '../store/worklist.js';
import type { WebContext } from './context.js';
import { HttpError } from './http-errors.js';

/** The worklist's own errors as HTTP: an unknown item is 404, an edit or cancel in the wrong state 409. */
function answering<T>(work: () => T): T {
  try {
    return work();
  } catch (error) {
    if (error instanceof WorklistError) throw new HttpError(error.kind === 'not-found' ? 404 : 409, error.message);
    throw error;
  }
}

/**
 * The clinic workflow: `/api/worklist`, the local worklist that Modality Worklist C-FIND offers (list, schedule,
 * edit, cancel), and `/api/commitments`, the Storage Commitment transactions still open per modality.
 */
export function registerWorkflowApi(server: FastifyInstance, ctx: WebContext): void {
  const app = server.withTypeProvider<ZodTypeProvider>();
  const worklist = ctx.archive.worklist;

  app.get('/api/commitments', { schema: API_ROUTES['GET /api/commitments'] }, async () => ({ modalities: ctx.archive.commitments.openByCallingAe() }));

  app.get('/api/worklist', { schema: API_ROUTES['GET /api/worklist'] }, async (request) => ({ items: worklist.list(request.query.state) }));

  app.post('/api/worklist', { schema: API_ROUTES['POST /api/worklist'] }, async (request, reply) => {
    const item = answering(() => worklist.schedule(request.body, Date.now()));
    ctx.logger.info({ event: 'worklist-item-scheduled', id: item.id, studyUid: item.studyInstanceUid, accessionNumber: item.accessionNumber,
      station: item.scheduledStationAeTitle, requestedBy: request.ip }, 'worklist item scheduled');
    return reply.code(201).send(item);
  });

  app.put('/api/worklist/:id', { schema: API_ROUTES['PUT /api/worklist/:id'] }, async (request) => {
    const { studyInstanceUid, ...fields } = request.body;
    const item = answering(() => {
      const current = worklist.get(request.params.id);
      if (current && studyInstanceUid !== undefined && studyInstanceUid !== current.studyInstanceUid) {
        throw new HttpError(400, `studyInstanceUid cannot be changed (the item's is ${current.studyInstanceUid})`);
      }
      return worklist.edit(request.params.id, fields, Date.now());
    });
    ctx.logger.info({ event: 'worklist-item-edited', id: item.id, studyUid: item.studyInstanceUid, requestedBy: request.ip }, 'worklist item edited');
    return item;
  });

  app.delete('/api/worklist/:id', { schema: API_ROUTES['DELETE /api/worklist/:id'] }, async (request) => {
    const item = answering(() => worklist.transition(request.params.id, ['SCHEDULED'], 'CANCELED', Date.now()));
    ctx.logger.info({ event: 'worklist-item-cancelled', id: item.id, studyUid: item.studyInstanceUid, requestedBy: request.ip }, 'worklist item cancelled');
    return item;
  });
}
