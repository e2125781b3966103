/** Reads a STOW-RS response body (DICOM JSON) into per-instance results. Pure. */
import { tagsOf } from '../dicom/dictionary.js';
import type { DicomJson } from '../dicom/json-model.js';

interface ReferencedInstance {
  sopInstanceUid: string;
  warningReason?: number;
}

interface FailedInstance {
  sopInstanceUid: string;
  failureReason: number;
}

export interface StowResponse {
  referenced: ReferencedInstance[];
  failed: FailedInstance[];
  /** Response-level WarningReason (00081196), when present. */
  warningReason?: number;
}

const TAG = tagsOf('ReferencedSOPSequence', 'FailedSOPSequence', 'FailureReason', 'WarningReason', 'ReferencedSOPInstanceUID');

function firstValue(dataset: DicomJson, tag: string): unknown {
  return dataset[tag]?.Value?.[0];
}

function numberValue(dataset: DicomJson, tag: string): number | undefined {
  const value = firstValue(dataset, tag);
  if (typeof value === 'number' && Number.isFinite(value)) return value;
  if (typeof value === 'string' && /^\d+$/.test(value.trim())) return Number(value.trim());
  return undefined;
}

function items(dataset: DicomJson, tag: string): DicomJson[] {
  const value = dataset[tag]?.Value;
  return Array.isArray(value) ? value.filter((v): v is DicomJson => typeof v === 'object' && v !== null) : [];
}

/**
 * Parses the body text. Returns undefined when there is no usable DICOM JSON (empty, HTML error page, XML);
 * the caller then falls back on the HTTP status alone, and never marks anything delivered on that basis.
 */
export function parseStowResponse(text: string): StowResponse | undefined {
  if (text.trim() === '') return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return undefined;
  }
  // Some servers wrap the dataset in an array.
  const dataset = (Array.isArray(parsed) ? parsed[0] : parsed) as DicomJson | undefined;
  if (typeof dataset !== 'object' || dataset === null) return undefined;
  const referenced: ReferencedInstance[] = [];
  for (const item of items(dataset, TAG.ReferencedSOPSequence)) {
    const uid = firstValue(item, TAG.ReferencedSOPInstanceUID);
    if (typeof uid !== 'string') continue;
    const warningReason = numberValue(item, TAG.WarningReason);
    referenced.push(warningReason === undefined ? { sopInstanceUid: uid } : { sopInstanceUid: uid, warningReason });
  }
  const failed: FailedInstance[] = [];
  for (const item of items(dataset, TAG.FailedSOPSequence)) {
    const uid = firstValue(item, TAG.ReferencedSOPInstanceUID);
    if (typeof uid !== 'string') continue;
    failed.push({ sopInstanceUid: uid, failureReason: numberValue(item, TAG.FailureReason) ?? 272 });
  }
  const warningReason = numberValue(dataset, TAG.WarningReason);
  if (referenced.length === 0 && failed.length === 0 && warningReason === undefined) return undefined;
  return warningReason === undefined ? { referenced, failed } : { referenced, failed, warningReason };
}
