import { createRequire } from 'node:module';

// dcmjs ships no type declarations; this narrow local type covers what web/ uses.
export interface DcmjsElement {
  vr: string;
  Value?: unknown[];
  InlineBinary?: string;
  BulkDataURI?: string;
}
export type DcmjsDataset = Record<string, DcmjsElement>;

export interface DcmjsDicomDict {
  meta: DcmjsDataset;
  dict: DcmjsDataset;
  write(options?: { allowInvalidVRLength?: boolean; fragmentMultiframe?: boolean }): ArrayBuffer;
}

interface Dcmjs {
  data: {
    DicomMessage: {
      readFile(buffer: ArrayBuffer, options?: { ignoreErrors?: boolean; untilTag?: string | null; includeUntilTagValue?: boolean }): DcmjsDicomDict;
    };
  };
  log: { setLevel(level: string): void };
}

const dcmjs = createRequire(import.meta.url)('dcmjs') as Dcmjs;
// dcmjs warns on stderr about every odd VR; our own logs say what matters.
dcmjs.log.setLevel('error');

function toArrayBuffer(bytes: Buffer): ArrayBuffer {
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
}

export function readDicom(bytes: Buffer): DcmjsDicomDict {
  return dcmjs.data.DicomMessage.readFile(toArrayBuffer(bytes), { ignoreErrors: true, untilTag: null, includeUntilTagValue: false });
}
