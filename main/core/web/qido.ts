import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { toDicomJson } from '../dicom/dicom-json.js';
import { entryOf, tagNamed } from '../dicom/dictionary.js';
import { withInstanceUrl } from '../dicom/instance-json.js';
import type { DicomJson } from '../dicom/json-model.js';
import { attributesUpTo, lookupAttribute, type QueryLevel } from '../dicom/keywords.js';
import { InvalidMatchKeyError } from '../dicom/matching.js';
import type { QueryMatch } from '../store/query-types.js';
import type { WebContext } from './context.js';
import { dicomEncoding, xmlMultipart } from './dicom-media.js';
import { noParams, seriesParams, studyParams } from './dicomweb-params.js';
import { dicomWebBase, HttpError } from './http-errors.js';
import { MEDIA_PARAMETERS } from './media-parameters.js';
import { warning } from './read-through.js';

/** The most results one response carries; a client pages on with offset (PS3.18 8.3.4.4.1 Warning). */
const MAX_RESULTS = 5000;
const CONTROL_PARAMS = new Set(['includefield', 'limit', 'offset', 'fuzzymatching', 'includecloud']);
/**
 * The query parameters besides the attributes: `includecloud` is this appliance's own (docs/conformance.md):
 * `false` answers from the index alone, without asking the archive; `true` (the default) federates when
 * cloud.federation.enabled. It is taken off the query and never sent on to the archive.
 */
export const qidoQuerySchema = z.looseObject({
  includecloud: z.enum(['true', 'false'], { error: 'includecloud must be true or false' }).optional(),
});
const PATIENT_TOTALS = new Set(['NumberOfPatientRelatedStudies', 'NumberOfPatientRelatedSeries', 'NumberOfPatientRelatedInstances']);

interface Route {
  path: string;
  /** The UIDs the path fixes; the query's keys are attribute names, parsed by search(). */
  params: z.ZodType<{ study?: string; series?: string }>;
  level: QueryLevel;
  /** Levels whose attributes a result carries by default (PS3.18 Table 10.6.3-3: the level, plus the levels the URL does not fix). */
  defaults: QueryLevel[];
}

const ROUTES: Route[] = [
  { path: '/dicom-web/studies', params: noParams, level: 'STUDY', defaults: ['PATIENT', 'STUDY'] },
  { path: '/dicom-web/series', params: noParams, level: 'SERIES', defaults: ['PATIENT', 'STUDY', 'SERIES'] },
  { path: '/dicom-web/studies/:study/series', params: studyParams, level: 'SERIES', defaults: ['SERIES'] },
  { path: '/dicom-web/instances', params: noParams, level: 'IMAGE', defaults: ['PATIENT', 'STUDY', 'SERIES', 'IMAGE'] },
  { path: '/dicom-web/studies/:study/instances', params: studyParams, level: 'IMAGE', defaults: ['SERIES', 'IMAGE'] },
  { path: '/dicom-web/studies/:study/series/:series/instances', params: seriesParams, level: 'IMAGE', defaults: ['IMAGE'] },
];

/** QIDO-RS (PS3.18 10.6) on the archive's shared query engine (store/query.ts). */
export function registerQido(server: FastifyInstance, ctx: WebContext): void {
  const app = server.withTypeProvider<ZodTypeProvider>();
  for (const route of ROUTES) {
    app.get(route.path, { schema: { params: route.params, querystring: qidoQuerySchema } }, (request, reply) => search(ctx, route, request.params, request, reply));
  }
}

function parseCount(value: string | undefined, name: string): number | undefined {
  if (value === undefined || value === '') return undefined;
  if (!/^[0-9]{1,9}$/.test(value)) throw new HttpError(400, `${name} must be a non-negative integer, got ${JSON.stringify(value)}`);
  return Number(value);
}

async function search(ctx: WebContext, route: Route, path: { study?: string; series?: string }, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  const encoding = dicomEncoding(request.headers.accept, 'search results');
  const url = new URL(request.url, 'http://local');
  const keys: Record<string, string> = {};
  const include = new Set<string>();
  /** Tags asked for that the index does not keep: an instance's kept DICOM JSON has them. */
  const includeStored = new Set<string>();
  let includeAll = false;
  for (const [name, value] of url.searchParams) {
    if (name === 'includefield') {
      for (const field of value.split(',').map((f) => f.trim()).filter(Boolean)) {
        if (field === 'all') includeAll = true;
        else {
          const attribute = lookupAttribute(field);
          if (attribute) include.add(attribute.keyword);
          else {
            const tag = tagNamed(field);
            if (tag) includeStored.add(tag);
          }
        }
      }
      continue;
    }
    if (CONTROL_PARAMS.has(name) || MEDIA_PARAMETERS.has(name)) continue;
    const attribute = lookupAttribute(name);
    if (!attribute) {
      if (name.includes('.')) throw new HttpError(400, `sequence matching (${name}) is not supported`);
      throw new HttpError(400, `${name} is not an attribute this archive can search on`);
    }
    keys[attribute.keyword] = value;
  }
  if (path.study) keys.StudyInstanceUID = path.study;
  if (path.series) keys.SeriesInstanceUID = path.series;
  const fuzzy = url.searchParams.get('fuzzymatching') === 'true';
  const limit = parseCount(url.searchParams.get('limit') ?? undefined, 'limit');
  const offset = parseCount(url.searchParams.get('offset') ?? undefined, 'offset') ?? 0;
  const pageSize = Math.min(limit ?? MAX_RESULTS, MAX_RESULTS);

  let matches: QueryMatch[];
  const warnings: string[] = [];
  try {
    // With an archive: its matches too, within the federation time limit, or a Warning that they are missing.
    const query = { level: route.level, keys, fuzzy, limit: pageSize + 1, offset };
    const federated = url.searchParams.get('includecloud') === 'false' ? undefined : ctx.cloud?.()?.federatedSearch;
    if (federated) {
      const result = await federated.search(query);
      matches = result.matches;
      if (result.archive.state === 'missing') {
        warnings.push(warning(`The archive's results are missing (${result.archive.reason}): ${result.archive.message}`));
        ctx.logger.warn({ event: 'qido-archive-missing', peer: request.ip, queryLevel: route.level, reason: result.archive.reason, message: result.archive.message,
          localMatches: result.matches.length }, 'QIDO-RS answered without the archive\'s matches');
      }
    } else {
      matches = ctx.archive.reads.query(query);
    }
  } catch (error) {
    if (error instanceof InvalidMatchKeyError || error instanceof RangeError) throw new HttpError(400, error.message);
    throw error;
  }
  const more = matches.length > pageSize;
  if (more) matches = matches.slice(0, pageSize);
  if (more && (limit === undefined || limit > MAX_RESULTS)) {
    warnings.push(`299 dicom-edge "The number of results exceeded the maximum supported by the server (${MAX_RESULTS}). Additional results can be requested."`);
  }
  if (warnings.length > 0) reply.header('warning', warnings.length === 1 ? warnings[0]! : warnings);
  ctx.logger.debug({ event: 'qido', peer: request.ip, queryLevel: route.level, keys, results: matches.length }, 'QIDO-RS search');
  // PS3.18 8.3.4.4.1: a search without matches answers 204 No Content.
  if (matches.length === 0) return reply.code(204).send();

  const returned = returnedKeywords(route, Object.keys(keys), include);
  const base = dicomWebBase(request);
  const body = matches.map((match) => {
    const values: Record<string, string | number | null> = {};
    for (const [keyword, value] of Object.entries(match)) {
      if (keyword.startsWith('_') || keyword === 'SpecificCharacterSet') continue; // JSON is always Unicode
      if (includeAll || returned.has(keyword)) values[keyword] = value;
    }
    values.RetrieveURL = retrieveUrl(base, route.level, match);
    const json = toDicomJson(values, { RetrieveURL: entryOf('RetrieveURL') });
    return route.level === 'IMAGE' && (includeAll || includeStored.size > 0)
      ? withStoredAttributes(ctx, json, match, values.RetrieveURL, includeAll ? 'all' : includeStored)
      : json;
  });
  if (encoding === 'xml') {
    const xml = xmlMultipart((async function* () { yield* body as DicomJson[]; })());
    return reply.code(200).header('content-type', xml.contentType).send(Readable.from(xml.stream, { objectMode: false }));
  }
  return reply.code(200).type('application/dicom+json').send(body);
}

/**
 * An instance's result with the attributes asked for (all of them, for includefield=all) taken from the DICOM
 * JSON kept at ingest, where the index does not have them; the index's own values stay as they are. An
 * instance only in the archive, or stored without a description, has only the index's attributes.
 */
function withStoredAttributes(ctx: WebContext, json: DicomJson, match: QueryMatch, instanceUrl: string, wanted: 'all' | ReadonlySet<string>): DicomJson {
  const kept = ctx.archive.reads.currentInstanceMetadata(String(match.SOPInstanceUID));
  if (kept === undefined) return json;
  const stored = JSON.parse(withInstanceUrl(kept, instanceUrl)) as DicomJson;
  const merged: DicomJson = { ...json };
  for (const [tag, element] of Object.entries(stored)) {
    if (tag in merged || tag.startsWith('0002')) continue;
    if (wanted === 'all' || wanted.has(tag)) merged[tag] = element;
  }
  return Object.fromEntries(Object.entries(merged).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

function returnedKeywords(route: Route, matchingKeys: string[], include: Set<string>): Set<string> {
  const returned = new Set<string>([...matchingKeys, ...include]);
  for (const attribute of attributesUpTo(route.level)) {
    if (attribute.level && route.defaults.includes(attribute.level) && !PATIENT_TOTALS.has(attribute.keyword)) returned.add(attribute.keyword);
  }
  returned.add('InstanceAvailability');
  return returned;
}

function retrieveUrl(base: string, level: QueryLevel, match: QueryMatch): string {
  const study = `${base}/studies/${match.StudyInstanceUID}`;
  if (level === 'STUDY' || level === 'PATIENT') return study;
  const series = `${study}/series/${match.SeriesInstanceUID}`;
  if (level === 'SERIES') return series;
  return `${series}/instances/${match.SOPInstanceUID}`;
}
