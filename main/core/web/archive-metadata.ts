/**
 * WADO-RS metadata of a study, series or instance not all here: the instances here are described from
 * their files, the others from the archive's own metadata answer (no pixel data is fetched), with their
 * bulk data pointing at this server (which fetches the instance when asked). When the archive cannot be
 * reached, what is here is answered with a Warning; when nothing is here, the archive's failure is.
 */
import { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { jsonString, type ReceivedDicomJson } from '../dicom/dicom-json-values.js';
import { tagOf } from '../dicom/dictionary.js';
import type { InstanceLocation, InstanceScope, ReadThrough } from '../cloud/read-through.js';
import type { DicomJson } from '../dicom/json-model.js';
import type { WebContext } from './context.js';
import { type DicomEncoding, xmlMultipart } from './dicom-media.js';
import { dicomWebBase, HttpError } from './http-errors.js';
import { archiveHttpError, clientGone, warning } from './read-through.js';

type JsonDataset = Record<string, unknown>;

const SOP_INSTANCE_UID = tagOf('SOPInstanceUID');

function describe(scope: InstanceScope): string {
  return scope.sopInstanceUid ? `instance ${scope.sopInstanceUid}` : scope.seriesUid ? `series ${scope.seriesUid}` : `study ${scope.studyUid}`;
}

export function instanceUrl(base: string, ids: { studyUid: string; seriesUid: string; sopInstanceUid: string }): string {
  return `${base}/studies/${ids.studyUid}/series/${ids.seriesUid}/instances/${ids.sopInstanceUid}`;
}

/** The archive's BulkDataURIs point at the archive: each becomes ours, `${instanceUrl}/bulkdata/<tag>[/<item>/<tag>…]`. */
function withOurBulkData(dataset: ReceivedDicomJson, url: string, path: string[] = []): JsonDataset {
  const out: JsonDataset = {};
  for (const [tag, element] of Object.entries(dataset)) {
    if (!element || typeof element !== 'object') {
      out[tag] = element;
      continue;
    }
    const upper = tag.toUpperCase();
    if (element.vr === 'SQ' && Array.isArray(element.Value)) {
      out[tag] = { ...element, Value: element.Value.map((item, index) => withOurBulkData(item as ReceivedDicomJson, url, [...path, upper, String(index)])) };
    } else if ('BulkDataURI' in element) {
      out[tag] = { ...element, BulkDataURI: `${url}/bulkdata/${[...path, upper].join('/')}` };
    } else {
      out[tag] = element;
    }
  }
  return out;
}

export async function sendArchiveMetadata(
  ctx: WebContext, readThrough: ReadThrough, scope: InstanceScope, request: FastifyRequest, reply: FastifyReply,
  encoding: DicomEncoding,
  describeLocal: (instance: InstanceLocation, url: string) => Promise<JsonDataset | undefined>,
): Promise<FastifyReply> {
  const what = describe(scope);
  const base = dicomWebBase(request);
  const hereBefore = readThrough.known(scope).filter((i) => i.local).length;
  let fromArchive = new Map<string, ReceivedDicomJson>();
  try {
    const datasets = (await readThrough.archiveMetadata(scope, { signal: clientGone(reply) })) ?? [];
    fromArchive = new Map(datasets.map((d) => [jsonString(d, SOP_INSTANCE_UID), d]));
  } catch (error) {
    if (hereBefore === 0) throw archiveHttpError(error, what);
    reply.header('warning', warning(`Only the instances held here are described: the archive's metadata is missing (${(error as Error).message})`));
    ctx.logger.warn({ event: 'metadata-archive-missing', peer: request.ip, studyUid: scope.studyUid, reason: (error as Error).message }, 'metadata answered without the archive\'s part');
  }
  // In the index's order, now that it knows the archive's instances too.
  const instances = readThrough.known(scope).filter((i) => i.local || fromArchive.has(i.sopInstanceUid));
  if (instances.length === 0) throw new HttpError(404, `${what} is neither here nor in the archive`);
  ctx.logger.debug({ event: 'metadata-through-archive', peer: request.ip, studyUid: scope.studyUid, instances: instances.length,
    fromArchive: instances.filter((i) => !i.local).length }, 'WADO-RS metadata with the archive\'s');
  async function* described(): AsyncGenerator<JsonDataset> {
    for (const instance of instances) {
      const url = instanceUrl(base, instance);
      const remote = fromArchive.get(instance.sopInstanceUid);
      const json = instance.local ? await describeLocal(instance, url) : remote && withOurBulkData(remote, url);
      if (json) yield json;
    }
  }
  if (encoding === 'xml') {
    const body = xmlMultipart(described() as AsyncIterable<DicomJson>);
    return reply.code(200).header('content-type', body.contentType).header('cache-control', 'no-cache')
      .send(Readable.from(body.stream, { objectMode: false }));
  }
  async function* generate(): AsyncGenerator<string> {
    yield '[';
    let first = true;
    for await (const json of described()) {
      yield `${first ? '' : ','}${JSON.stringify(json)}`;
      first = false;
    }
    yield ']';
  }
  return reply.code(200).type('application/dicom+json').header('cache-control', 'no-cache').send(Readable.from(generate()));
}
