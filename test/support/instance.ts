import { DicomDict, DicomMetaDictionary, type DcmjsDataset, type DcmjsElement } from '../../main/core/dicom/dcmjs.js';
import { gradientPixels, swap16 } from './pixels.js';
import { newUid } from './uid.js';

export const SOP_CLASS_UIDS = {
  ctImage: '1.2.840.10008.5.1.4.1.1.2',
  secondaryCapture: '1.2.840.10008.5.1.4.1.1.7',
  multiFrameGrayscaleByteSc: '1.2.840.10008.5.1.4.1.1.7.2',
  multiFrameGrayscaleWordSc: '1.2.840.10008.5.1.4.1.1.7.3',
} as const;

/** The transfer syntaxes makeInstance writes natively; use makeInstanceInSyntax for the rest. */
export const NATIVE_TRANSFER_SYNTAXES = {
  explicitLittle: '1.2.840.10008.1.2.1',
  implicitLittle: '1.2.840.10008.1.2',
  explicitBig: '1.2.840.10008.1.2.2',
} as const;
export type NativeTransferSyntaxUid = (typeof NATIVE_TRANSFER_SYNTAXES)[keyof typeof NATIVE_TRANSFER_SYNTAXES];

const IMPLEMENTATION_CLASS_UID = '2.25.160654282426674747130468379452738320017';
const IMPLEMENTATION_VERSION_NAME = 'DCMEDGE_TEST';

export interface InstanceOptions {
  studyUid?: string;
  seriesUid?: string;
  sopInstanceUid?: string;
  /** Default CT Image Storage. */
  sopClassUid?: string;
  frameOfReferenceUid?: string;
  patientName?: string;
  patientId?: string;
  patientBirthDate?: string;
  patientSex?: string;
  studyDate?: string;
  studyTime?: string;
  accession?: string;
  studyDescription?: string;
  seriesDescription?: string;
  /** Default 'CT' for CT Image Storage, otherwise 'OT'. */
  modality?: string;
  seriesNumber?: number;
  instanceNumber?: number;
  rows?: number;
  columns?: number;
  frames?: number;
  /** 16 (12 bits stored, default) or 8. */
  bitsAllocated?: 8 | 16;
  /**
   * Text is always written as UTF-8 (a dcmjs limitation), so non-ASCII values need 'ISO_IR 192';
   * it is set automatically when this is left out and a value is non-ASCII.
   */
  specificCharacterSet?: string;
  transferSyntax?: NativeTransferSyntaxUid;
  /** Leaves SOP Instance UID out of both the data set and the meta header. */
  omitSopInstanceUid?: boolean;
  /**
   * Extra or overriding attributes: dcmjs keywords with naturalized values (e.g. { BodyPartExamined: 'HEAD' }),
   * or 8-hex-digit tags with { vr, Value } (e.g. private tags). A value of undefined removes the attribute.
   */
  extra?: Record<string, unknown>;
}

const HEX_TAG = /^[0-9A-Fa-f]{8}$/;

function toArrayBuffer(bytes: Buffer): ArrayBuffer {
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
}

function imageModuleAttributes(o: InstanceOptions, sopClassUid: string, frames: number): Record<string, unknown> {
  const is16 = (o.bitsAllocated ?? 16) === 16;
  const isCt = sopClassUid === SOP_CLASS_UIDS.ctImage;
  const bitsStored = is16 ? 12 : 8;
  const attrs: Record<string, unknown> = {
    SamplesPerPixel: 1,
    PhotometricInterpretation: 'MONOCHROME2',
    Rows: o.rows ?? 64,
    Columns: o.columns ?? 64,
    BitsAllocated: is16 ? 16 : 8,
    BitsStored: bitsStored,
    HighBit: bitsStored - 1,
    PixelRepresentation: 0,
    // Soft-tissue window for CT (stored 0..4095 maps to -1024..3071 HU); full range otherwise.
    WindowCenter: isCt && is16 ? '40' : String(2 ** (bitsStored - 1)),
    WindowWidth: isCt && is16 ? '400' : String(2 ** bitsStored),
  };
  if (isCt) {
    const position = o.instanceNumber ?? 1;
    Object.assign(attrs, {
      ImageType: ['ORIGINAL', 'PRIMARY', 'AXIAL'],
      KVP: '120',
      SliceThickness: '1',
      PixelSpacing: ['0.5', '0.5'],
      ImagePositionPatient: ['0', '0', String(position)],
      ImageOrientationPatient: ['1', '0', '0', '0', '1', '0'],
      SliceLocation: String(position),
      FrameOfReferenceUID: o.frameOfReferenceUid ?? newUid(),
      PositionReferenceIndicator: '',
      RescaleIntercept: is16 ? '-1024' : '0',
      RescaleSlope: '1',
      RescaleType: 'HU',
    });
  } else {
    Object.assign(attrs, { ImageType: ['DERIVED', 'SECONDARY'], ConversionType: 'WSD', PatientOrientation: '' });
  }
  if (frames > 1) {
    Object.assign(attrs, { NumberOfFrames: String(frames), FrameIncrementPointer: 0x00181063, FrameTime: '100' });
  }
  return attrs;
}

function hasNonAscii(dataset: Record<string, unknown>): boolean {
  return Object.values(dataset).some((v) =>
    (Array.isArray(v) ? v : [v]).some((x) => typeof x === 'string' && /[^\x00-\x7f]/.test(x)),
  );
}

/** A DICOM Part 10 instance with a gradient image, built in memory (no network, no tools). */
export function makeInstance(o: InstanceOptions = {}): Buffer {
  const sopClassUid = o.sopClassUid ?? SOP_CLASS_UIDS.ctImage;
  const sopInstanceUid = o.sopInstanceUid ?? newUid();
  const transferSyntax = o.transferSyntax ?? NATIVE_TRANSFER_SYNTAXES.explicitLittle;
  if (!Object.values(NATIVE_TRANSFER_SYNTAXES).includes(transferSyntax)) {
    throw new Error(`makeInstance cannot write transfer syntax ${transferSyntax}; use makeInstanceInSyntax`);
  }
  const frames = o.frames ?? 1;
  const bitsAllocated = o.bitsAllocated ?? 16;
  const studyDate = o.studyDate ?? '20240115';
  const studyTime = o.studyTime ?? '101500';

  const natural: Record<string, unknown> = {
    ...(o.specificCharacterSet ? { SpecificCharacterSet: o.specificCharacterSet } : {}),
    SOPClassUID: sopClassUid,
    ...(o.omitSopInstanceUid ? {} : { SOPInstanceUID: sopInstanceUid }),
    StudyDate: studyDate,
    SeriesDate: studyDate,
    ContentDate: studyDate,
    StudyTime: studyTime,
    SeriesTime: studyTime,
    ContentTime: studyTime,
    AccessionNumber: o.accession ?? 'ACC0001',
    Modality: o.modality ?? (sopClassUid === SOP_CLASS_UIDS.ctImage ? 'CT' : 'OT'),
    Manufacturer: 'DICOM Edge test fixtures',
    ReferringPhysicianName: '',
    StudyDescription: o.studyDescription ?? 'Test study',
    SeriesDescription: o.seriesDescription ?? 'Test series',
    PatientName: o.patientName ?? 'Test^Patient',
    PatientID: o.patientId ?? 'TEST0001',
    PatientBirthDate: o.patientBirthDate ?? '19700101',
    PatientSex: o.patientSex ?? 'O',
    StudyInstanceUID: o.studyUid ?? newUid(),
    SeriesInstanceUID: o.seriesUid ?? newUid(),
    StudyID: '1',
    SeriesNumber: String(o.seriesNumber ?? 1),
    InstanceNumber: String(o.instanceNumber ?? 1),
    ...imageModuleAttributes(o, sopClassUid, frames),
  };
  const tagExtras: Array<[string, unknown]> = [];
  for (const [key, value] of Object.entries(o.extra ?? {})) {
    if (HEX_TAG.test(key)) tagExtras.push([key.toUpperCase(), value]);
    else if (value === undefined) delete natural[key];
    else natural[key] = value;
  }
  if (hasNonAscii(natural)) {
    if (!o.specificCharacterSet) natural.SpecificCharacterSet = 'ISO_IR 192';
    else if (o.specificCharacterSet !== 'ISO_IR 192') {
      throw new Error(
        `makeInstance writes text as UTF-8 but specificCharacterSet is '${o.specificCharacterSet}'; use 'ISO_IR 192' for non-ASCII values`,
      );
    }
  }

  const rows = Number(natural.Rows);
  const columns = Number(natural.Columns);
  let pixels = gradientPixels({ rows, columns, frames, bitsAllocated, bitsStored: Number(natural.BitsStored) });
  if (transferSyntax === NATIVE_TRANSFER_SYNTAXES.explicitBig && bitsAllocated === 16) pixels = swap16(pixels);
  natural.PixelData = [toArrayBuffer(pixels)];
  natural._vrMap = { PixelData: bitsAllocated === 16 ? 'OW' : 'OB' };

  const meta = DicomMetaDictionary.denaturalizeDataset({
    FileMetaInformationVersion: new Uint8Array([0, 1]).buffer,
    MediaStorageSOPClassUID: sopClassUid,
    ...(o.omitSopInstanceUid ? {} : { MediaStorageSOPInstanceUID: sopInstanceUid }),
    TransferSyntaxUID: transferSyntax,
    ImplementationClassUID: IMPLEMENTATION_CLASS_UID,
    ImplementationVersionName: IMPLEMENTATION_VERSION_NAME,
  });
  const dataset: DcmjsDataset = DicomMetaDictionary.denaturalizeDataset(natural);
  for (const [tag, element] of tagExtras) {
    if (element === undefined) delete dataset[tag];
    else dataset[tag] = element as DcmjsElement;
  }
  const dict = new DicomDict(meta);
  dict.dict = dataset;
  return Buffer.from(dict.write());
}

/** A multi-frame grayscale secondary capture instance (10 frames unless told otherwise). */
export function makeMultiFrame(o: InstanceOptions = {}): Buffer {
  const byte = o.bitsAllocated === 8;
  return makeInstance({
    sopClassUid: byte ? SOP_CLASS_UIDS.multiFrameGrayscaleByteSc : SOP_CLASS_UIDS.multiFrameGrayscaleWordSc,
    ...o,
    frames: o.frames ?? 10,
  });
}
