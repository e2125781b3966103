/**
 * STOW-RS of metadata and bulk data (PS3.18 10.5.1.4): `multipart/related; type="application/dicom+json"`
 * (the first part a JSON array of data sets) or `type="application/dicom+xml"` (one Native DICOM Model
 * document per part), the bulk data in the other parts, named by their Content-Location. The data sets refer
 * to the parts, which may come after them, so the whole request is read first (bounded by
 * METADATA_REQUEST_MAX_BYTES); then each data set becomes a Part 10 instance (dicom/part10-from-json.ts), or a
 * failure with its reason.
 */
import type { Readable } from 'node:stream';
import { jsonFromNativeXml, NativeXmlError } from '../dicom/native-xml-read.js';
import { FailureReason, part10FromJson, type BuildResult, type BulkPart } from '../dicom/part10-from-json.js';
import { parseMediaType } from '../multipart/media-type.js';
import { readMultipart } from '../multipart/reader.js';

export const METADATA_TYPES: ReadonlySet<string> = new Set(['application/dicom+json', 'application/dicom+xml']);
/**
 * The largest metadata request taken (or http.maxRequestBytes when smaller): it is read whole into memory
 * before any instance is built. Larger studies go as Part 10 instances, which are streamed to disk.
 */
export const METADATA_REQUEST_MAX_BYTES = 256 * 1024 ** 2;

/**
 * What a metadata request makes: its instances, each built or refused as it is asked for (so that only the
 * instances waiting for ingest are held as Part 10 bytes beside the request), and, once all are built, the
 * bulk parts no data set named.
 */
export interface MetadataRequest {
  results(): Generator<BuildResult>;
  unreferenced(): string[];
}

/** Reads the whole body and builds its instances. The reader's errors (too large, malformed) go to the caller. */
export async function buildFromMetadataRequest(body: Readable, boundary: string, maxBytes: number, rootType: string): Promise<MetadataRequest> {
  const datasets: Array<{ dataset: unknown } | { failure: BuildResult }> = [];
  const parts = new Map<string, BulkPart>();
  let index = 0;
  for await (const part of readMultipart(body, boundary, { maxBytes })) {
    const chunks: Buffer[] = [];
    for await (const chunk of part.body) chunks.push(chunk);
    const bytes = Buffer.concat(chunks);
    // As for Part 10 parts, a part without Content-Type is taken as of the root type, here only the first.
    const type = parseMediaType(part.headers['content-type'] ?? (index === 0 ? rootType : '')) ?? { type: '', params: {} };
    const location = part.headers['content-location'];
    const isMetadata = type.type === rootType && (rootType === 'application/dicom+xml' || index === 0);
    index++;
    if (isMetadata) {
      datasets.push(...metadataOf(type.type, bytes, index));
    } else if (location) {
      parts.set(location, { type: type.type, params: type.params, bytes });
    } else {
      datasets.push({
        failure: { ok: false, failureReason: FailureReason.CannotUnderstand,
          message: `part ${index} (${part.headers['content-type'] ?? 'no Content-Type'}) is neither ${rootType} metadata nor bulk data with a Content-Location` },
      });
    }
  }
  if (datasets.length === 0) {
    datasets.push({ failure: { ok: false, failureReason: FailureReason.CannotUnderstand, message: `the request holds no ${rootType} part` } });
  }
  const used = new Set<string>();
  return {
    *results() {
      for (const d of datasets) yield 'failure' in d ? d.failure : part10FromJson(d.dataset, parts, used);
    },
    unreferenced: () => [...parts.keys()].filter((location) => !used.has(location)),
  };
}

function metadataOf(type: string, bytes: Buffer, index: number): Array<{ dataset: unknown } | { failure: BuildResult }> {
  const fail = (message: string) => [{ failure: { ok: false as const, failureReason: FailureReason.CannotUnderstand, message } }];
  const text = bytes.toString('utf8');
  if (type === 'application/dicom+xml') {
    try {
      return [{ dataset: jsonFromNativeXml(text) }];
    } catch (error) {
      if (error instanceof NativeXmlError) return fail(`part ${index}: ${error.message}`);
      throw error;
    }
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    return fail(`the metadata part is not JSON: ${(error as Error).message}`);
  }
  // PS3.18 10.5.1.4: an array of DICOM JSON data sets in a single part.
  if (!Array.isArray(parsed)) return fail('the metadata part is not a JSON array of data sets');
  if (parsed.length === 0) return fail('the metadata part is an empty array');
  return parsed.map((dataset) => ({ dataset }));
}
