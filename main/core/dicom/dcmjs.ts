import { createRequire } from 'node:module';

// The one door to dcmjs. It ships no type declarations; these narrow local types cover what we use of it,
// loaded through require rather than an ambient `declare module 'dcmjs'` that could clash with another.

/** One attribute of a dcmjs data set (denaturalized: DICOM JSON-like, tags as keys). */
export interface DcmjsElement {
  vr: string;
  Value?: unknown[];
  InlineBinary?: string;
  BulkDataURI?: string;
  /** The values as read, before dcmjs' own rewriting (it declares every Specific Character Set as ISO_IR 192). */
  _rawValue?: unknown[];
}
export type DcmjsDataset = Record<string, DcmjsElement>;

export interface DcmjsWriteOptions {
  allowInvalidVRLength?: boolean;
  /** false: encapsulated Pixel Data keeps one fragment per frame. */
  fragmentMultiframe?: boolean;
}

export interface DcmjsDicomDict {
  meta: DcmjsDataset;
  dict: DcmjsDataset;
  write(options?: DcmjsWriteOptions): ArrayBuffer;
}

interface DcmjsWriteStream {
  getBuffer(): ArrayBuffer;
}

/** An entry of dcmjs' data dictionary (PS3.6): tag as '(0010,0010)', keyword as `name`. */
interface DcmjsDictionaryEntry {
  tag: string;
  vr: string;
  vm: string;
  name: string;
}

interface Dcmjs {
  data: {
    DicomMessage: {
      readFile(buffer: ArrayBuffer, options?: { ignoreErrors?: boolean; untilTag?: string | null; includeUntilTagValue?: boolean }): DcmjsDicomDict;
      /** Writes the elements of a data set in the transfer syntax `syntax` to `stream`. */
      write(dataset: DcmjsDataset, stream: DcmjsWriteStream, syntax: string, options?: DcmjsWriteOptions): number;
    };
    WriteBufferStream: new (defaultSize: number, littleEndian: boolean) => DcmjsWriteStream;
    DicomDict: new (meta: DcmjsDataset) => DcmjsDicomDict;
    DicomMetaDictionary: {
      /** Keyword → entry, every standard attribute. */
      nameMap: Readonly<Record<string, DcmjsDictionaryEntry | undefined>>;
      /** '(gggg,eeee)' → entry, every standard attribute. */
      dictionary: Readonly<Record<string, DcmjsDictionaryEntry | undefined>>;
      /** Naturalized (keyword → value) to denaturalized (tag → element). */
      denaturalizeDataset(dataset: Record<string, unknown>): DcmjsDataset;
    };
  };
  log: { setLevel(level: string): void };
}

const dcmjs = createRequire(import.meta.url)('dcmjs') as Dcmjs;
// dcmjs warns on stderr about every odd VR; our own logs say what matters.
dcmjs.log.setLevel('error');

export const { DicomDict, DicomMetaDictionary } = dcmjs.data;

function toArrayBuffer(bytes: Buffer): ArrayBuffer {
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
}

export function readDicom(bytes: Buffer): DcmjsDicomDict {
  return dcmjs.data.DicomMessage.readFile(toArrayBuffer(bytes), { ignoreErrors: true, untilTag: null, includeUntilTagValue: false });
}

/** A data set alone, no preamble or File Meta Information, in the transfer syntax `syntax`. */
export function writeDataSet(dataset: DcmjsDataset, syntax: string, options: DcmjsWriteOptions = {}): Buffer {
  // As DicomDict.write writes its data set: a stream that grows, little endian unless the syntax says otherwise.
  const stream = new dcmjs.data.WriteBufferStream(4096, true);
  dcmjs.data.DicomMessage.write(dataset, stream, syntax, options);
  return Buffer.from(stream.getBuffer());
}
