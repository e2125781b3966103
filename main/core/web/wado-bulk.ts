/**
 * The bulk data of instances (PS3.18 10.4.3.3.5): a study, series or instance asked for as
 * `multipart/related; type="application/octet-stream"`, and the Study, Series and Instance Bulkdata resources
 * (`…/bulkdata`). One part per BulkDataURI of the instances' metadata, carrying that URI as its
 * Content-Location and the element's value as uncompressed little endian bytes (8.7.3.3.1): Explicit VR
 * Little Endian is the only syntax an octet stream has. Compressed Pixel Data is decoded in the image workers
 * first; what no codec here decodes gets 406 naming what can be had. Instances are read one at a time as the
 * response goes out, so a series is never held whole.
 */
import { readFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { readDicom, type DcmjsDataset } from '../dicom/dcmjs.js';
import type { DicomJson } from '../dicom/json-model.js';
import { elementAtPath } from '../dicom/metadata-json.js';
import { swapBinaryWords } from '../dicom/transcode.js';
import { frameMediaType, isUncompressed, TransferSyntax } from '../dicom/transfer-syntax.js';
import { parseAccept, typeMatches, type MediaType } from '../multipart/media-type.js';
import { MultipartFraming } from '../multipart/writer.js';
import type { InstanceScope, StoredInstance } from '../store/read-models/index-reads.js';
import type { WebContext } from './context.js';
import { instanceParams, seriesParams, studyParams } from './dicomweb-params.js';
import { DECODABLE } from './explicit-le.js';
import { dicomWebBase, HttpError } from './http-errors.js';
import { archiveHttpError, clientGone, throughArchive, type PathScope } from './read-through.js';
import { OCTET_STREAM } from './bulk-media.js';
import { instanceJson } from './wado-instance.js';

const PART_TYPE = `${OCTET_STREAM}; transfer-syntax=${TransferSyntax.ExplicitVRLittleEndian}`;

/** The Study, Series and Instance Bulkdata resources; the octet stream is their default representation. */
export function registerBulkRetrieve(server: FastifyInstance, ctx: WebContext): void {
  const app = server.withTypeProvider<ZodTypeProvider>();
  for (const [path, params] of [
    ['/dicom-web/studies/:study/bulkdata', studyParams],
    ['/dicom-web/studies/:study/series/:series/bulkdata', seriesParams],
    ['/dicom-web/studies/:study/series/:series/instances/:instance/bulkdata', instanceParams],
  ] as const) {
    app.get(path, { schema: { params } }, (request, reply) => {
      const accept = parseAccept(request.headers.accept);
      const acceptable = accept.some((range) =>
        typeMatches(range.type, 'multipart/related') && typeMatches((range.params.type ?? OCTET_STREAM).toLowerCase(), OCTET_STREAM));
      if (!acceptable) throw new HttpError(406, `bulk data is served as multipart/related; type="${OCTET_STREAM}" only`);
      return sendBulkdata(ctx, request.params, accept, request, reply);
    });
  }
}

/** The transfer-syntax an octet-stream range asks for: none (Explicit VR Little Endian), that one, or `*`. */
function checkSyntaxParameter(accept: MediaType[]): void {
  const ranges = accept.filter((r) => r.type === 'multipart/related' && (r.params.type ?? '').toLowerCase() === OCTET_STREAM);
  if (ranges.length === 0) return;
  const fits = ranges.some((r) => {
    const ts = r.params['transfer-syntax'];
    return ts === undefined || ts === '*' || ts === TransferSyntax.ExplicitVRLittleEndian;
  });
  if (!fits) {
    throw new HttpError(406, `uncompressed bulk data is ${OCTET_STREAM} in transfer-syntax=${TransferSyntax.ExplicitVRLittleEndian} only (PS3.18 Table 8.7.3-4)`);
  }
}

/** Whether this module can serve an instance's bulk data as octet streams. */
function servable(stored: string): boolean {
  return isUncompressed(stored) || stored === TransferSyntax.DeflatedExplicitVRLittleEndian || DECODABLE.has(stored);
}

/** One BulkDataURI of a description, and the path (tag[/item/tag…]) of its element. */
interface BulkReference {
  uri: string;
  path: string[];
}

export function bulkReferences(dataset: DicomJson, path: string[] = []): BulkReference[] {
  const out: BulkReference[] = [];
  for (const tag of Object.keys(dataset).sort()) {
    const element = dataset[tag]!;
    const upper = tag.toUpperCase();
    if (element.BulkDataURI !== undefined) out.push({ uri: element.BulkDataURI, path: [...path, upper] });
    else if (element.vr === 'SQ') {
      (element.Value ?? []).forEach((item, index) => {
        if (item && typeof item === 'object') out.push(...bulkReferences(item as DicomJson, [...path, upper, String(index)]));
      });
    }
  }
  return out;
}

function valueBytes(dataset: DcmjsDataset, path: string[]): Buffer {
  const element = elementAtPath(dataset, path);
  const values = element?.Value ?? [];
  return Buffer.concat(values.map((v) => (v instanceof ArrayBuffer ? Buffer.from(v) : Buffer.from(v as Uint8Array))));
}

/** The parts of one instance: each bulk data element of its description, in little endian, uncompressed. */
async function instanceParts(ctx: WebContext, row: StoredInstance, url: string, continuing: boolean): Promise<Array<{ uri: string; bytes: Buffer }>> {
  const description = JSON.parse(await instanceJson(ctx, row, url)) as DicomJson;
  const references = bulkReferences(description);
  if (references.length === 0) return [];
  const path = ctx.archive.paths.absolute(row.path);
  const stored = row.transferSyntaxUid;
  const native = isUncompressed(stored) || stored === TransferSyntax.DeflatedExplicitVRLittleEndian;
  const dict = readDicom(native ? await readFile(path) : await ctx.images.explicitLittleEndian(path, stored, { continuing }));
  if (stored === TransferSyntax.ExplicitVRBigEndian) swapBinaryWords(dict.dict);
  return references.map((ref) => ({ uri: ref.uri, bytes: valueBytes(dict.dict, ref.path) }));
}

/** The bulk data of every instance of the scope, one instance read at a time. */
export async function sendBulkdata(ctx: WebContext, path: PathScope, accept: MediaType[], request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  checkSyntaxParameter(accept);
  const through = throughArchive(ctx, path);
  if (through) {
    // Instances only in the archive are fetched into the store first; each part is then read from here.
    try {
      for await (const fetched of through.readThrough.retrieve(through.scope, { signal: clientGone(reply) })) void fetched;
    } catch (error) {
      throw archiveHttpError(error, path.instance ?? path.series ?? path.study ?? 'the resource');
    }
  }
  const scope: InstanceScope = path;
  const rows = ctx.archive.reads.storedInstances(scope);
  if (rows.length === 0) throw new HttpError(404, 'no such study, series or instance');
  const refused = rows.find((row) => !servable(row.transferSyntaxUid));
  if (refused) {
    const media = frameMediaType(refused.transferSyntaxUid);
    throw new HttpError(406, `instance ${refused.sopInstanceUid} (transfer-syntax ${refused.transferSyntaxUid}) cannot be decoded here to ${OCTET_STREAM}; ` +
      `it can be served as application/dicom; transfer-syntax=${refused.transferSyntaxUid}` +
      (media ? ` or its frames as ${media}; transfer-syntax=${refused.transferSyntaxUid}` : ''));
  }
  const base = dicomWebBase(request);
  const urlOf = (row: StoredInstance) => `${base}/studies/${row.studyUid}/series/${row.seriesUid}/instances/${row.sopInstanceUid}`;
  // The first instance is read before the status line, so a file that cannot be read or busy workers get a proper answer.
  const first = await instanceParts(ctx, rows[0]!, urlOf(rows[0]!), false);
  const framing = new MultipartFraming();
  ctx.logger.debug({ event: 'wado-bulkdata', peer: request.ip, ...path, instances: rows.length }, 'WADO-RS bulk data retrieve');
  async function* body(): AsyncGenerator<Buffer> {
    let count = 0;
    for (let i = 0; i < rows.length; i++) {
      let parts: Array<{ uri: string; bytes: Buffer }>;
      try {
        parts = i === 0 ? first : await instanceParts(ctx, rows[i]!, urlOf(rows[i]!), true);
      } catch (error) {
        ctx.logger.error({ event: 'wado-bulkdata-failed', peer: request.ip, sopInstanceUid: rows[i]!.sopInstanceUid, reason: (error as Error).message },
          'WADO-RS bulk data response cut short');
        throw error;
      }
      for (const part of parts) {
        yield framing.head(count++, PART_TYPE, { 'Content-Location': part.uri });
        yield part.bytes;
      }
    }
    yield framing.closing(count);
  }
  return reply.code(200).header('content-type', framing.contentType(OCTET_STREAM)).send(Readable.from(body(), { objectMode: false }));
}
