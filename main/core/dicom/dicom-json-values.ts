/**
 * Reading values out of DICOM JSON (PS3.18 F.2) datasets, as QIDO-RS and WADO-RS metadata answer them:
 * the inverse of dicom-json.ts for the attributes the index keeps. Tags are eight hex digits in either case.
 */
import type { DicomJson, PersonNameJson } from './json-model.js';

/** A dataset as received: values not yet trusted to have the shapes PS3.18 gives them. */
export type ReceivedDicomJson = Record<string, { vr?: string; Value?: unknown[] } | undefined>;

function element(dataset: ReceivedDicomJson | DicomJson, tag: string): { vr?: string; Value?: unknown[] } | undefined {
  const record = dataset as ReceivedDicomJson;
  return record[tag] ?? record[tag.toUpperCase()] ?? record[tag.toLowerCase()];
}

function personName(value: PersonNameJson): string {
  // Stored as the DICOM string form: alphabetic=ideographic=phonetic, without trailing empty groups.
  return [value.Alphabetic ?? '', value.Ideographic ?? '', value.Phonetic ?? ''].join('=').replace(/=+$/, '');
}

function text(value: unknown): string | undefined {
  if (value === null || value === undefined) return undefined;
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'bigint') return String(value);
  if (typeof value === 'object' && !Array.isArray(value)) return personName(value as PersonNameJson);
  return undefined;
}

/** Every value of an attribute as text (PN in its DICOM string form); [] when absent or empty. */
export function jsonStrings(dataset: ReceivedDicomJson | DicomJson, tag: string): string[] {
  const values = element(dataset, tag)?.Value;
  if (!Array.isArray(values)) return [];
  return values.map(text).filter((v): v is string => v !== undefined && v !== '');
}

/** The attribute as one string, several values joined by backslashes; '' when absent or empty. */
export function jsonString(dataset: ReceivedDicomJson | DicomJson, tag: string): string {
  return jsonStrings(dataset, tag).join('\\');
}

/** The first value as an integer; null when absent, empty or not an integer. */
export function jsonInteger(dataset: ReceivedDicomJson | DicomJson, tag: string): number | null {
  const first = element(dataset, tag)?.Value?.[0];
  const number = typeof first === 'number' ? first : typeof first === 'string' && first.trim() !== '' ? Number(first.trim()) : NaN;
  return Number.isSafeInteger(number) ? number : null;
}
