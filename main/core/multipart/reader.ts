/** The body is not well-formed multipart (RFC 2046 §5.1.1). */
export class MalformedMultipartError extends Error {
  override name = 'MalformedMultipartError';
}

/** The body grew past the limit given to readMultipart. */
export class BodyTooLargeError extends Error {
  override name = 'BodyTooLargeError';
}

export interface MultipartPart {
  /** Header names in lower case. */
  headers: Record<string, string>;
  /** The part's bytes, streamed; must be read (or drained) before the next part is asked for. */
  body: AsyncIterable<Buffer>;
  /** Reads and discards what the consumer left of this part. */
  drain(): Promise<void>;
}

const CRLF = Buffer.from('\r\n');
const MAX_HEADER_BYTES = 16 * 1024;

/**
 * Streaming multipart/related reader, for request bodies (STOW-RS) and response bodies (WADO-RS from an
 * upstream) alike: yields each part with its body as a stream and never holds more than one source chunk
 * plus a delimiter's length of a part in memory.
 */
export async function* readMultipart(
  source: AsyncIterable<Uint8Array>,
  boundary: string,
  options: { maxBytes?: number } = {},
): AsyncGenerator<MultipartPart> {
  if (!boundary || boundary.length > 70) throw new MalformedMultipartError('missing or over-long boundary parameter');
  const reader = new ChunkReader(source, options.maxBytes ?? Infinity);
  // The first delimiter may start the body without a preceding CRLF; pretend there was one.
  reader.unshift(CRLF);
  const delimiter = Buffer.from(`\r\n--${boundary}`);
  if (!(await reader.skipPast(delimiter))) throw new MalformedMultipartError('no boundary delimiter found in the body');
  for (;;) {
    const after = await reader.readExactly(2);
    if (!after) throw new MalformedMultipartError('body ends right after a boundary delimiter');
    if (after.equals(Buffer.from('--'))) return; // close delimiter; the epilogue is ignored
    // Transport padding (linear whitespace) may follow the delimiter before its CRLF.
    let line = after;
    while (line[0] === 0x20 || line[0] === 0x09) {
      const next = await reader.readExactly(1);
      if (!next) throw new MalformedMultipartError('body ends inside a boundary line');
      line = Buffer.concat([line.subarray(1), next]);
    }
    if (!line.equals(CRLF)) throw new MalformedMultipartError('boundary delimiter is not followed by CRLF');
    const headers = await readHeaders(reader);
    let finished = false;
    let failed: unknown;
    const body = async function* (): AsyncGenerator<Buffer> {
      if (finished) return;
      try {
        for (;;) {
          const piece = await reader.readUntil(delimiter);
          if (piece === undefined) throw new MalformedMultipartError('body ends inside a part (no closing boundary)');
          if (piece.chunk.length > 0) yield piece.chunk;
          if (piece.found) break;
        }
        finished = true;
      } catch (error) {
        failed = error;
        throw error;
      }
    };
    const part: MultipartPart = {
      headers,
      body: { [Symbol.asyncIterator]: body },
      drain: async () => {
        if (failed) throw failed;
        if (finished) return;
        for await (const _ of part.body) {
          /* discard */
        }
      },
    };
    yield part;
    await part.drain();
  }
}

async function readHeaders(reader: ChunkReader): Promise<Record<string, string>> {
  const end = Buffer.from('\r\n\r\n');
  // A part with no headers starts its body right after the delimiter line's CRLF.
  const peek = await reader.peek(2);
  if (peek && peek.equals(CRLF)) {
    await reader.readExactly(2);
    return {};
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for (;;) {
    const piece = await reader.readUntil(end);
    if (piece === undefined) throw new MalformedMultipartError('body ends inside part headers');
    chunks.push(piece.chunk);
    size += piece.chunk.length;
    if (size > MAX_HEADER_BYTES) throw new MalformedMultipartError(`part headers exceed ${MAX_HEADER_BYTES} bytes`);
    if (piece.found) break;
  }
  const headers: Record<string, string> = {};
  for (const line of Buffer.concat(chunks).toString('latin1').split('\r\n')) {
    if (line === '') continue;
    const colon = line.indexOf(':');
    if (colon <= 0) throw new MalformedMultipartError(`part header line without a name: ${JSON.stringify(line.slice(0, 80))}`);
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return headers;
}

/** Pull-based buffer over an async byte source. */
class ChunkReader {
  private buffer: Buffer = Buffer.alloc(0);
  private readonly iterator: AsyncIterator<Uint8Array>;
  private ended = false;
  private total = 0;

  constructor(source: AsyncIterable<Uint8Array>, private readonly maxBytes: number) {
    this.iterator = source[Symbol.asyncIterator]();
  }

  unshift(bytes: Buffer): void {
    this.buffer = Buffer.concat([bytes, this.buffer]);
  }

  private async fill(): Promise<boolean> {
    if (this.ended) return false;
    const { value, done } = await this.iterator.next();
    if (done) {
      this.ended = true;
      return false;
    }
    const chunk = Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
    this.total += chunk.length;
    if (this.total > this.maxBytes) {
      await this.iterator.return?.();
      throw new BodyTooLargeError(`request body exceeds ${this.maxBytes} bytes`);
    }
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    return true;
  }

  async peek(n: number): Promise<Buffer | undefined> {
    while (this.buffer.length < n) if (!(await this.fill())) return undefined;
    return this.buffer.subarray(0, n);
  }

  async readExactly(n: number): Promise<Buffer | undefined> {
    const bytes = await this.peek(n);
    if (!bytes) return undefined;
    this.buffer = this.buffer.subarray(n);
    return Buffer.from(bytes);
  }

  /** Discards everything up to and including `needle`; false when the source ends first. */
  async skipPast(needle: Buffer): Promise<boolean> {
    for (;;) {
      const piece = await this.readUntil(needle);
      if (piece === undefined) return false;
      if (piece.found) return true;
    }
  }

  /**
   * Returns the bytes before `needle` (found: true, needle consumed), or a safe prefix that cannot
   * contain the start of `needle` (found: false). undefined when the source ended without `needle`.
   */
  async readUntil(needle: Buffer): Promise<{ chunk: Buffer; found: boolean } | undefined> {
    for (;;) {
      const at = this.buffer.indexOf(needle);
      if (at >= 0) {
        const chunk = this.buffer.subarray(0, at);
        this.buffer = this.buffer.subarray(at + needle.length);
        return { chunk, found: true };
      }
      // Only a tail that could begin the needle is held back; usually there is none, and the source's
      // chunk goes out as it came, without a copy (small pieces too: the consumer batches its writes).
      const safe = this.buffer.length - partialMatchAtEnd(this.buffer, needle);
      if (safe > 0) return this.take(safe);
      if (!(await this.fill())) return undefined;
    }
  }

  private take(safe: number): { chunk: Buffer; found: false } {
    const chunk = this.buffer.subarray(0, safe);
    this.buffer = safe === this.buffer.length ? EMPTY : Buffer.from(this.buffer.subarray(safe));
    return { chunk, found: false };
  }
}

const EMPTY = Buffer.alloc(0);

/** Length of the longest end of `buffer` that is a proper beginning of `needle` (0 when none). */
function partialMatchAtEnd(buffer: Buffer, needle: Buffer): number {
  const first = needle[0]!;
  for (let i = Math.max(0, buffer.length - needle.length + 1); i < buffer.length; i++) {
    if (buffer[i] !== first) continue;
    const length = buffer.length - i;
    if (buffer.compare(needle, 0, length, i) === 0) return length;
  }
  return 0;
}
