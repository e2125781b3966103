// QIDO-RS search and WADO-RS retrieve of the Azure DICOM double, answered from the in-memory store.
import type { InstanceStore, StoredInstance } from './azure-dicom-store.js';
import { instanceUrl, problem, type Exchange } from './azure-dicom-exchange.js';
import { qidoObject } from './dicom-json.js';
import { instanceMetadata } from './dicom-metadata.js';
import { buildMultipartRelated, parseMediaType } from './multipart-related.js';

export type SearchLevel = 'studies' | 'series' | 'instances';

/**
 * Exact (and UID-list) matching on the attributes the double indexes; `limit` 1..200 (default
 * 100) and `offset`; 204 when nothing matches. includefield, fuzzymatching and other attributes
 * are ignored.
 */
export function handleSearch(ex: Exchange, store: InstanceStore, level: SearchLevel, params: URLSearchParams, studyUid?: string, seriesUid?: string): void {
  const limit = params.has('limit') ? Number(params.get('limit')) : 100;
  const offset = params.has('offset') ? Number(params.get('offset')) : 0;
  if (!Number.isInteger(limit) || limit < 1 || limit > 200 || !Number.isInteger(offset) || offset < 0) {
    return ex.reply(400, problem('BadRequest', 'limit must be 1..200 and offset ≥ 0.'));
  }
  let matches = store.list(ex.rec.partition).filter((i) => (!studyUid || i.studyUid === studyUid) && (!seriesUid || i.seriesUid === seriesUid));
  for (const [name, value] of params) {
    const field = QUERY_FIELDS[name] ?? QUERY_FIELDS[name.toUpperCase()];
    if (!field) continue;
    const wanted = value.split(',');
    matches = matches.filter((i) => wanted.includes(String(i[field] ?? '')));
  }
  const results =
    level === 'studies'
      ? unique(matches, (i) => i.studyUid).map((i) =>
          qidoObject({ StudyInstanceUID: i.studyUid, PatientID: i.patientId, PatientName: i.patientName, StudyDate: i.studyDate, AccessionNumber: i.accessionNumber }),
        )
      : level === 'series'
        ? unique(matches, (i) => i.seriesUid).map((i) => qidoObject({ StudyInstanceUID: i.studyUid, SeriesInstanceUID: i.seriesUid, Modality: i.modality }))
        : matches.map((i) =>
            qidoObject({
              StudyInstanceUID: i.studyUid,
              SeriesInstanceUID: i.seriesUid,
              SOPInstanceUID: i.sopUid,
              SOPClassUID: i.sopClassUid,
              RetrieveURL: instanceUrl(ex, i.studyUid, i.seriesUid, i.sopUid),
            }),
          );
  const page = results.slice(offset, offset + limit);
  if (page.length === 0) return ex.reply(204);
  ex.reply(200, page, {}, 'application/dicom+json');
}

/**
 * Retrieves an instance (application/dicom or multipart), or a series or study (multipart only).
 * Bytes are as stored with the preamble nulled; the double never transcodes, so a specific
 * transfer-syntax other than the stored one gets 406.
 */
export function handleRetrieve(
  ex: Exchange, store: InstanceStore, studyUid: string, seriesUid?: string, sopUid?: string, cut?: { afterParts: number; until?: Promise<unknown> },
): void {
  const found = store
    .list(ex.rec.partition)
    .filter((i) => i.studyUid === studyUid && (!seriesUid || i.seriesUid === seriesUid) && (!sopUid || i.sopUid === sopUid));
  if (found.length === 0) return ex.reply(404, problem('NotFound', 'The specified resource was not found.'));
  const choice = chooseRetrieveType(ex.req.headers.accept, sopUid !== undefined);
  if (!choice) return ex.reply(406, problem('NotAcceptable', `The Accept header '${ex.req.headers.accept}' is not supported.`));
  const other = found.find((i) => choice.transferSyntax !== undefined && choice.transferSyntax !== '*' && choice.transferSyntax !== i.transferSyntaxUid);
  if (other) return ex.reply(406, problem('NotAcceptable', `This double does not transcode to ${choice.transferSyntax}; stored as ${other.transferSyntaxUid}.`));
  const partType = (i: StoredInstance) => `application/dicom; transfer-syntax=${i.transferSyntaxUid ?? '*'}`;
  ex.rec.status = 200;
  if (choice.single) {
    const bytes = withNullPreamble(found[0].bytes);
    ex.res.writeHead(200, { 'content-type': partType(found[0]), 'content-length': bytes.length });
    ex.res.end(bytes);
    return;
  }
  const parts = found.map((i) => ({ body: withNullPreamble(i.bytes), contentType: partType(i) }));
  const { body, contentType, boundary } = buildMultipartRelated(parts);
  ex.res.writeHead(200, { 'content-type': contentType, 'content-length': body.length });
  if (cut?.until && cut.afterParts < parts.length) {
    // The whole parts before the hold, then nothing until it is released.
    const whole = buildMultipartRelated(parts.slice(0, cut.afterParts), { boundary }).body.length - Buffer.byteLength(`--${boundary}--\r\n`);
    ex.res.write(body.subarray(0, whole));
    void cut.until.then(() => ex.res.end(body.subarray(whole)));
    return;
  }
  if (cut && cut.afterParts < parts.length) {
    // The whole parts before the cut, then the next part's headers and half its bytes: the upstream dies mid-instance.
    const whole = buildMultipartRelated(parts.slice(0, cut.afterParts), { boundary }).body.length - Buffer.byteLength(`--${boundary}--\r\n`);
    const next = parts[cut.afterParts]!;
    const offset = whole + Buffer.byteLength(`--${boundary}\r\nContent-Type: ${next.contentType}\r\n\r\n`) + Math.floor(next.body.length / 2);
    ex.res.write(body.subarray(0, offset), () => ex.res.socket?.destroy());
    return;
  }
  ex.res.end(body);
}

/** WADO-RS metadata of a study, series or instance: a JSON array of DICOM JSON data sets without bulk data. */
export function handleMetadata(ex: Exchange, store: InstanceStore, studyUid: string, seriesUid?: string, sopUid?: string): void {
  const found = store
    .list(ex.rec.partition)
    .filter((i) => i.studyUid === studyUid && (!seriesUid || i.seriesUid === seriesUid) && (!sopUid || i.sopUid === sopUid));
  if (found.length === 0) return ex.reply(404, problem('NotFound', 'The specified resource was not found.'));
  const accept = ex.req.headers.accept;
  const acceptable = !accept || accept.split(',').some((item) => ['application/dicom+json', 'application/json', '*/*'].includes(parseMediaType(item)?.type ?? ''));
  if (!acceptable) return ex.reply(406, problem('NotAcceptable', `The Accept header '${accept}' is not supported.`));
  ex.reply(200, found.map((i) => instanceMetadata(i.bytes)), {}, 'application/dicom+json');
}

const QUERY_FIELDS: Record<string, keyof StoredInstance> = {
  StudyInstanceUID: 'studyUid',
  '0020000D': 'studyUid',
  SeriesInstanceUID: 'seriesUid',
  '0020000E': 'seriesUid',
  SOPInstanceUID: 'sopUid',
  '00080018': 'sopUid',
  SOPClassUID: 'sopClassUid',
  '00080016': 'sopClassUid',
  PatientID: 'patientId',
  '00100020': 'patientId',
  AccessionNumber: 'accessionNumber',
  '00080050': 'accessionNumber',
  Modality: 'modality',
  '00080060': 'modality',
  StudyDate: 'studyDate',
  '00080020': 'studyDate',
};

/** Accept negotiation after the conformance statement: single part only for one instance; none or * / * allowed. */
function chooseRetrieveType(accept: string | undefined, oneInstance: boolean): { single: boolean; transferSyntax?: string } | undefined {
  if (!accept) return { single: oneInstance, transferSyntax: '*' };
  for (const item of accept.split(/,(?=(?:[^"]*"[^"]*")*[^"]*$)/)) {
    const mt = parseMediaType(item);
    if (!mt) continue;
    if (mt.type === '*/*') return { single: oneInstance, transferSyntax: '*' };
    if (mt.type === 'application/dicom' && oneInstance) return { single: true, transferSyntax: mt.params['transfer-syntax'] };
    if (mt.type === 'multipart/related' && (mt.params.type ?? 'application/dicom').toLowerCase() === 'application/dicom') {
      return { single: false, transferSyntax: mt.params['transfer-syntax'] };
    }
  }
  return undefined;
}

/** The service replaces the 128-byte file preamble with nulls ("Preamble Sanitization"). */
function withNullPreamble(bytes: Buffer): Buffer {
  if (bytes.length < 132 || bytes.toString('latin1', 128, 132) !== 'DICM') return bytes;
  const copy = Buffer.from(bytes);
  copy.fill(0, 0, 128);
  return copy;
}

function unique<T>(items: T[], keyOf: (item: T) => string): T[] {
  const seen = new Map<string, T>();
  for (const item of items) if (!seen.has(keyOf(item))) seen.set(keyOf(item), item);
  return [...seen.values()];
}
