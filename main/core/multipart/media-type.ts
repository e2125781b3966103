/** A parsed media type such as `multipart/related; type="application/dicom"; transfer-syntax=*`. */
export interface MediaType {
  type: string;
  params: Record<string, string>;
  q: number;
}

/** Parses one media type; parameter names are lower-cased, quoted values unquoted. */
export function parseMediaType(text: string): MediaType | undefined {
  const pieces = splitOutsideQuotes(text, ';');
  const type = (pieces.shift() ?? '').trim().toLowerCase();
  if (!/^[a-z0-9!#$&^_.+*-]+\/[a-z0-9!#$&^_.+*-]+$/.test(type)) return undefined;
  const params: Record<string, string> = {};
  let q = 1;
  for (const piece of pieces) {
    const eq = piece.indexOf('=');
    if (eq <= 0) continue;
    const name = piece.slice(0, eq).trim().toLowerCase();
    let value = piece.slice(eq + 1).trim();
    if (value.startsWith('"') && value.endsWith('"') && value.length >= 2) value = value.slice(1, -1).replace(/\\(.)/g, '$1');
    if (name === 'q') q = Number.isFinite(Number(value)) ? Number(value) : 1;
    else params[name] = value;
  }
  return { type, params, q };
}

/** Parses an Accept header (absent means anything) into ranges, best first. q=0 ranges are dropped. */
export function parseAccept(header: string | string[] | undefined): MediaType[] {
  const text = Array.isArray(header) ? header.join(',') : header;
  if (!text || text.trim() === '') return [{ type: '*/*', params: {}, q: 1 }];
  return splitOutsideQuotes(text, ',')
    .map((part) => parseMediaType(part))
    .filter((m): m is MediaType => m !== undefined && m.q > 0)
    .sort((a, b) => b.q - a.q);
}

function splitOutsideQuotes(text: string, separator: string): string[] {
  const out: string[] = [];
  let current = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '"' && text[i - 1] !== '\\') quoted = !quoted;
    if (c === separator && !quoted) {
      out.push(current);
      current = '';
    } else current += c;
  }
  out.push(current);
  return out;
}

/** Does `range` (which may hold wildcards) cover `type`? */
export function typeMatches(range: string, type: string): boolean {
  if (range === '*/*' || range === type) return true;
  const [rangeMain, rangeSub] = range.split('/');
  const [main] = type.split('/');
  return rangeSub === '*' && rangeMain === main;
}
