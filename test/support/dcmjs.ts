import { createRequire } from 'node:module';

// dcmjs ships no type declarations; loading it through require keeps a narrow local type
// here instead of an ambient `declare module 'dcmjs'` that could clash with one elsewhere.

/** One attribute in dcmjs' denaturalized (DICOM JSON like) form. */
export interface DcmjsElement {
  vr: string;
  Value?: unknown[];
}

export type DcmjsDataset = Record<string, DcmjsElement>;

interface DcmjsDicomDict {
  dict: DcmjsDataset;
  write(options?: { allowInvalidVRLength?: boolean }): ArrayBuffer;
}

interface Dcmjs {
  data: {
    DicomDict: new (meta: DcmjsDataset) => DcmjsDicomDict;
    DicomMetaDictionary: {
      denaturalizeDataset(dataset: Record<string, unknown>): DcmjsDataset;
    };
  };
}

export const dcmjs = createRequire(import.meta.url)('dcmjs') as Dcmjs;
