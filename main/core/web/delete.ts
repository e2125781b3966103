import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { InstanceScope } from '../store/read-models/index-reads.js';
import type { WebContext } from './context.js';
import { deleteQuery, RESOURCE_ROUTES } from './dicomweb-params.js';
import { HttpError } from './http-errors.js';

/** DELETE of a study, series or instance: local only, never forwarded. */
export function registerDelete(server: FastifyInstance, ctx: WebContext): void {
  const app = server.withTypeProvider<ZodTypeProvider>();
  for (const [path, params] of RESOURCE_ROUTES) {
    app.delete(path, { schema: { params, querystring: deleteQuery } }, (request, reply) => remove(ctx, request.params, request.query.force, request, reply));
  }
}

async function remove(ctx: WebContext, scope: InstanceScope, given: string | string[] | undefined, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  const force = ['true', '1', ''].includes(String(given ?? 'no'));
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
