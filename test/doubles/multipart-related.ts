// multipart/related (RFC 2387) for DICOMweb: a streaming reader that yields each part as soon as
// its closing delimiter has arrived, a builder for request bodies, and a media-type parser.
// (busboy only parses multipart/form-data.)

export interface MediaType {
  /** lower-cased `type/subtype` */
  type: string;
  /** parameter names lower-cased, values unquoted */
  params: Record<string, string>;
}

export function parseMediaType(header: string | undefined): MediaType | undefined {
  if (!header) return undefined;
  const [head, ...rest] = splitOutsideQuotes(header, ';');
  const type = head.trim().toLowerCase();
  if (!type.includes('/')) return undefined;
  const params: Record<string, string> = {};
  for (const piece of rest) {
    const eq = piece.indexOf('=');
    if (eq < 0) continue;
    let value = piece.slice(eq + 1).trim();
    if (value.startsWith('"') && value.endsWith('"') && value.length >= 2) value = value.slice(1, -1).replace(/\\(.)/g, '$1');
    params[piece.slice(0, eq).trim().toLowerCase()] = value;
  }
  return { type, params };
}

function splitOutsideQuotes(text: string, separator: string): string[] {
  const out: string[] = [];
  let current = '';
  let quoted = false;
  for (const ch of text) {
    if (ch === '"') quoted = !quoted;
    if (ch === separator && !quoted) {
      out.push(current);
      current = '';
    } else current += ch;
  }
  out.push(current);
  return out;
}

export interface Part {
  /** header names lower-cased */
  headers: Record<string, string>;
  body: Buffer;
}

export class MultipartSyntaxError extends Error {}

/**
 * Reads multipart/related parts from a byte stream. Memory held is one part plus one delimiter,
 * never the whole body. Throws MultipartSyntaxError if the body ends before the close delimiter.
 */
export async function* readMultipartRelated(source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, boundary: string): AsyncGenerator<Part> {
  const delimiter = Buffer.from(`\r\n--${boundary}`);
  // Prepend CRLF so that a first delimiter at the very start matches like the others.
  let buf: Buffer = Buffer.from('\r\n');
  // (cast: `step` changes it, which narrowing would not see)
  let state = 'preamble' as 'preamble' | 'after-delimiter' | 'headers' | 'body' | 'done';
  let headers: Record<string, string> = {};
  let bodyChunks: Buffer[] = [];

  const step = (): Part | 'more' | 'again' => {
    switch (state) {
      case 'preamble':
      case 'body': {
        const at = buf.indexOf(delimiter);
        if (at < 0) {
          // Keep a tail that could be the start of a delimiter.
          const keep = Math.min(buf.length, delimiter.length - 1);
          if (state === 'body' && buf.length > keep) bodyChunks.push(buf.subarray(0, buf.length - keep));
          buf = buf.subarray(buf.length - keep);
          return 'more';
        }
        const wasBody = state === 'body';
        if (wasBody) bodyChunks.push(buf.subarray(0, at));
        buf = buf.subarray(at + delimiter.length);
        state = 'after-delimiter';
        if (wasBody) {
          const part = { headers, body: Buffer.concat(bodyChunks) };
          headers = {};
          bodyChunks = [];
          return part;
        }
        return 'again';
      }
      case 'after-delimiter': {
        if (buf.length < 2) return 'more';
        if (buf[0] === 0x2d && buf[1] === 0x2d) {
          state = 'done';
          return 'again';
        }
        // Transport padding (spaces/tabs) may follow a delimiter before CRLF.
        const crlf = buf.indexOf('\r\n');
        if (crlf < 0) return 'more';
        if (buf.subarray(0, crlf).toString('latin1').trim() !== '') throw new MultipartSyntaxError('garbage after boundary');
        buf = buf.subarray(crlf + 2);
        state = 'headers';
        return 'again';
      }
      case 'headers': {
        if (buf.length >= 2 && buf[0] === 0x0d && buf[1] === 0x0a) {
          buf = buf.subarray(2); // a part with no headers
          state = 'body';
          return 'again';
        }
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) {
          if (buf.length > 16 * 1024) throw new MultipartSyntaxError('part headers too long');
          return 'more';
        }
        for (const line of buf.subarray(0, end).toString('latin1').split('\r\n')) {
          const colon = line.indexOf(':');
          if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
        }
        buf = buf.subarray(end + 4);
        state = 'body';
        return 'again';
      }
      case 'done':
        return 'more';
    }
  };

  for await (const chunk of source) {
    if (state === 'done') continue; // epilogue
    buf = buf.length ? Buffer.concat([buf, chunk]) : Buffer.from(chunk);
    for (;;) {
      const result = step();
      if (result === 'more') break;
      if (result !== 'again') yield result;
    }
  }
  if (state !== 'done') throw new MultipartSyntaxError('multipart body ended before the close delimiter');
}

/** Builds a multipart/related body; returns it with the matching Content-Type header value. */
export function buildMultipartRelated(
  parts: Array<Buffer | Uint8Array | { body: Buffer | Uint8Array; contentType?: string }>,
  options: { type?: string; boundary?: string } = {},
): { body: Buffer; contentType: string; boundary: string } {
  const type = options.type ?? 'application/dicom';
  const boundary = options.boundary ?? `dicomedge-${Math.random().toString(16).slice(2)}${Date.now().toString(16)}`;
  const chunks: Buffer[] = [];
  for (const part of parts) {
    const { body, contentType } = part instanceof Uint8Array ? { body: part, contentType: type } : part;
    chunks.push(Buffer.from(`--${boundary}\r\nContent-Type: ${contentType ?? type}\r\n\r\n`, 'latin1'));
    chunks.push(Buffer.from(body));
    chunks.push(Buffer.from('\r\n', 'latin1'));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`, 'latin1'));
  return {
    body: Buffer.concat(chunks),
    contentType: `multipart/related; type="${type}"; boundary=${boundary}`,
    boundary,
  };
}
