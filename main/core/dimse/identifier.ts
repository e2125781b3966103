import { lookupAttribute, UNIQUE_KEYS, type AttributeDefinition, type QueryLevel } from '../dicom/keywords.js';
import type { RawDataSet } from '../dicom/raw-data-set.js';
import type { QueryMatch } from '../store/query-types.js';

/** A naturalized dcmjs value (string, number, PN object, array of those) in its DICOM string form. */
export function toKeyString(value: unknown): string {
  if (value === undefined || value === null) return '';
  if (Array.isArray(value)) return value.map(toKeyString).join('\\');
  if (typeof value === 'object') {
    if (value instanceof ArrayBuffer || ArrayBuffer.isView(value)) return '';
    const pn = value as { Alphabetic?: string; Ideographic?: string; Phonetic?: string };
    return [pn.Alphabetic ?? '', pn.Ideographic ?? '', pn.Phonetic ?? ''].join('=').replace(/=+$/, '');
  }
  return String(value).replace(/[\0 ]+$/, '').replace(/^ +/, '');
}

const INFORMATION_MODELS = {
  patientRoot: ['PATIENT', 'STUDY', 'SERIES', 'IMAGE'],
  studyRoot: ['STUDY', 'SERIES', 'IMAGE'],
} as const satisfies Record<string, readonly QueryLevel[]>;

export type InformationModel = keyof typeof INFORMATION_MODELS;

export class IdentifierError extends Error {
  override name = 'IdentifierError';
}

export interface ParsedIdentifier {
  level: QueryLevel;
  /** Matching keys by keyword, in DICOM string form, for the query engine. */
  keys: Record<string, string>;
  /** Keywords the SCU asked for (known to the archive), in request order. */
  requested: AttributeDefinition[];
}

const CONTROL = new Set(['QueryRetrieveLevel', 'SpecificCharacterSet', 'RetrieveAETitle', 'InstanceAvailability']);

/** VRs whose text is decoded from the received bytes, under the identifier's Specific Character Set. */
const TEXT_VRS = new Set(['AE', 'CS', 'LO', 'PN', 'SH']);

/**
 * Reads a C-FIND/C-MOVE/C-GET identifier; attributes the archive does not hold are left out. With the
 * identifier's bytes (`raw`), a zero-length value is universal matching whatever its VR (PS3.4 C.2.2.2.3),
 * and text keys are decoded under every character set declared, code extensions included.
 */
export function parseIdentifier(elements: Record<string, unknown>, model: InformationModel, raw?: RawDataSet): ParsedIdentifier {
  const level = toKeyString(elements.QueryRetrieveLevel).toUpperCase() as QueryLevel;
  const levels: readonly QueryLevel[] = INFORMATION_MODELS[model];
  if (!levels.includes(level)) {
    throw new IdentifierError(`QueryRetrieveLevel ${JSON.stringify(level)} is not one of ${levels.join(', ')} in the ${model} model`);
  }
  const keys: Record<string, string> = {};
  const requested: AttributeDefinition[] = [];
  for (const [name, value] of Object.entries(elements)) {
    if (name.startsWith('_')) continue; // dcmjs bookkeeping (_vrMap)
    const attribute = lookupAttribute(name);
    if (!attribute) continue;
    if (!CONTROL.has(attribute.keyword)) keys[attribute.keyword] = keyValue(attribute, value, raw);
    requested.push(attribute);
  }
  return { level, keys, requested };
}

function keyValue(attribute: AttributeDefinition, value: unknown, raw: RawDataSet | undefined): string {
  if (raw?.isEmpty(attribute.keyword)) return '';
  const text = TEXT_VRS.has(attribute.vr) ? raw?.text(attribute.keyword, attribute.vr) : undefined;
  return text ?? toKeyString(value);
}

/** Unique keys of the query level and the levels above it within the model (PS3.4 C.4.1.2.3). */
export function uniqueKeys(model: InformationModel, level: QueryLevel): string[] {
  const levels: readonly QueryLevel[] = INFORMATION_MODELS[model];
  return levels.slice(0, levels.indexOf(level) + 1).map((l) => UNIQUE_KEYS[l]);
}

const NON_ASCII = /[^\x00-\x7f]/;

/**
 * A C-FIND response identifier: the requested keys and the unique keys, with values from the match,
 * naturalized for dcmjs. Text goes out as UTF-8 (what dcmjs writes), declared as ISO_IR 192 when any
 * value needs it.
 */
export function responseIdentifier(
  parsed: ParsedIdentifier, model: InformationModel, match: QueryMatch, aeTitle: string,
): Record<string, unknown> {
  const out: Record<string, unknown> = { QueryRetrieveLevel: parsed.level };
  let needsUtf8 = false;
  const keywords = new Set([...parsed.requested.map((a) => a.keyword), ...uniqueKeys(model, parsed.level)]);
  for (const keyword of keywords) {
    if (CONTROL.has(keyword)) continue;
    const attribute = lookupAttribute(keyword);
    if (!attribute) continue;
    const value = match[keyword];
    if (typeof value === 'string' && NON_ASCII.test(value)) needsUtf8 = true;
    out[keyword] = naturalized(attribute, value);
  }
  // Where to retrieve from and how soon (PS3.4 C.4.1.1.3.2), whether asked for or not: a workstation
  // can tell a NEARLINE (cloud-only) match from a local one without knowing to ask.
  out.RetrieveAETitle = aeTitle;
  if (match.InstanceAvailability) out.InstanceAvailability = match.InstanceAvailability;
  out.SpecificCharacterSet = needsUtf8 ? 'ISO_IR 192' : '';
  return out;
}

function naturalized(attribute: AttributeDefinition, value: string | number | null | undefined): unknown {
  if (value === null || value === undefined || value === '') {
    return attribute.vr === 'PN' || attribute.vr === 'US' || attribute.vr === 'UL' ? [] : '';
  }
  if (attribute.vr === 'PN') {
    const [alphabetic = '', ideographic, phonetic] = String(value).split('=');
    return [{ Alphabetic: alphabetic, ...(ideographic ? { Ideographic: ideographic } : {}), ...(phonetic ? { Phonetic: phonetic } : {}) }];
  }
  if (attribute.multiValued) return String(value).split('\\');
  if (attribute.vr === 'US' || attribute.vr === 'UL') return Number(value);
  if (attribute.vr === 'IS') return String(value);
  return String(value);
}
