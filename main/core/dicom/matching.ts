/**
 * Attribute matching for C-FIND and QIDO-RS (PS3.4 C.2.2.2, PS3.18 8.3.4): parses a matching key value into
 * a typed matcher, and turns that matcher into a parameterised SQL condition or matches a value in memory.
 * Both forms give the same answers; the SQL form never interpolates a value.
 *
 * Rules chosen where the standard leaves room:
 * - PN matching (single value, wildcard and fuzzy) is case-insensitive, as most archives do. The folding is
 *   that of SQLite's LIKE and NOCASE: ASCII letters only ('doe' matches 'DOE'; 'ü' does not match 'Ü').
 *   All other VRs match case-sensitively (wildcards use SQLite GLOB for them).
 * - Leading and trailing spaces of a key are insignificant. A key of only '*' is universal matching.
 * - PN keys and stored names compare in one spelling: trailing '^' and '=' delimiters dropped (person-name.ts).
 * - Wildcards are allowed for AE, CS, LO, PN and SH; not for dates, times, UIDs and numbers.
 * - A list of values (backslash-separated) is allowed for UI (PS3.4 C.2.2.2.2; a comma also separates, as
 *   QIDO clients send), and for CS and multi-valued attributes (ModalitiesInStudy `CT\MR` matches a study
 *   whose modalities include CT or MR). An entity matches if it matches any value of the list.
 * - Ranges (DA, TM, DT: `A-B`, `A-`, `-B`) include both ends and never match an empty value. A partial time
 *   covers its whole span: `-10` includes 10:59:59.999999, a single TM `1015` matches 10:15:00 to 10:15:59.999999.
 *   DT offsets (&ZZXX) are ignored when comparing.
 * - Fuzzy matching (QIDO fuzzymatching=true, PN only): every word of the key must be a prefix of some word of
 *   the name, case-insensitively; words are split on '^', ' ' and '='.
 */
import type { Vr } from './keywords.js';
import { canonicalPersonName } from './person-name.js';
import { uidProblem } from './uid.js';

export interface MatchAttribute {
  keyword: string;
  vr: Vr;
  multiValued?: boolean;
}

export class InvalidMatchKeyError extends Error {
  constructor(
    readonly attribute: string,
    readonly value: string,
    readonly problem: string,
  ) {
    super(`${attribute} matching key ${JSON.stringify(value)} ${problem}`);
    this.name = 'InvalidMatchKeyError';
  }
}

type Matcher =
  | { kind: 'universal' }
  | { kind: 'single'; value: string; caseInsensitive: boolean }
  | { kind: 'number'; value: number }
  | { kind: 'wildcard'; pattern: string; caseInsensitive: boolean }
  /** Compared as strings: value >= lower (inclusive), value < upperExclusive; an empty value never matches. */
  | { kind: 'range'; lower?: string; upperExclusive?: string }
  | { kind: 'uid-list'; uids: string[] }
  | { kind: 'any'; items: Matcher[] }
  | { kind: 'fuzzy'; words: string[] };

export interface MatchKey {
  keyword: string;
  vr: Vr;
  /** The key as given. */
  value: string;
  /** The stored value holds several values separated by backslashes; any of them may match. */
  multiValued: boolean;
  matcher: Matcher;
}

export interface SqlCondition {
  sql: string;
  params: (string | number)[];
}

export interface MatchOptions {
  /** QIDO fuzzymatching=true: applies to PN keys. */
  fuzzy?: boolean;
}

const WILDCARD_VRS = new Set<Vr>(['AE', 'CS', 'LO', 'PN', 'SH']);
const LIST_VRS = new Set<Vr>(['AE', 'CS']);
const NUMBER_VRS = new Set<Vr>(['IS', 'US', 'UL']);
const RANGE_VRS = new Set<Vr>(['DA', 'TM', 'DT']);

export function parseMatchKey(attribute: MatchAttribute, value: string, options: MatchOptions = {}): MatchKey {
  const multiValued = attribute.multiValued ?? false;
  const matcher = parseMatcher(attribute, value, multiValued, options);
  return { keyword: attribute.keyword, vr: attribute.vr, value, multiValued, matcher };
}

function parseMatcher(attribute: MatchAttribute, raw: string, multiValued: boolean, options: MatchOptions): Matcher {
  const { keyword, vr } = attribute;
  const invalid = (problem: string) => new InvalidMatchKeyError(keyword, raw, problem);
  // The index keeps person names in one spelling (person-name.ts); keys are read the same way.
  const value = vr === 'PN' ? canonicalPersonName(raw.trim()) : raw.trim();
  if (value === '' || value === '*') return { kind: 'universal' };

  if (vr === 'UI') return parseUidList(value, invalid);
  if (value.includes('\\')) {
    if (!multiValued && !LIST_VRS.has(vr)) throw invalid(`is a list of values, allowed only for UIDs and code strings (${keyword} is ${vr})`);
    const items = value.split('\\').map((item) => item.trim());
    if (items.some((item) => item === '')) throw invalid('has an empty value in its list');
    const matchers = items.map((item) => parseOne(vr, item, invalid, options));
    return matchers.some((m) => m.kind === 'universal') ? { kind: 'universal' } : { kind: 'any', items: matchers };
  }
  return parseOne(vr, value, invalid, options);
}

function parseOne(vr: Vr, value: string, invalid: (problem: string) => Error, options: MatchOptions): Matcher {
  if (value === '*') return { kind: 'universal' };
  const caseInsensitive = vr === 'PN';
  if (vr === 'PN' && options.fuzzy) {
    const words = value.split(/[\^ =]+/).filter((w) => w !== '');
    return words.length === 0 ? { kind: 'universal' } : { kind: 'fuzzy', words };
  }
  if (RANGE_VRS.has(vr)) return parseDateTime(vr as 'DA' | 'TM' | 'DT', value, invalid);
  if (NUMBER_VRS.has(vr)) {
    if (!/^[+-]?\d+$/.test(value)) throw invalid(`is not an integer (${vr} allows single value matching only)`);
    return { kind: 'number', value: Number(value) };
  }
  if (/[*?]/.test(value)) {
    if (!WILDCARD_VRS.has(vr)) throw invalid(`uses a wildcard, which ${vr} does not allow`);
    return { kind: 'wildcard', pattern: value, caseInsensitive };
  }
  return { kind: 'single', value, caseInsensitive };
}

function parseUidList(value: string, invalid: (problem: string) => Error): Matcher {
  const uids = value.split(/[\\,]/).map((uid) => uid.trim());
  for (const uid of uids) {
    const problem = uidProblem(uid);
    if (problem) throw invalid(uids.length > 1 ? `holds a UID ${JSON.stringify(uid)} that ${problem}` : `is not a UID: it ${problem}`);
  }
  return { kind: 'uid-list', uids: [...new Set(uids)] };
}

// ---- dates and times ----

const DA = /^(\d{4})(\d{2})(\d{2})$/;
const TM = /^([01]\d|2[0-3])(?:([0-5]\d)(?:([0-5]\d|60)(?:\.(\d{1,6}))?)?)?$/;
const TM_WITH_COLONS = /^\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?$/;
const DT_BODY = String.raw`\d{4}(?:\d{2}(?:\d{2}(?:\d{2}(?:\d{2}(?:\d{2}(?:\.\d{1,6})?)?)?)?)?)?(?:[+-]\d{4})?`;
const DT = new RegExp(`^${DT_BODY}$`);
const DT_RANGE = new RegExp(`^(${DT_BODY})?-(${DT_BODY})?$`);

function parseDateTime(vr: 'DA' | 'TM' | 'DT', value: string, invalid: (problem: string) => Error): Matcher {
  let lowerText: string | undefined;
  let upperText: string | undefined;
  let isRange = false;
  if (vr === 'DT') {
    // A DT may itself hold '-' in its UTC offset, so split with the grammar rather than on the first '-'.
    if (DT.test(value)) {
      lowerText = upperText = value;
    } else {
      const range = DT_RANGE.exec(value);
      if (!range) throw invalid('is neither a DT value (YYYYMMDDHHMMSS.FFFFFF&ZZXX, shorter allowed) nor a DT range');
      [lowerText, upperText, isRange] = [range[1], range[2], true];
    }
  } else if (value.includes('-')) {
    const parts = value.split('-');
    if (parts.length !== 2) throw invalid(`is not a ${vr} range: expected one '-' between the bounds`);
    [lowerText, upperText, isRange] = [parts[0].trim() || undefined, parts[1].trim() || undefined, true];
  } else {
    lowerText = upperText = value;
  }
  if (isRange && lowerText === undefined && upperText === undefined) throw invalid('is a range without bounds');

  const normalise = (text: string, which: string): string => {
    if (vr === 'DA') {
      if (!isValidDate(text)) throw invalid(`has ${which} ${JSON.stringify(text)} that is not a valid date YYYYMMDD`);
      return text;
    }
    if (vr === 'TM') {
      const time = TM_WITH_COLONS.test(text) ? text.replaceAll(':', '') : text;
      if (!TM.test(time)) throw invalid(`has ${which} ${JSON.stringify(text)} that is not a valid time HHMMSS.FFFFFF (HH, HHMM and HHMMSS allowed)`);
      return time;
    }
    if (!DT.test(text) || !isValidDate(`${text.slice(0, 8)}`.padEnd(8, '01').slice(0, 8))) {
      throw invalid(`has ${which} ${JSON.stringify(text)} that is not a valid date-time`);
    }
    return text.replace(/[+-]\d{4}$/, '');
  };

  const lower = lowerText === undefined ? undefined : normalise(lowerText, isRange ? 'a start' : 'the value');
  const upper = upperText === undefined ? undefined : normalise(upperText, isRange ? 'an end' : 'the value');
  if (vr === 'DA' && !isRange) return { kind: 'single', value: lower!, caseInsensitive: false };
  // Partial values compare as prefixes: a lower bound drops insignificant trailing zeros ('101500' covers a
  // stored '1015'), an upper bound covers every value that extends it (':' sorts after all digits and '.').
  const range = {
    kind: 'range' as const,
    lower: lower === undefined ? undefined : vr === 'DA' ? lower : trimTrailingZeros(lower),
    upperExclusive: upper === undefined ? undefined : `${upper}:`,
  };
  if (range.lower !== undefined && range.upperExclusive !== undefined && range.lower >= range.upperExclusive) {
    throw invalid(`is a range whose start ${lowerText} is after its end ${upperText}`);
  }
  return range;
}

function trimTrailingZeros(value: string): string {
  return value.replace(/\.?0*$/, '').replace(/\.$/, '');
}

function isValidDate(text: string): boolean {
  const m = DA.exec(text);
  if (!m) return false;
  const [year, month, day] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const date = new Date(Date.UTC(year, month - 1, day));
  return date.getUTCFullYear() === year && date.getUTCMonth() === month - 1 && date.getUTCDate() === day;
}

// ---- in memory ----

/** Whether a stored value matches the key. Multi-valued stored values are backslash-separated. */
export function matches(key: MatchKey, stored: string | number | null | undefined): boolean {
  if (key.matcher.kind === 'universal') return true;
  if (stored === null || stored === undefined) return false;
  const values = key.multiValued && typeof stored === 'string' ? stored.split('\\') : [stored];
  return values.some((v) => matchOne(key.matcher, v));
}

function matchOne(matcher: Matcher, stored: string | number): boolean {
  const text = typeof stored === 'number' ? String(stored) : stored.trim();
  switch (matcher.kind) {
    case 'universal':
      return true;
    case 'single':
      return matcher.caseInsensitive ? asciiUpper(text) === asciiUpper(matcher.value) : text === matcher.value;
    case 'number':
      return text !== '' && Number(text) === matcher.value;
    case 'wildcard':
      return matcher.caseInsensitive
        ? wildcardRegExp(asciiUpper(matcher.pattern)).test(asciiUpper(text))
        : wildcardRegExp(matcher.pattern).test(text);
    case 'range':
      return (
        text !== '' &&
        (matcher.lower === undefined || text >= matcher.lower) &&
        (matcher.upperExclusive === undefined || text < matcher.upperExclusive)
      );
    case 'uid-list':
      return matcher.uids.includes(text);
    case 'any':
      return matcher.items.some((item) => matchOne(item, stored));
    case 'fuzzy': {
      const words = asciiUpper(text).split(/[\^ =]+/).filter((w) => w !== '');
      return matcher.words.every((w) => {
        const prefix = wildcardRegExp(`${asciiUpper(w)}*`);
        return words.some((word) => prefix.test(word));
      });
    }
  }
}

/** Folds ASCII letters only, as SQLite's NOCASE and LIKE do, so memory and SQL agree. */
function asciiUpper(text: string): string {
  return text.replace(/[a-z]+/g, (s) => s.toUpperCase());
}

function wildcardRegExp(pattern: string): RegExp {
  const body = [...pattern]
    // Outside a character class '-' is literal, and escaping it is a syntax error under the 'u' flag.
    .map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')))
    .join('');
  return new RegExp(`^${body}$`, 'su');
}

// ---- SQL ----

/**
 * A WHERE condition for `column` (a trusted SQL expression, never user input) with bound parameters, or
 * undefined for universal matching. The column holds one value per row; keep multi-valued attributes in rows
 * of their own (as series.modality does for ModalitiesInStudy).
 */
export function toSqlCondition(key: MatchKey, column: string): SqlCondition | undefined {
  return matcherSql(key.matcher, column);
}

function matcherSql(matcher: Matcher, column: string): SqlCondition | undefined {
  switch (matcher.kind) {
    case 'universal':
      return undefined;
    case 'single':
      return matcher.caseInsensitive
        ? { sql: `${column} = ? COLLATE NOCASE`, params: [matcher.value] }
        : { sql: `${column} = ?`, params: [matcher.value] };
    case 'number':
      return { sql: `${column} = ?`, params: [matcher.value] };
    case 'wildcard':
      return matcher.caseInsensitive
        ? { sql: `${column} LIKE ? ESCAPE '\\'`, params: [toLikePattern(matcher.pattern)] }
        : { sql: `${column} GLOB ?`, params: [toGlobPattern(matcher.pattern)] };
    case 'range': {
      const parts: string[] = [];
      const params: string[] = [];
      if (matcher.lower !== undefined && matcher.lower !== '') {
        parts.push(`${column} >= ?`);
        params.push(matcher.lower);
      } else {
        parts.push(`${column} <> ''`);
      }
      if (matcher.upperExclusive !== undefined) {
        parts.push(`${column} < ?`);
        params.push(matcher.upperExclusive);
      }
      return { sql: parts.join(' AND '), params };
    }
    case 'uid-list':
      return matcher.uids.length === 1
        ? { sql: `${column} = ?`, params: [matcher.uids[0]] }
        : { sql: `${column} IN (${matcher.uids.map(() => '?').join(', ')})`, params: [...matcher.uids] };
    case 'any': {
      const exact = matcher.items.every((m) => m.kind === 'single' && !m.caseInsensitive);
      if (exact) {
        const values = matcher.items.map((m) => (m as { value: string }).value);
        return { sql: `${column} IN (${values.map(() => '?').join(', ')})`, params: values };
      }
      const conditions = matcher.items.map((m) => matcherSql(m, column));
      if (conditions.some((c) => c === undefined)) return undefined;
      return {
        sql: `(${conditions.map((c) => `(${c!.sql})`).join(' OR ')})`,
        params: conditions.flatMap((c) => c!.params),
      };
    }
    case 'fuzzy': {
      // Words of the stored name start after a space once '^' and '=' are turned into spaces.
      const words = `(' ' || replace(replace(${column}, '^', ' '), '=', ' '))`;
      return {
        sql: matcher.words.map(() => `${words} LIKE ? ESCAPE '\\'`).join(' AND '),
        params: matcher.words.map((w) => `% ${toLikePattern(w)}%`),
      };
    }
  }
}

/** DICOM wildcards to a LIKE pattern with ESCAPE '\': `*`→`%`, `?`→`_`, literal `%`, `_`, `\` escaped. */
export function toLikePattern(pattern: string): string {
  return [...pattern]
    .map((c) => (c === '*' ? '%' : c === '?' ? '_' : c === '%' || c === '_' || c === '\\' ? `\\${c}` : c))
    .join('');
}

/** DICOM wildcards to a (case-sensitive) GLOB pattern: `*` and `?` are the same; a literal `[` is bracketed. */
export function toGlobPattern(pattern: string): string {
  return pattern.replaceAll('[', '[[]');
}
