// Reads the identifying attributes of one PS3.10 instance with dicom-parser.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const dicomParser = require('dicom-parser') as typeof import('dicom-parser');

export const IMPLICIT_VR_LITTLE_ENDIAN = '1.2.840.10008.1.2';

export interface InstanceInfo {
  studyUid?: string;
  seriesUid?: string;
  sopUid?: string;
  sopClassUid?: string;
  /** true when (0010,0020) is present, even if empty */
  hasPatientId: boolean;
  transferSyntaxUid?: string;
  patientId?: string;
  patientName?: string;
  modality?: string;
  studyDate?: string;
  accessionNumber?: string;
}

/** Throws if the bytes are not a readable PS3.10 file. */
export function readInstanceInfo(bytes: Uint8Array): InstanceInfo {
  const ds = dicomParser.parseDicom(bytes, { untilTag: 'x7fe00010' });
  const text = (tag: string) => {
    const value = ds.string(tag);
    return value === undefined || value === '' ? undefined : value.replace(/\0+$/, '').trim();
  };
  return {
    studyUid: text('x0020000d'),
    seriesUid: text('x0020000e'),
    sopUid: text('x00080018'),
    sopClassUid: text('x00080016'),
    hasPatientId: ds.elements.x00100020 !== undefined,
    transferSyntaxUid: text('x00020010'),
    patientId: text('x00100020'),
    patientName: text('x00100010'),
    modality: text('x00080060'),
    studyDate: text('x00080020'),
    accessionNumber: text('x00080050'),
  };
}

/** A UID as the DICOM service accepts it: 1–64 characters of letters, digits, '.' and '-'. */
export function isValidUid(uid: string | undefined): uid is string {
  return uid !== undefined && /^[0-9A-Za-z.-]{1,64}$/.test(uid);
}
