/**
 * The service's description of itself (PS3.18 8.9, Retrieve Capabilities): `GET /dicom-web` and
 * `OPTIONS /dicom-web` answer in JSON with every resource, its methods, the media types it produces or
 * takes, and its query parameters. docs/dicomweb-conformance.md says the same for people.
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import { dicomWebBase } from './http-errors.js';

interface Method {
  name: 'GET' | 'POST' | 'DELETE';
  produces?: string[];
  consumes?: string[];
  query?: string[];
}
interface Resource {
  path: string;
  methods: Method[];
}

const DICOM = ['multipart/related; type="application/dicom"'];
const JSON_MEDIA = ['application/dicom+json'];
const IMAGES = ['image/jpeg', 'image/png'];
const QIDO_QUERY = ['{attribute}', 'includefield', 'fuzzymatching', 'limit', 'offset', 'includecloud', 'accept', 'charset'];
const RENDERED_QUERY = ['window', 'viewport', 'quality', 'annotation', 'accept', 'charset'];
const OCTETS = ['multipart/related; type="application/octet-stream"'];
/** PS3.18 10.4: the instances as Part 10 files, or their bulk data (10.4.3.3.5). */
const RETRIEVE: Method = { name: 'GET', produces: [...DICOM, ...OCTETS], query: ['accept', 'charset'] };
const BULK: Method = { name: 'GET', produces: OCTETS, query: ['accept', 'charset'] };
/** PS3.18 10.5: Part 10 instances, or metadata (JSON or XML) with its bulk data in the parts after it. */
const STOW: Method = { name: 'POST', consumes: [...DICOM, 'multipart/related; type="application/dicom+json"', 'multipart/related; type="application/dicom+xml"'], produces: JSON_MEDIA };
const REMOVE: Method = { name: 'DELETE', query: ['force'] };
/** PS3.18 Table 10.4.4-1: metadata and search results in either encoding, JSON the default. */
const DATASETS = [...JSON_MEDIA, 'multipart/related; type="application/dicom+xml"'];
const SEARCH: Method = { name: 'GET', produces: DATASETS, query: QIDO_QUERY };
const METADATA: Method = { name: 'GET', produces: DATASETS, query: ['accept', 'charset'] };
const RENDER: Method = { name: 'GET', produces: IMAGES, query: RENDERED_QUERY };
const RENDER_ALL: Method = { name: 'GET', produces: IMAGES.map((type) => `multipart/related; type="${type}"`), query: RENDERED_QUERY };

export const RESOURCES: readonly Resource[] = [
  { path: 'studies', methods: [SEARCH, STOW] },
  { path: 'series', methods: [SEARCH] },
  { path: 'instances', methods: [SEARCH] },
  { path: 'studies/{study}', methods: [RETRIEVE, STOW, REMOVE] },
  { path: 'studies/{study}/metadata', methods: [METADATA] },
  { path: 'studies/{study}/bulkdata', methods: [BULK] },
  { path: 'studies/{study}/rendered', methods: [RENDER_ALL] },
  { path: 'studies/{study}/thumbnail', methods: [RENDER] },
  { path: 'studies/{study}/series', methods: [SEARCH] },
  { path: 'studies/{study}/instances', methods: [SEARCH] },
  { path: 'studies/{study}/series/{series}', methods: [RETRIEVE, REMOVE] },
  { path: 'studies/{study}/series/{series}/metadata', methods: [METADATA] },
  { path: 'studies/{study}/series/{series}/bulkdata', methods: [BULK] },
  { path: 'studies/{study}/series/{series}/rendered', methods: [RENDER_ALL] },
  { path: 'studies/{study}/series/{series}/thumbnail', methods: [RENDER] },
  { path: 'studies/{study}/series/{series}/instances', methods: [SEARCH] },
  { path: 'studies/{study}/series/{series}/instances/{instance}', methods: [RETRIEVE, REMOVE] },
  { path: 'studies/{study}/series/{series}/instances/{instance}/metadata', methods: [METADATA] },
  { path: 'studies/{study}/series/{series}/instances/{instance}/bulkdata', methods: [BULK] },
  { path: 'studies/{study}/series/{series}/instances/{instance}/rendered', methods: [RENDER] },
  { path: 'studies/{study}/series/{series}/instances/{instance}/thumbnail', methods: [RENDER] },
  { path: 'studies/{study}/series/{series}/instances/{instance}/frames/{frames}', methods: [{ name: 'GET', produces: ['multipart/related; type="application/octet-stream"'] }] },
  { path: 'studies/{study}/series/{series}/instances/{instance}/frames/{frames}/rendered', methods: [RENDER] },
  { path: 'studies/{study}/series/{series}/instances/{instance}/frames/{frames}/thumbnail', methods: [RENDER] },
  { path: 'studies/{study}/series/{series}/instances/{instance}/bulkdata/{path}', methods: [{ name: 'GET', produces: ['multipart/related; type="application/octet-stream"'] }] },
];

function describe(reply: FastifyReply, base: string): FastifyReply {
  const methods = [...new Set(RESOURCES.flatMap((r) => r.methods.map((m) => m.name)))];
  return reply.code(200).header('allow', ['OPTIONS', ...methods].join(', ')).type('application/json').send({
    service: 'DICOMweb',
    base,
    resources: RESOURCES.map((resource) => ({ path: resource.path, methods: resource.methods })),
    wadoUri: { path: '/wado', query: ['requestType=WADO', 'studyUID', 'seriesUID', 'objectUID', 'contentType', 'transferSyntax', 'frameNumber',
      'rows', 'columns', 'windowCenter', 'windowWidth', 'region', 'imageQuality'], produces: ['application/dicom', ...IMAGES] },
  });
}

export function registerCapabilities(app: FastifyInstance): void {
  app.get('/dicom-web', (request, reply) => describe(reply, dicomWebBase(request)));
  app.options('/dicom-web', (request, reply) => describe(reply, dicomWebBase(request)));
}
