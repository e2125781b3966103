/**
 * The one writer of multipart/related bodies (RFC 2387), for DICOMweb responses (web/) and STOW-RS requests
 * (forward/): one boundary, one way to frame a part, one length. A part's bytes are made or read only when
 * the body gets to it, so files are opened one at a time and never held whole.
 */
import { randomBytes } from 'node:crypto';

/** Random, so it cannot occur in the parts with any real chance. */
export function newBoundary(): string {
  return `DICOMEdge-${randomBytes(16).toString('hex')}`;
}

/** The delimiters of one body: the head before each part and the close delimiter after the last. */
export class MultipartFraming {
  constructor(readonly boundary: string = newBoundary()) {}

  /** The body's Content-Type; `type` is the media type of its root (first) part, as RFC 2387 has it. */
  contentType(type: string): string {
    return `multipart/related; type="${type}"; boundary=${this.boundary}`;
  }

  /**
   * The delimiter line and headers before part `index` (from 0). From the second part on it starts with the
   * CRLF that belongs to the delimiter, so a part's bytes are followed by nothing of their own.
   */
  head(index: number, contentType: string, headers: Readonly<Record<string, string>> = {}): Buffer {
    const lines = [`${index === 0 ? '' : '\r\n'}--${this.boundary}`, `Content-Type: ${contentType}`];
    for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`);
    return Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');
  }

  /** The close delimiter after `partCount` parts. */
  closing(partCount: number): Buffer {
    return Buffer.from(`${partCount === 0 ? '' : '\r\n'}--${this.boundary}--\r\n`, 'latin1');
  }
}

/** Where a part's bytes come from: a FileHandle, or anything that reads the same way. */
export interface PartSource {
  read(buffer: Buffer, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
}

/** A part: an open file read in chunks, or bytes made on demand. The Content-Type defaults to application/dicom. */
export type OutgoingPart = { contentType?: string; headers?: Readonly<Record<string, string>> } & (
  | { handle: PartSource; sizeBytes: number }
  | { bytes: () => Uint8Array | Promise<Uint8Array> | AsyncIterable<Uint8Array>; sizeBytes?: number }
);

export interface MultipartBody {
  boundary: string;
  contentType: string;
  /** Known when every part's size is; then no chunked encoding is needed. */
  contentLength: number | undefined;
  /** Yields the body; reads each file in chunks of at most the body's chunk size. */
  stream(): AsyncGenerator<Uint8Array>;
}

const CHUNK_BYTES = 1024 * 1024;
const DICOM = 'application/dicom';

export function multipartBody(parts: readonly OutgoingPart[], boundary: string = newBoundary(), chunkBytes: number = CHUNK_BYTES): MultipartBody {
  const framing = new MultipartFraming(boundary);
  const heads = parts.map((part, i) => framing.head(i, part.contentType ?? DICOM, part.headers));
  const closing = framing.closing(parts.length);
  let contentLength: number | undefined = closing.length;
  parts.forEach((part, i) => {
    contentLength = contentLength === undefined || part.sizeBytes === undefined ? undefined : contentLength + heads[i]!.length + part.sizeBytes;
  });
  const rootType = (parts[0]?.contentType ?? DICOM).split(';')[0]!;
  return {
    boundary,
    contentType: framing.contentType(rootType),
    contentLength,
    async *stream() {
      for (const [i, part] of parts.entries()) {
        yield heads[i]!;
        if ('handle' in part) {
          yield* readChunks(part.handle, part.sizeBytes, chunkBytes);
          continue;
        }
        const made = await part.bytes();
        if (made instanceof Uint8Array) yield made;
        else yield* made;
      }
      yield closing;
    },
  };
}

async function* readChunks(handle: PartSource, sizeBytes: number, chunkBytes: number): AsyncGenerator<Uint8Array> {
  let position = 0;
  while (position < sizeBytes) {
    const buffer = Buffer.allocUnsafe(Math.min(chunkBytes, sizeBytes - position));
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, position);
    if (bytesRead === 0) throw new Error(`file ended after ${position} of ${sizeBytes} bytes`);
    position += bytesRead;
    yield bytesRead === buffer.length ? buffer : buffer.subarray(0, bytesRead);
  }
}
