import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { WebContext } from './context.js';
import { HttpError, uidParams } from './http-errors.js';
import { instancesIn } from './instance-rows.js';

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
  const db = ctx.archive.db;
  // Rows whose files went missing are deleted too, so this reads the index without the file filter.
  const where = scope.instance
    ? { sql: 'sop_instance_uid = ? AND series_uid = ? AND study_uid = ?', args: [scope.instance, scope.series, scope.study] }
    : scope.series
      ? { sql: 'series_uid = ? AND study_uid = ?', args: [scope.series, scope.study] }
      : { sql: 'study_uid = ?', args: [scope.study] };
  const uids = (db.prepare(`SELECT sop_instance_uid AS uid FROM instances WHERE ${where.sql}`).all(...where.args) as Array<{ uid: string }>).map((r) => r.uid);
  if (uids.length === 0 && instancesIn(db, scope).length === 0) throw new HttpError(404, 'no such study, series or instance');
  if (!force) {
    const waiting = db
      .prepare(`SELECT COUNT(*) AS n FROM outbox WHERE state NOT IN ('delivered','cancelled') AND sop_instance_uid IN
                (SELECT sop_instance_uid FROM instances WHERE ${where.sql})`)
      .get(...where.args) as { n: number };
    if (waiting.n > 0) {
      throw new HttpError(409, `${waiting.n} upload(s) of these instances are still waiting; add ?force=true to delete them anyway`);
    }
  }
  let removed = 0;
  for (const uid of uids) if (await ctx.archive.removeInstance(uid)) removed++;
  ctx.logger.info({ event: 'delete', peer: request.ip, ...scope, removed, force }, 'instances deleted');
  return reply.code(204).send();
}
