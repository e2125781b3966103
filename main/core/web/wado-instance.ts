import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { readDicom, type DcmjsDicomDict } from '../dicom/dcmjs.js';
import { tagsOf } from '../dicom/dictionary.js';
import { withInstanceUrl } from '../dicom/instance-json.js';
import type { DicomJson } from '../dicom/json-model.js';
import { datasetToJson, elementAtPath } from '../dicom/metadata-json.js';
import { extractFrames, parseFrameList } from '../dicom/pixel-frames.js';
import { CONVERTIBLE_TO_EXPLICIT_LE, swapBinaryWords } from '../dicom/transcode.js';
import { frameMediaType, isUncompressed, TransferSyntax } from '../dicom/transfer-syntax.js';
import { parseAccept, typeMatches, type MediaType } from '../multipart/media-type.js';
import { multipartBody } from '../multipart/writer.js';
import type { InstanceScope, StoredInstance } from '../store/read-models/index-reads.js';
import type { WebContext } from './context.js';
import { bulkdataParams, framesParams, instanceParams, seriesParams, studyParams } from './dicomweb-params.js';
import { DECODABLE } from './explicit-le.js';
import { dicomWebBase, HttpError, withFrameStatus } from './http-errors.js';
import { sendArchiveMetadata } from './archive-metadata.js';
import { dicomEncoding, xmlMultipart } from './dicom-media.js';
import { clientGone, instanceHere, throughArchive } from './read-through.js';
import { wantsBulkdata } from './bulk-media.js';

const INSTANCE = '/dicom-web/studies/:study/series/:series/instances/:instance';
const TAG = tagsOf('PixelData', 'NumberOfFrames');

export function registerWadoInstance(server: FastifyInstance, ctx: WebContext): void {
  const app = server.withTypeProvider<ZodTypeProvider>();
  for (const [path, params] of [
    ['/dicom-web/studies/:study/metadata', studyParams],
    ['/dicom-web/studies/:study/series/:series/metadata', seriesParams],
    [`${INSTANCE}/metadata`, instanceParams],
  ] as const) {
    app.get(path, { schema: { params } }, (request, reply) => sendMetadata(ctx, request.params, request, reply));
  }
  app.get(`${INSTANCE}/frames/:frames`, { schema: { params: framesParams } }, (request, reply) =>
    sendFrames(ctx, request.params, request.params.frames, request, reply));
  app.get(`${INSTANCE}/bulkdata/*`, { schema: { params: bulkdataParams } }, (request, reply) =>
    sendBulkdata(ctx, request.params, request.params['*'], reply, request));
}

function instanceUrl(base: string, row: Pick<StoredInstance, 'studyUid' | 'seriesUid' | 'sopInstanceUid'>): string {
  return `${base}/studies/${row.studyUid}/series/${row.seriesUid}/instances/${row.sopInstanceUid}`;
}

/** Reads one indexed instance into dcmjs, with big endian words already in little endian order. */
async function loadInstance(ctx: WebContext, row: Pick<StoredInstance, 'path' | 'transferSyntaxUid'>): Promise<DcmjsDicomDict> {
  const bytes = await readFile(ctx.archive.paths.absolute(row.path));
  const dict = readDicom(bytes);
  if (row.transferSyntaxUid === TransferSyntax.ExplicitVRBigEndian) swapBinaryWords(dict.dict);
  return dict;
}

/** The instance of the path, fetched from the archive first when it is only there. */
async function oneInstance(ctx: WebContext, scope: InstanceScope, reply: FastifyReply): Promise<StoredInstance> {
  await instanceHere(ctx, scope as Required<typeof scope>, clientGone(reply));
  const row = ctx.archive.reads.storedInstances(scope)[0];
  if (!row) throw new HttpError(404, `no instance ${scope.instance} in series ${scope.series} of study ${scope.study}`);
  return row;
}

async function sendMetadata(ctx: WebContext, scope: InstanceScope, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  const through = throughArchive(ctx, scope);
  const rows = ctx.archive.reads.storedInstances(scope);
  if (rows.length === 0 && !through) throw new HttpError(404, 'no such study, series or instance');
  const encoding = dicomEncoding(request.headers.accept, 'metadata');
  if (through) {
    return sendArchiveMetadata(ctx, through.readThrough, through.scope, request, reply, encoding, async (instance, url) => {
      return JSON.parse(await instanceJson(ctx, instance, url)) as Record<string, unknown>;
    });
  }
  const etag = `"${createHash('sha256').update(`metadata-v2-${encoding}`).update(rows.map((r) => `${r.sopInstanceUid}:${r.sha256}`).join('\n')).digest('base64url')}"`;
  reply.header('etag', etag).header('cache-control', 'no-cache');
  const ifNoneMatch = request.headers['if-none-match'];
  if (ifNoneMatch && ifNoneMatch.split(',').some((t) => t.trim() === etag || t.trim() === '*')) return reply.code(304).send();
  const base = dicomWebBase(request);
  async function* described(): AsyncGenerator<string> {
    for (const row of rows) {
      try {
        yield await instanceJson(ctx, row, instanceUrl(base, row));
      } catch (error) {
        ctx.logger.warn({ event: 'metadata-unreadable', sopInstanceUid: row.sopInstanceUid, reason: (error as Error).message }, 'instance file unreadable');
      }
    }
  }
  if (encoding === 'xml') {
    const body = xmlMultipart((async function* () {
      for await (const json of described()) yield JSON.parse(json) as DicomJson;
    })());
    return reply.code(200).header('content-type', body.contentType).send(Readable.from(body.stream, { objectMode: false }));
  }
  async function* generate(): AsyncGenerator<string> {
    yield '[';
    let first = true;
    for await (const json of described()) {
      yield `${first ? '' : ','}${json}`;
      first = false;
    }
    yield ']';
  }
  return reply.code(200).type('application/dicom+json').send(Readable.from(generate()));
}

/**
 * One instance's DICOM JSON text: as kept in the index at ingest, without opening its file. An instance stored
 * before that (or whose description could not be made then) is described from its file, read up to Pixel
 * Data, and the description kept; if even that fails, the whole file is read as it always was.
 */
export async function instanceJson(
  ctx: WebContext, row: Pick<StoredInstance, 'sopInstanceUid' | 'sha256' | 'path' | 'sizeBytes' | 'transferSyntaxUid'>, url: string,
): Promise<string> {
  const kept = ctx.archive.reads.instanceMetadata(row.sopInstanceUid, row.sha256);
  if (kept !== undefined) return withInstanceUrl(kept, url);
  try {
    return withInstanceUrl(await ctx.archive.describeStored(row), url);
  } catch (error) {
    ctx.logger.debug({ event: 'metadata-from-whole-file', sopInstanceUid: row.sopInstanceUid, reason: (error as Error).message },
      'instance described from its whole file');
    const dict = await loadInstance(ctx, row);
    return JSON.stringify(datasetToJson(dict.dict, url, dict.meta));
  }
}

interface FrameDelivery {
  mediaType: string;
  syntax: string;
  /** Compressed frames decoded to native (Explicit VR Little Endian) ones. */
  decode: boolean;
}

/** What a frames request goes out as, or 406. */
function frameDelivery(accept: MediaType[], stored: string): FrameDelivery {
  const uncompressed = { mediaType: 'application/octet-stream', syntax: TransferSyntax.ExplicitVRLittleEndian };
  const storedNative = isUncompressed(stored) || stored === TransferSyntax.DeflatedExplicitVRLittleEndian;
  const native = storedNative ? { ...uncompressed, decode: false } : { mediaType: frameMediaType(stored) ?? 'application/octet-stream', syntax: stored, decode: false };
  const decoded = !storedNative && DECODABLE.has(stored) ? { ...uncompressed, decode: true } : undefined;
  for (const range of accept) {
    const ts = range.params['transfer-syntax'];
    if (ts === '*') return native;
    let partType: string;
    if (range.type === 'multipart/related') partType = (range.params.type ?? 'application/octet-stream').toLowerCase();
    else if (range.type === '*/*' || range.type === 'multipart/*') partType = '*/*';
    else continue;
    if (typeMatches(partType, native.mediaType)) {
      if (ts === undefined && !decoded) return native;
      if (ts === native.syntax) return native;
      if (ts === TransferSyntax.ExplicitVRLittleEndian && CONVERTIBLE_TO_EXPLICIT_LE.includes(stored)) return native;
    }
    // PS3.18 8.7.3.5.2: application/octet-stream with no transfer-syntax means Explicit VR Little Endian.
    if (decoded && typeMatches(partType, decoded.mediaType) && (ts === undefined || ts === decoded.syntax)) return decoded;
  }
  const producible = [native, ...(decoded ? [decoded] : [])].map((d) => `${d.mediaType} (transfer-syntax=${d.syntax})`);
  throw new HttpError(406, `frames of this instance can be served as ${producible.join(' or ')} only; the Accept header allows none of them`);
}

async function sendFrames(ctx: WebContext, scope: InstanceScope, frameList: string, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  const row = await oneInstance(ctx, scope, reply);
  const wanted = withFrameStatus(() => parseFrameList(frameList));
  const delivery = frameDelivery(parseAccept(request.headers.accept), row.transferSyntaxUid);
  let frames: Buffer[];
  if (delivery.decode) {
    const decoded = await ctx.images.explicitLittleEndian(ctx.archive.paths.absolute(row.path), row.transferSyntaxUid);
    frames = withFrameStatus(() => extractFrames(readDicom(decoded).dict, TransferSyntax.ExplicitVRLittleEndian, wanted));
  } else {
    const dict = await loadInstance(ctx, row);
    frames = withFrameStatus(() => extractFrames(dict.dict, row.transferSyntaxUid, wanted));
  }
  const body = multipartBody(frames.map((bytes) => ({ contentType: `${delivery.mediaType}; transfer-syntax=${delivery.syntax}`, bytes: () => bytes })));
  return reply.code(200).header('content-type', body.contentType).send(Readable.from(body.stream(), { objectMode: false }));
}

async function sendBulkdata(ctx: WebContext, scope: InstanceScope, bulkPath: string, reply: FastifyReply, request: FastifyRequest): Promise<FastifyReply> {
  const row = await oneInstance(ctx, scope, reply);
  const path = bulkPath.split('/').filter(Boolean);
  if (path.length === 0 || path.length % 2 === 0 || path.some((p, i) => (i % 2 === 0 ? !/^[0-9A-Fa-f]{8}$/.test(p) : !/^[0-9]+$/.test(p)))) {
    throw new HttpError(400, 'bulkdata path must be tag[/item/tag…] with 8-digit hex tags');
  }
  const dict = await loadInstance(ctx, row);
  const element = elementAtPath(dict.dict, path);
  if (!element || !element.Value || element.Value.length === 0) throw new HttpError(404, `no bulk data at ${path.join('/')}`);
  const isPixels = path.length === 1 && path[0]!.toUpperCase() === TAG.PixelData;
  let parts: Array<{ contentType: string; bytes: Buffer }>;
  const compressed = !(isUncompressed(row.transferSyntaxUid) || row.transferSyntaxUid === TransferSyntax.DeflatedExplicitVRLittleEndian);
  const accept = parseAccept(request.headers.accept);
  if (isPixels && compressed && wantsBulkdata(accept) && !accept.some((r) => r.params['transfer-syntax'] === '*')) {
    // Asked for as an octet stream: uncompressed, as the study, series and instance bulk data give it (wado-bulk.ts);
    // transfer-syntax=* still gives the frames as stored.
    if (!DECODABLE.has(row.transferSyntaxUid)) throw new HttpError(406, `Pixel Data in ${row.transferSyntaxUid} cannot be decoded here; it is served in ${frameMediaType(row.transferSyntaxUid) ?? 'its stored syntax'}`);
    const decoded = readDicom(await ctx.images.explicitLittleEndian(ctx.archive.paths.absolute(row.path), row.transferSyntaxUid));
    const bytes = Buffer.concat((decoded.dict[TAG.PixelData]?.Value ?? []).map((v) => Buffer.from(v as ArrayBuffer)));
    parts = [{ contentType: `application/octet-stream; transfer-syntax=${TransferSyntax.ExplicitVRLittleEndian}`, bytes }];
  } else if (isPixels && compressed) {
    const count = Number(dict.dict[TAG.NumberOfFrames]?.Value?.[0] ?? 1) || 1;
    const frames = withFrameStatus(() => extractFrames(dict.dict, row.transferSyntaxUid, Array.from({ length: count }, (_, i) => i + 1)));
    const type = frameMediaType(row.transferSyntaxUid) ?? 'application/octet-stream';
    parts = frames.map((bytes) => ({ contentType: `${type}; transfer-syntax=${row.transferSyntaxUid}`, bytes }));
  } else {
    const bytes = Buffer.concat(element.Value.map((v) => (v instanceof ArrayBuffer ? Buffer.from(v) : Buffer.from(v as Uint8Array))));
    parts = [{ contentType: `application/octet-stream; transfer-syntax=${TransferSyntax.ExplicitVRLittleEndian}`, bytes }];
  }
  const body = multipartBody(parts.map((p) => ({ contentType: p.contentType, bytes: () => p.bytes })));
  return reply.code(200).header('content-type', body.contentType).send(Readable.from(body.stream(), { objectMode: false }));
}
