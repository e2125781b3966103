// WADO-RS metadata of the Azure DICOM double: an instance's data set as DICOM JSON (PS3.18 F.2), read with
// dcmjs up to the pixel data. The service leaves bulk data out of metadata, so binary VRs are not returned.
import { createRequire } from 'node:module';

interface DcmjsElement {
  vr: string;
  Value?: unknown[];
}
type DcmjsDataset = Record<string, DcmjsElement>;
interface Dcmjs {
  data: {
    DicomMessage: {
      readFile(buffer: ArrayBuffer, options?: { ignoreErrors?: boolean; untilTag?: string | null; includeUntilTagValue?: boolean }): {
        meta: DcmjsDataset;
        dict: DcmjsDataset;
      };
    };
  };
}
const dcmjs = createRequire(import.meta.url)('dcmjs') as Dcmjs;

const BINARY_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'UN', 'ox']);

export type DicomJsonDataset = Record<string, { vr: string; Value?: unknown[] }>;

/** The instance's attributes as DICOM JSON, with its Transfer Syntax UID and without bulk data. */
export function instanceMetadata(bytes: Buffer): DicomJsonDataset {
  const copy = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  const { meta, dict } = dcmjs.data.DicomMessage.readFile(copy, { ignoreErrors: true, untilTag: '7FE00010', includeUntilTagValue: false });
  const out = toJson(dict);
  const syntax = meta['00020010'];
  if (syntax) out['00020010'] = { vr: 'UI', Value: syntax.Value };
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => (a < b ? -1 : 1)));
}

function toJson(dataset: DcmjsDataset): DicomJsonDataset {
  const out: DicomJsonDataset = {};
  for (const [tag, element] of Object.entries(dataset)) {
    const upper = tag.toUpperCase();
    if (upper.endsWith('0000') || BINARY_VRS.has(element.vr) || upper === '7FE00010') continue;
    const vr = element.vr === 'xs' ? 'US' : element.vr;
    const values = element.Value ?? [];
    if (vr === 'SQ') {
      out[upper] = values.length > 0 ? { vr, Value: (values as DcmjsDataset[]).map(toJson) } : { vr };
      continue;
    }
    const cleaned = values.map((v) => (v === '' || v === undefined ? null : typeof v === 'bigint' ? Number(v) : v));
    out[upper] = cleaned.length === 0 || cleaned.every((v) => v === null) ? { vr } : { vr, Value: cleaned };
  }
  return out;
}
