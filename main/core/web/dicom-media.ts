/**
 * Which of the two encodings of PS3.18 Table 10.4.4-1 a metadata or search response goes out in: the DICOM
 * JSON array (`application/dicom+json`, the default) or one Native DICOM Model document per data set in a
 * `multipart/related; type="application/dicom+xml"` body. The Accept ranges are taken best first; the first
 * that names one of the two decides; none naming either is 406.
 */
import { nativeXmlFromJson } from '../dicom/native-xml.js';
import type { DicomJson } from '../dicom/json-model.js';
import { parseAccept, typeMatches } from '../multipart/media-type.js';
import { MultipartFraming } from '../multipart/writer.js';
import { HttpError } from './http-errors.js';

export type DicomEncoding = 'json' | 'xml';

const DICOM_XML = 'application/dicom+xml';

export function dicomEncoding(header: string | string[] | undefined, what: string): DicomEncoding {
  for (const range of parseAccept(header)) {
    if (range.type === 'application/json' || typeMatches(range.type, 'application/dicom+json')) return 'json';
    if (range.type === 'multipart/related' && (range.params.type ?? '').toLowerCase() === DICOM_XML) return 'xml';
  }
  throw new HttpError(406, `${what} are served as application/dicom+json or multipart/related; type="${DICOM_XML}"`);
}

/** A multipart/related body of XML documents, one part per data set, as the data sets come. */
export function xmlMultipart(datasets: AsyncIterable<DicomJson>): { contentType: string; stream: AsyncGenerator<Buffer> } {
  const framing = new MultipartFraming();
  const contentType = `${DICOM_XML}; charset=utf-8`;
  async function* stream(): AsyncGenerator<Buffer> {
    let count = 0;
    for await (const dataset of datasets) {
      yield framing.head(count, contentType);
      yield Buffer.from(nativeXmlFromJson(dataset), 'utf8');
      count++;
    }
    yield framing.closing(count);
  }
  return { contentType: framing.contentType(DICOM_XML), stream: stream() };
}
