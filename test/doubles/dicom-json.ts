// DICOM JSON (PS3.18 F) bodies the Azure DICOM service returns: the STOW-RS store response and
// QIDO-RS result objects. Tags and VRs come from the appliance's data dictionary (dcmjs').

import { entryOf, tagsOf } from '../../main/core/dicom/dictionary.js';
import type { DicomJson } from '../../main/core/dicom/json-model.js';

export type { DicomJson };

export const Tag = tagsOf(
  'RetrieveURL', 'FailedSOPSequence', 'ReferencedSOPSequence', 'ReferencedSOPClassUID', 'ReferencedSOPInstanceUID',
  'FailureReason', 'WarningReason', 'SOPClassUID', 'SOPInstanceUID', 'StudyDate', 'AccessionNumber', 'Modality',
  'PatientName', 'PatientID', 'StudyInstanceUID', 'SeriesInstanceUID',
);

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
  return entryOf(keyword).vr;
}

/** Reads a tag's first value from a DICOM JSON object (string or number). */
export function firstValue(obj: DicomJson | undefined, tag: string): unknown {
  return obj?.[tag]?.Value?.[0];
}
