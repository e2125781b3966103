import type { DcmjsDataset, DcmjsElement } from './dcmjs.js';
import { tagOf } from './dictionary.js';
import type { DicomJson, DicomJsonElement, DicomJsonValue } from './json-model.js';

const BINARY_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'UN']);
/** Binary values larger than this go out as BulkDataURI rather than InlineBinary. */
const BULK_THRESHOLD_BYTES = 1024;
const PIXEL_DATA_TAGS = new Set(['PixelData', 'FloatPixelData', 'DoubleFloatPixelData'].map(tagOf));
const TRANSFER_SYNTAX_UID = tagOf('TransferSyntaxUID');

/**
 * PS3.18 F.2 DICOM JSON for one instance from dcmjs' dataset, with large binary values replaced by
 * BulkDataURI `${instanceUrl}/bulkdata/<tag>[/<item>/<tag>…]`.
 */
export function datasetToJson(dataset: DcmjsDataset, instanceUrl: string, meta?: DcmjsDataset, path: string[] = []): DicomJson {
  const out: DicomJson = {};
  const syntax = meta?.[TRANSFER_SYNTAX_UID];
  if (syntax) out[TRANSFER_SYNTAX_UID] = { vr: 'UI', Value: syntax.Value as DicomJsonValue[] | undefined };
  for (const tag of Object.keys(dataset).sort()) {
    const upper = tag.toUpperCase();
    if (upper.startsWith('0002') || upper.endsWith('0000')) continue; // meta header and group lengths
    out[upper] = elementToJson(upper, dataset[tag]!, instanceUrl, path);
  }
  return out;
}

function elementToJson(tag: string, element: DcmjsElement, instanceUrl: string, path: string[]): DicomJsonElement {
  const vr = element.vr === 'ox' || element.vr === 'xs' ? (element.vr === 'ox' ? 'OW' : 'US') : element.vr;
  const values = element.Value ?? [];
  if (vr === 'SQ') {
    const items = (values as DcmjsDataset[]).map((item, index) => datasetToJson(item, instanceUrl, undefined, [...path, tag, String(index)]));
    return items.length > 0 ? { vr, Value: items } : { vr };
  }
  if (BINARY_VRS.has(vr)) {
    const buffers = values.filter((v): v is ArrayBuffer => v instanceof ArrayBuffer || ArrayBuffer.isView(v as object));
    const size = buffers.reduce((n, b) => n + (b as ArrayBuffer).byteLength, 0);
    if (size === 0 && buffers.length === 0) return { vr };
    if (PIXEL_DATA_TAGS.has(tag) || size > BULK_THRESHOLD_BYTES || buffers.length > 1) {
      return { vr, BulkDataURI: `${instanceUrl}/bulkdata/${[...path, tag].join('/')}` };
    }
    const bytes = buffers[0] instanceof ArrayBuffer ? Buffer.from(buffers[0]) : Buffer.from((buffers[0] as unknown as Uint8Array));
    return { vr, InlineBinary: bytes.toString('base64') };
  }
  const cleaned = values.map((value) => cleanValue(vr, value));
  if (cleaned.length === 0 || cleaned.every((v) => v === null)) return { vr };
  return { vr, Value: cleaned };
}

function cleanValue(vr: string, value: unknown): DicomJsonValue {
  if (value === undefined || value === null || value === '') return null;
  if (vr === 'AT' && typeof value === 'number') return value.toString(16).toUpperCase().padStart(8, '0');
  if (vr === 'PN' && typeof value === 'object') {
    const pn = value as Record<string, unknown>;
    const out: Record<string, string> = {};
    for (const key of ['Alphabetic', 'Ideographic', 'Phonetic']) if (typeof pn[key] === 'string' && pn[key]) out[key] = pn[key] as string;
    return Object.keys(out).length > 0 ? out : null;
  }
  if ((vr === 'DS' || vr === 'IS') && typeof value === 'string') {
    const n = Number(value);
    return value.trim() === '' ? null : Number.isFinite(n) ? n : value;
  }
  if (typeof value === 'bigint') return Number(value);
  return value;
}

/** Follows a bulkdata path ("7FE00010" or "00540016/0/00181074") to its element. */
export function elementAtPath(dataset: DcmjsDataset, path: string[]): DcmjsElement | undefined {
  let current: DcmjsDataset | undefined = dataset;
  for (let i = 0; i < path.length; i += 2) {
    const element: DcmjsElement | undefined = current?.[path[i]!.toUpperCase()];
    if (!element) return undefined;
    if (i + 1 >= path.length) return element;
    const index = Number(path[i + 1]);
    if (element.vr !== 'SQ' || !Number.isInteger(index)) return undefined;
    current = (element.Value ?? [])[index] as DcmjsDataset | undefined;
  }
  return undefined;
}
