import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { TransferSyntax } from '../dicom/transfer-syntax.js';
import { parseAccept, type MediaType } from '../multipart/media-type.js';
import type { InstanceScope, StoredInstance } from '../store/read-models/index-reads.js';
import type { WebContext } from './context.js';
import { convertibleToExplicitLittleEndian } from './explicit-le.js';
import { RESOURCE_ROUTES } from './dicomweb-params.js';
import { HttpError } from './http-errors.js';
import { sendMultipart, type ResponsePart } from './multipart-response.js';
import { throughArchive } from './read-through.js';
import { sendThroughArchive } from './wado-read-through.js';
import { wantsBulkdata } from './bulk-media.js';
import { sendBulkdata } from './wado-bulk.js';

/** The syntax a part goes out in, and whether that needs conversion. */
export interface Delivery {
  syntax: string;
  convert: boolean;
}

/** Picks, per stored syntax, what an Accept header allows for application/dicom; undefined when nothing fits. */
export function negotiateDicom(accept: MediaType[], stored: string): Delivery | undefined {
  for (const range of accept) {
    let wanted: string | undefined;
    if (range.type === 'multipart/related') {
      const partType = (range.params.type ?? 'application/dicom').toLowerCase();
      if (partType !== 'application/dicom') continue;
      wanted = range.params['transfer-syntax'];
    } else if (range.type === 'application/dicom' || range.type === '*/*' || range.type === 'multipart/*') {
      wanted = range.params['transfer-syntax'];
    } else continue;
    // PS3.18 8.7.3.5.2: no transfer-syntax parameter means Explicit VR Little Endian.
    const target = wanted ?? TransferSyntax.ExplicitVRLittleEndian;
    if (target === '*' || target === stored) return { syntax: stored, convert: false };
    if (target === TransferSyntax.ExplicitVRLittleEndian && convertibleToExplicitLittleEndian(stored)) {
      return { syntax: target, convert: true };
    }
  }
  return undefined;
}

export function registerWadoRetrieve(server: FastifyInstance, ctx: WebContext): void {
  const app = server.withTypeProvider<ZodTypeProvider>();
  for (const [path, params] of RESOURCE_ROUTES) {
    app.get(path, { schema: { params } }, (request, reply) => retrieve(ctx, request.params, request, reply));
  }
}

async function retrieve(ctx: WebContext, scope: InstanceScope, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  const accept = parseAccept(request.headers.accept);
  if (wantsBulkdata(accept)) return sendBulkdata(ctx, scope, accept, request, reply);
  const through = throughArchive(ctx, scope);
  if (through) return sendThroughArchive(ctx, through.readThrough, through.scope, accept, negotiateDicom, request, reply);
  const rows = ctx.archive.reads.storedInstances(scope);
  if (rows.length === 0) throw new HttpError(404, 'no such study, series or instance');
  const plan: Array<{ row: StoredInstance; delivery: Delivery }> = [];
  for (const row of rows) {
    const delivery = negotiateDicom(accept, row.transferSyntaxUid);
    if (!delivery) {
      const producible = [row.transferSyntaxUid, ...(convertibleToExplicitLittleEndian(row.transferSyntaxUid) ? [TransferSyntax.ExplicitVRLittleEndian] : [])];
      throw new HttpError(406, `instance ${row.sopInstanceUid} can be served as transfer-syntax ${producible.join(' or ')} only; ` +
        'the Accept header allows none of them (transfer-syntax=* takes each instance as stored)');
    }
    plan.push({ row, delivery });
  }
  const paths = ctx.archive.paths;
  ctx.logger.debug({ event: 'wado-retrieve', peer: request.ip, ...scope, instances: rows.length }, 'WADO-RS retrieve');
  await sendMultipart(
    reply,
    'application/dicom',
    plan.map(({ row, delivery }, i): ResponsePart => {
      const contentType = `application/dicom; transfer-syntax=${delivery.syntax}`;
      const path = paths.absolute(row.path);
      return delivery.convert
        ? { contentType, bytes: () => ctx.images.explicitLittleEndian(path, row.transferSyntaxUid, { continuing: i > 0 }) }
        : { contentType, file: { path, size: row.sizeBytes } };
    }),
    (error) => ctx.logger.error({ event: 'wado-retrieve-failed', peer: request.ip, ...scope, reason: (error as Error).message }, 'WADO-RS response cut short'),
  );
  return reply;
}
