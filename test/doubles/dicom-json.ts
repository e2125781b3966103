// DICOM JSON (PS3.18 F) bodies the Azure DICOM service returns: the STOW-RS store response and
// QIDO-RS result objects.

export type DicomJson = Record<string, { vr: string; Value?: unknown[] }>;

export const Tag = {
  RetrieveURL: '00081190',
  FailedSOPSequence: '00081198',
  ReferencedSOPSequence: '00081199',
  ReferencedSOPClassUID: '00081150',
  ReferencedSOPInstanceUID: '00081155',
  FailureReason: '00081197',
  WarningReason: '00081196',
  SOPClassUID: '00080016',
  SOPInstanceUID: '00080018',
  StudyDate: '00080020',
  AccessionNumber: '00080050',
  Modality: '00080060',
  PatientName: '00100010',
  PatientID: '00100020',
  StudyInstanceUID: '0020000D',
  SeriesInstanceUID: '0020000E',
} as const;

/** Failure reasons (0008,1197) from the Azure DICOM conformance statement. */
export const FailureReason = {
  ProcessingFailure: 272,
  ValidationFailure: 43264,
  MismatchStudyInstanceUid: 43265,
  SopInstanceAlreadyExists: 45070,
  PendingSopInstance: 45071,
} as const;

/** Warning reasons (0008,1196) from the Azure DICOM conformance statement. */
export const WarningReason = {
  ValidationWarnings: 1,
  DatasetDoesNotMatchSOPClass: 45063,
} as const;

const ui = (value: string) => ({ vr: 'UI', Value: [value] });
const us = (value: number) => ({ vr: 'US', Value: [value] });
const ur = (value: string) => ({ vr: 'UR', Value: [value] });

export interface StoredItem {
  sopClassUid?: string;
  sopUid: string;
  retrieveUrl: string;
  warningReason?: number;
}

export interface FailedItem {
  sopClassUid?: string;
  sopUid?: string;
  failureReason: number;
}

/** The dataset of a store response: RetrieveURL (study) only if some instance was stored. */
export function storeResponse(stored: StoredItem[], failed: FailedItem[], studyRetrieveUrl?: string): DicomJson {
  const body: DicomJson = {};
  if (studyRetrieveUrl && stored.length) body[Tag.RetrieveURL] = ur(studyRetrieveUrl);
  if (failed.length) {
    body[Tag.FailedSOPSequence] = {
      vr: 'SQ',
      Value: failed.map((f) => ({
        ...(f.sopClassUid ? { [Tag.ReferencedSOPClassUID]: ui(f.sopClassUid) } : {}),
        ...(f.sopUid ? { [Tag.ReferencedSOPInstanceUID]: ui(f.sopUid) } : {}),
        [Tag.FailureReason]: us(f.failureReason),
      })),
    };
  }
  if (stored.length) {
    body[Tag.ReferencedSOPSequence] = {
      vr: 'SQ',
      Value: stored.map((s) => ({
        ...(s.sopClassUid ? { [Tag.ReferencedSOPClassUID]: ui(s.sopClassUid) } : {}),
        [Tag.ReferencedSOPInstanceUID]: ui(s.sopUid),
        [Tag.RetrieveURL]: ur(s.retrieveUrl),
        ...(s.warningReason !== undefined ? { [Tag.WarningReason]: us(s.warningReason) } : {}),
      })),
    };
  }
  return body;
}

/** A QIDO-RS result object from whichever of the given values are present. */
export function qidoObject(values: Partial<Record<keyof typeof Tag, string>>, vrs: Partial<Record<keyof typeof Tag, string>> = {}): DicomJson {
  const out: DicomJson = {};
  for (const [keyword, value] of Object.entries(values) as Array<[keyof typeof Tag, string | undefined]>) {
    const vr = vrs[keyword] ?? defaultVr(keyword);
    if (value === undefined) out[Tag[keyword]] = { vr };
    else out[Tag[keyword]] = { vr, Value: [vr === 'PN' ? { Alphabetic: value } : value] };
  }
  return out;
}

function defaultVr(keyword: keyof typeof Tag): string {
  switch (keyword) {
    case 'RetrieveURL':
      return 'UR';
    case 'PatientName':
      return 'PN';
    case 'PatientID':
    case 'AccessionNumber':
      return keyword === 'PatientID' ? 'LO' : 'SH';
    case 'StudyDate':
      return 'DA';
    case 'Modality':
      return 'CS';
    default:
      return 'UI';
  }
}

/** Reads a tag's first value from a DICOM JSON object (string or number). */
export function firstValue(obj: DicomJson | undefined, tag: string): unknown {
  return obj?.[tag]?.Value?.[0];
}
