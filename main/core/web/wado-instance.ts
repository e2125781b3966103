import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { frameMediaType, isUncompressed, TransferSyntax } from '../dicom/transfer-syntax.js';
import type { WebContext } from './context.js';
import { readDicom, type DcmjsDicomDict } from './dcmjs.js';
import { dicomWebBase, HttpError, uidParams } from './http-errors.js';
import { instancesIn, type InstanceRow } from './instance-rows.js';
import { parseAccept, typeMatches, type MediaType } from './media-type.js';
import { datasetToJson, elementAtPath } from './metadata-json.js';
import { multipartStream } from './multipart-writer.js';
import { extractFrames, parseFrameList } from './pixel-frames.js';
import { CONVERTIBLE_TO_EXPLICIT_LE, swapBinaryWords } from './transcode.js';
import { sendArchiveMetadata } from './archive-metadata.js';
import { clientGone, instanceHere, throughArchive } from './read-through.js';

const INSTANCE = '/dicom-web/studies/:study/series/:series/instances/:instance';

export function registerWadoInstance(app: FastifyInstance, ctx: WebContext): void {
  const metadata = (request: FastifyRequest, reply: FastifyReply) => sendMetadata(ctx, request, reply);
  app.get('/dicom-web/studies/:study/metadata', metadata);
  app.get('/dicom-web/studies/:study/series/:series/metadata', metadata);
  app.get(`${INSTANCE}/metadata`, metadata);
  app.get(`${INSTANCE}/frames/:frames`, (request, reply) => sendFrames(ctx, request, reply));
  app.get(`${INSTANCE}/bulkdata/*`, (request, reply) => sendBulkdata(ctx, request, reply));
}

function instanceUrl(base: string, row: Pick<InstanceRow, 'study_uid' | 'series_uid' | 'sop_instance_uid'>): string {
  return `${base}/studies/${row.study_uid}/series/${row.series_uid}/instances/${row.sop_instance_uid}`;
}

/** Reads one indexed instance into dcmjs, with big endian words already in little endian order. */
async function loadInstance(ctx: WebContext, row: Pick<InstanceRow, 'path' | 'transfer_syntax_uid'>): Promise<DcmjsDicomDict> {
  const bytes = await readFile(ctx.archive.paths.absolute(row.path));
  const dict = readDicom(bytes);
  if (row.transfer_syntax_uid === TransferSyntax.ExplicitVRBigEndian) swapBinaryWords(dict.dict);
  return dict;
}

/** The instance of the path, fetched from the archive first when it is only there. */
async function oneInstance(ctx: WebContext, request: FastifyRequest, reply: FastifyReply): Promise<InstanceRow> {
  const scope = uidParams(request);
  await instanceHere(ctx, scope as Required<typeof scope>, clientGone(reply));
  const row = instancesIn(ctx.archive.db, scope)[0];
  if (!row) throw new HttpError(404, `no instance ${scope.instance} in series ${scope.series} of study ${scope.study}`);
  return row;
}

async function sendMetadata(ctx: WebContext, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  const scope = uidParams(request);
  const through = throughArchive(ctx, scope);
  const rows = instancesIn(ctx.archive.db, scope);
  if (rows.length === 0 && !through) throw new HttpError(404, 'no such study, series or instance');
  const accept = parseAccept(request.headers.accept);
  if (!accept.some((m) => typeMatches(m.type, 'application/dicom+json') || m.type === 'application/json')) {
    throw new HttpError(406, 'metadata is served as application/dicom+json');
  }
  if (through) {
    return sendArchiveMetadata(ctx, through.readThrough, through.scope, request, reply, async (instance, url) => {
      const dict = await loadInstance(ctx, { path: instance.path, transfer_syntax_uid: instance.transferSyntaxUid });
      return datasetToJson(dict.dict, url, dict.meta);
    });
  }
  const etag = `"${createHash('sha256').update('metadata-v1').update(rows.map((r) => `${r.sop_instance_uid}:${r.sha256}`).join('\n')).digest('base64url')}"`;
  reply.header('etag', etag).header('cache-control', 'no-cache');
  const ifNoneMatch = request.headers['if-none-match'];
  if (ifNoneMatch && ifNoneMatch.split(',').some((t) => t.trim() === etag || t.trim() === '*')) return reply.code(304).send();
  const base = dicomWebBase(request);
  async function* generate(): AsyncGenerator<string> {
    yield '[';
    let first = true;
    for (const row of rows) {
      let dict: DcmjsDicomDict;
      try {
        dict = await loadInstance(ctx, row);
      } catch (error) {
        ctx.logger.warn({ event: 'metadata-unreadable', sopInstanceUid: row.sop_instance_uid, reason: (error as Error).message }, 'instance file unreadable');
        continue;
      }
      yield `${first ? '' : ','}${JSON.stringify(datasetToJson(dict.dict, instanceUrl(base, row), dict.meta))}`;
      first = false;
    }
    yield ']';
  }
  return reply.code(200).type('application/dicom+json').send(Readable.from(generate()));
}

/** What a frames request goes out as, or 406. */
function frameDelivery(accept: MediaType[], stored: string): { mediaType: string; syntax: string } {
  const native = isUncompressed(stored) || stored === TransferSyntax.DeflatedExplicitVRLittleEndian
    ? { mediaType: 'application/octet-stream', syntax: TransferSyntax.ExplicitVRLittleEndian }
    : { mediaType: frameMediaType(stored) ?? 'application/octet-stream', syntax: stored };
  for (const range of accept) {
    const ts = range.params['transfer-syntax'];
    if (ts === '*') return native;
    let partType: string;
    if (range.type === 'multipart/related') partType = (range.params.type ?? 'application/octet-stream').toLowerCase();
    else if (range.type === '*/*' || range.type === 'multipart/*') partType = '*/*';
    else continue;
    if (!typeMatches(partType, native.mediaType)) continue;
    if (ts === undefined || ts === native.syntax) return native;
    if (ts === TransferSyntax.ExplicitVRLittleEndian && CONVERTIBLE_TO_EXPLICIT_LE.includes(stored)) return native;
  }
  throw new HttpError(406, `frames are stored as ${stored} and go out as ${native.mediaType}; the Accept header does not allow that`);
}

async function sendFrames(ctx: WebContext, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  const row = await oneInstance(ctx, request, reply);
  const wanted = parseFrameList((request.params as { frames: string }).frames);
  const delivery = frameDelivery(parseAccept(request.headers.accept), row.transfer_syntax_uid);
  const dict = await loadInstance(ctx, row);
  const frames = extractFrames(dict.dict, row.transfer_syntax_uid, wanted);
  const { boundary, stream } = multipartStream(
    frames.map((bytes) => ({ contentType: `${delivery.mediaType}; transfer-syntax=${delivery.syntax}`, body: () => bytes })),
  );
  return reply
    .code(200)
    .header('content-type', `multipart/related; type="${delivery.mediaType}"; boundary=${boundary}`)
    .send(stream);
}

async function sendBulkdata(ctx: WebContext, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  const row = await oneInstance(ctx, request, reply);
  const path = ((request.params as Record<string, string>)['*'] ?? '').split('/').filter(Boolean);
  if (path.length === 0 || path.length % 2 === 0 || path.some((p, i) => (i % 2 === 0 ? !/^[0-9A-Fa-f]{8}$/.test(p) : !/^[0-9]+$/.test(p)))) {
    throw new HttpError(400, 'bulkdata path must be tag[/item/tag…] with 8-digit hex tags');
  }
  const dict = await loadInstance(ctx, row);
  const element = elementAtPath(dict.dict, path);
  if (!element || !element.Value || element.Value.length === 0) throw new HttpError(404, `no bulk data at ${path.join('/')}`);
  const isPixels = path.length === 1 && path[0]!.toUpperCase() === '7FE00010';
  let parts: Array<{ contentType: string; bytes: Buffer }>;
  if (isPixels && !(isUncompressed(row.transfer_syntax_uid) || row.transfer_syntax_uid === TransferSyntax.DeflatedExplicitVRLittleEndian)) {
    const count = Number(dict.dict['00280008']?.Value?.[0] ?? 1) || 1;
    const frames = extractFrames(dict.dict, row.transfer_syntax_uid, Array.from({ length: count }, (_, i) => i + 1));
    const type = frameMediaType(row.transfer_syntax_uid) ?? 'application/octet-stream';
    parts = frames.map((bytes) => ({ contentType: `${type}; transfer-syntax=${row.transfer_syntax_uid}`, bytes }));
  } else {
    const bytes = Buffer.concat(element.Value.map((v) => (v instanceof ArrayBuffer ? Buffer.from(v) : Buffer.from(v as Uint8Array))));
    parts = [{ contentType: `application/octet-stream; transfer-syntax=${TransferSyntax.ExplicitVRLittleEndian}`, bytes }];
  }
  const { boundary, stream } = multipartStream(parts.map((p) => ({ contentType: p.contentType, body: () => p.bytes })));
  const type = parts[0]!.contentType.split(';')[0];
  return reply.code(200).header('content-type', `multipart/related; type="${type}"; boundary=${boundary}`).send(stream);
}
