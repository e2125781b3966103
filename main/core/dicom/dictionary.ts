/**
 * The DICOM data dictionary (PS3.6): keyword → tag, VR and VM, as dcmjs keeps it up to date with the
 * standard. Every tag our code names comes from here, by keyword, so no module spells a tag by hand.
 * Tags are eight upper-case hex digits, group then element, as DICOM JSON writes them: '00100010'.
 */
import { DicomMetaDictionary } from './dcmjs.js';

export interface DictionaryEntry {
  keyword: string;
  tag: string;
  /** As PS3.6 gives it; dcmjs writes the VRs that depend on context in lower case ('ox', 'xs'). */
  vr: string;
  /** Value multiplicity: '1', '1-n', '2-2n', … */
  vm: string;
}

export class UnknownKeywordError extends Error {
  constructor(readonly keyword: string) {
    super(`${JSON.stringify(keyword)} is not a keyword of the DICOM data dictionary`);
    this.name = 'UnknownKeywordError';
  }
}

const entries = new Map<string, DictionaryEntry>();

/** The dictionary's entry for a keyword, or undefined when there is none. */
function findEntry(keyword: string): DictionaryEntry | undefined {
  let entry = entries.get(keyword);
  if (entry) return entry;
  const found = Object.hasOwn(DicomMetaDictionary.nameMap, keyword) ? DicomMetaDictionary.nameMap[keyword] : undefined;
  if (!found) return undefined;
  const tag = found.tag.replace(/[(),]/g, '').toUpperCase();
  // Repeating groups ('60xx') have no single tag; nothing of ours names one.
  if (!/^[0-9A-F]{8}$/.test(tag)) return undefined;
  entry = Object.freeze({ keyword, tag, vr: found.vr, vm: found.vm });
  entries.set(keyword, entry);
  return entry;
}

/** The dictionary's entry for a keyword; throws UnknownKeywordError for a misspelt one. */
export function entryOf(keyword: string): DictionaryEntry {
  const entry = findEntry(keyword);
  if (!entry) throw new UnknownKeywordError(keyword);
  return entry;
}

/** The tag of a keyword, '00100010' for PatientName. */
export function tagOf(keyword: string): string {
  return entryOf(keyword).tag;
}

/**
 * The tags of several keywords as one object, for modules that name a few attributes:
 * `const TAG = tagsOf('PatientName', 'StudyDate')` gives `TAG.PatientName === '00100010'`.
 */
export function tagsOf<K extends string>(...keywords: K[]): Readonly<Record<K, string>> {
  return Object.freeze(Object.fromEntries(keywords.map((keyword) => [keyword, tagOf(keyword)])) as Record<K, string>);
}

/** The keyword of a public tag ('00100010' → 'PatientName'); undefined for private, retired-group or unknown tags. */
export function keywordOfTag(tag: string): string | undefined {
  if (!/^[0-9A-Fa-f]{8}$/.test(tag)) return undefined;
  const upper = tag.toUpperCase();
  const found = DicomMetaDictionary.dictionary[`(${upper.slice(0, 4)},${upper.slice(4)})`];
  // dcmjs names retired attributes 'RETIRED_<keyword>'; PS3.6 gives them the keyword alone.
  return found?.name.replace(/^RETIRED_/, '');
}

/**
 * The tag a query parameter names: a keyword of the dictionary, or a tag as eight hex digits (any case);
 * undefined for anything else.
 */
export function tagNamed(keywordOrTag: string): string | undefined {
  if (/^[0-9A-Fa-f]{8}$/.test(keywordOrTag)) return keywordOrTag.toUpperCase();
  return findEntry(keywordOrTag)?.tag;
}
