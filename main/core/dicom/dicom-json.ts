/**
 * DICOM JSON (PS3.18 F.2) objects from keyword→value maps, such as the archive's query matches.
 * PN becomes {Alphabetic, Ideographic, Phonetic}; IS, DS and the binary number VRs become JSON numbers;
 * strings with backslashes become several values (ModalitiesInStudy 'CT\MR' → ['CT', 'MR']).
 */
import type { DicomJson, DicomJsonElement, DicomJsonValue, PersonNameJson } from './json-model.js';
import { attributeByKeyword } from './keywords.js';

export type KeywordValue = string | number | null | undefined | readonly (string | number | null)[];

/** Tag and VR of an attribute outside the query table (e.g. RetrieveURL: `entryOf('RetrieveURL')`). */
export interface ExtraAttribute {
  tag: string;
  vr: string;
}

const NUMBER_VRS = new Set(['IS', 'DS', 'US', 'UL', 'SS', 'SL', 'FL', 'FD', 'SV', 'UV']);
const SINGLE_VALUED_TEXT_VRS = new Set(['LT', 'ST', 'UT', 'UR']);

export class UnknownAttributeError extends Error {
  constructor(readonly keyword: string) {
    super(`no tag and VR known for attribute ${JSON.stringify(keyword)}`);
    this.name = 'UnknownAttributeError';
  }
}

/**
 * Builds a DICOM JSON object sorted by tag. `undefined` values are left out; null and '' give an element
 * with no Value (present but empty, as PS3.18 F.2.5 writes a zero-length attribute).
 */
export function toDicomJson(values: Readonly<Record<string, KeywordValue>>, extra: Readonly<Record<string, ExtraAttribute>> = {}): DicomJson {
  const elements: [string, DicomJsonElement][] = [];
  for (const [keyword, value] of Object.entries(values)) {
    if (value === undefined) continue;
    const attribute = attributeByKeyword(keyword) ?? extra[keyword];
    if (!attribute) throw new UnknownAttributeError(keyword);
    elements.push([attribute.tag.toUpperCase(), dicomJsonElement(attribute.vr, value)]);
  }
  elements.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return Object.fromEntries(elements);
}

function dicomJsonElement(vr: string, value: KeywordValue): DicomJsonElement {
  const items = splitValues(vr, value);
  const converted = items.map((item) => convertValue(vr, item));
  return converted.length === 0 || converted.every((v) => v === null) ? { vr } : { vr, Value: converted };
}

function splitValues(vr: string, value: KeywordValue): (string | number | null)[] {
  if (value === null || value === undefined) return [];
  if (Array.isArray(value)) return [...(value as (string | number | null)[])];
  if (typeof value === 'number') return [value];
  const text = value as string;
  if (text === '') return [];
  return SINGLE_VALUED_TEXT_VRS.has(vr) ? [text] : text.split('\\');
}

function convertValue(vr: string, item: string | number | null): DicomJsonValue {
  if (item === null) return null;
  if (NUMBER_VRS.has(vr)) {
    if (typeof item === 'number') return item;
    const trimmed = item.trim();
    if (trimmed === '') return null;
    const number = Number(trimmed);
    return Number.isFinite(number) ? number : trimmed;
  }
  const text = String(item);
  if (vr === 'PN') return personName(text);
  if (text === '') return null;
  return text;
}

function personName(text: string): PersonNameJson | null {
  if (text === '') return null;
  const [alphabetic, ideographic, phonetic] = text.split('=');
  const name: PersonNameJson = {};
  if (alphabetic) name.Alphabetic = alphabetic;
  if (ideographic) name.Ideographic = ideographic;
  if (phonetic) name.Phonetic = phonetic;
  return name;
}
