/**
 * WADO-URI (PS3.18 9): `GET /wado?requestType=WADO&studyUID=…&seriesUID=…&objectUID=…`, the URL form that
 * EHRs, RIS and older viewers store. One instance per request: as DICOM (application/dicom, Explicit VR
 * Little Endian unless transferSyntax says otherwise), or one frame rendered as JPEG or PNG. The access
 * check of every other route applies (server.ts).
 */
import { readFile } from 'node:fs/promises';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { TransferSyntax } from '../dicom/transfer-syntax.js';
import { uidProblem } from '../dicom/uid.js';
import type { WebContext } from './context.js';
import { convertibleToExplicitLittleEndian } from './explicit-le.js';
import { HttpError } from './http-errors.js';
import { clientGone, instanceHere } from './read-through.js';

const once = (name: string) => z.string({ error: `${name} must be given once` }).optional();
const uid = (name: string) => z.string({ error: `${name} is required, once` }).superRefine((value, ctx) => {
  const problem = uidProblem(value);
  if (problem) ctx.addIssue({ code: 'custom', message: `${name} ${JSON.stringify(value)} ${problem}` });
});

/** PS3.18 Table 9.2-1 (the parameters this appliance acts on; the others are accepted and ignored). */
export const wadoUriQuery = z.looseObject({
  requestType: z.literal('WADO', { error: 'requestType must be WADO' }),
  studyUID: uid('studyUID'),
  seriesUID: uid('seriesUID'),
  objectUID: uid('objectUID'),
  contentType: once('contentType'),
  transferSyntax: once('transferSyntax'),
  frameNumber: once('frameNumber'),
  rows: once('rows'),
  columns: once('columns'),
  windowCenter: once('windowCenter'),
  windowWidth: once('windowWidth'),
  region: once('region'),
  imageQuality: once('imageQuality'),
  anonymize: once('anonymize'),
});
type WadoUriQuery = z.infer<typeof wadoUriQuery>;

const IMAGE_TYPES = ['image/jpeg', 'image/png'] as const;

export function registerWadoUri(server: FastifyInstance, ctx: WebContext): void {
  server.withTypeProvider<ZodTypeProvider>().get('/wado', { schema: { querystring: wadoUriQuery } }, (request, reply) => wado(ctx, request.query, reply));
}

/** The first content type of the list (PS3.18 9.1.2.2.3) that we produce; image/jpeg when none is given. */
function contentTypeOf(list: string | undefined): 'application/dicom' | (typeof IMAGE_TYPES)[number] {
  if (list === undefined) return 'image/jpeg';
  for (const item of list.split(',').map((s) => s.split(';')[0]!.trim().toLowerCase())) {
    if (item === 'application/dicom' || (IMAGE_TYPES as readonly string[]).includes(item)) return item as never;
    if (item === 'image/*' || item === '*/*') return 'image/jpeg';
  }
  throw new HttpError(406, `contentType=${list}: this WADO-URI serves application/dicom, image/jpeg and image/png`);
}

function positiveInteger(text: string | undefined, name: string, max: number): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1 || value > max) throw new HttpError(400, `${name} must be a whole number from 1 to ${max}, got ${JSON.stringify(text)}`);
  return value;
}

async function wado(ctx: WebContext, query: WadoUriQuery, reply: FastifyReply): Promise<FastifyReply> {
  if (query.anonymize === 'yes') throw new HttpError(400, 'anonymize=yes is not supported: this archive does not de-identify');
  const contentType = contentTypeOf(query.contentType);
  const scope = { study: query.studyUID, series: query.seriesUID, instance: query.objectUID };
  await instanceHere(ctx, scope, clientGone(reply));
  const [row] = ctx.archive.reads.storedInstances(scope);
  if (!row) throw new HttpError(404, 'no such study, series or object');
  const path = ctx.archive.paths.absolute(row.path);

  if (contentType === 'application/dicom') {
    for (const name of ['frameNumber', 'rows', 'columns', 'windowCenter', 'windowWidth', 'region'] as const) {
      if (query[name] !== undefined) throw new HttpError(400, `${name} applies to images only, not to contentType=application/dicom`);
    }
    // PS3.18 9.1.2.2.4 (transferSyntax): absent, Explicit VR Little Endian.
    const wanted = query.transferSyntax ?? TransferSyntax.ExplicitVRLittleEndian;
    if (wanted === row.transferSyntaxUid || wanted === '*') return reply.type('application/dicom').send(await readFile(path));
    if (wanted === TransferSyntax.ExplicitVRLittleEndian && convertibleToExplicitLittleEndian(row.transferSyntaxUid)) {
      return reply.type('application/dicom').send(await ctx.images.explicitLittleEndian(path, row.transferSyntaxUid));
    }
    const producible = [row.transferSyntaxUid, ...(convertibleToExplicitLittleEndian(row.transferSyntaxUid) ? [TransferSyntax.ExplicitVRLittleEndian] : [])];
    throw new HttpError(406, `object ${row.sopInstanceUid} can be served as transferSyntax ${producible.join(' or ')} only`);
  }

  if (query.transferSyntax !== undefined) throw new HttpError(400, 'transferSyntax applies to contentType=application/dicom only');
  const frame = positiveInteger(query.frameNumber, 'frameNumber', 1_000_000) ?? 1;
  const rows = positiveInteger(query.rows, 'rows', 8192);
  const columns = positiveInteger(query.columns, 'columns', 8192);
  const quality = positiveInteger(query.imageQuality, 'imageQuality', 100) ?? 90;
  const center = query.windowCenter === undefined ? undefined : Number(query.windowCenter);
  const width = query.windowWidth === undefined ? undefined : Number(query.windowWidth);
  if ((center === undefined) !== (width === undefined)) throw new HttpError(400, 'windowCenter and windowWidth go together');
  if (center !== undefined && (!Number.isFinite(center) || !Number.isFinite(width) || width! < 1)) {
    throw new HttpError(400, 'windowCenter must be a number and windowWidth a number of at least 1');
  }
  const image = await ctx.images.render(path, {
    frame: frame - 1,
    viewport: rows || columns ? { width: columns ?? 8192, height: rows ?? 8192 } : undefined,
    relativeRegion: parseRegion(query.region),
    window: center === undefined ? undefined : { center, width: width! },
    format: contentType,
    quality,
  });
  return reply.type(contentType).header('cache-control', 'private, max-age=300').send(image);
}

/** region=xmin,ymin,xmax,ymax, fractions of the image from 0.0 to 1.0 (PS3.18 9.1.2.2.6). */
function parseRegion(text: string | undefined): { x0: number; y0: number; x1: number; y1: number } | undefined {
  if (text === undefined) return undefined;
  const values = text.split(',').map((s) => Number(s.trim()));
  const [x0, y0, x1, y1] = values as [number, number, number, number];
  if (values.length !== 4 || values.some((v) => !Number.isFinite(v) || v < 0 || v > 1) || x0 >= x1 || y0 >= y1) {
    throw new HttpError(400, `region=${JSON.stringify(text)} must be xmin,ymin,xmax,ymax from 0.0 to 1.0, each min below its max`);
  }
  return { x0, y0, x1, y1 };
}
