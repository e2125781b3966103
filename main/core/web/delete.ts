import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { WebContext } from './context.js';
import { HttpError, uidParams } from './http-errors.js';

/** DELETE of a study, series or instance: local only, never forwarded. */
export function registerDelete(app: FastifyInstance, ctx: WebContext): void {
  const handler = (request: FastifyRequest, reply: FastifyReply) => remove(ctx, request, reply);
  app.delete('/dicom-web/studies/:study', handler);
  app.delete('/dicom-web/studies/:study/series/:series', handler);
  app.delete('/dicom-web/studies/:study/series/:series/instances/:instance', handler);
}

async function remove(ctx: WebContext, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  const scope = uidParams(request);
  const force = ['true', '1', ''].includes(String((request.query as Record<string, unknown>).force ?? 'no'));
  const reads = ctx.archive.reads;
  // Rows whose files went missing are deleted too, so this reads the index without the file filter.
  const uids = reads.instanceUidsIn(scope);
  if (uids.length === 0) throw new HttpError(404, 'no such study, series or instance');
  if (!force) {
    const waiting = reads.uploadsWaiting(scope);
    if (waiting > 0) {
      throw new HttpError(409, `${waiting} upload(s) of these instances are still waiting; add ?force=true to delete them anyway`);
    }
  }
  let removed = 0;
  for (const uid of uids) if (await ctx.archive.removeInstance(uid)) removed++;
  ctx.logger.info({ event: 'delete', peer: request.ip, ...scope, removed, force }, 'instances deleted');
  return reply.code(204).send();
}
