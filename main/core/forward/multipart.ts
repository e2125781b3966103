/**
 * The body of a STOW-RS request: multipart/related; type="application/dicom", streamed part by part from
 * open file handles. Its length is known before the first byte is sent, so no chunked encoding is needed.
 */
import { randomBytes } from 'node:crypto';

/** Where a part's bytes come from: a FileHandle, or anything that reads the same way. */
export interface PartSource {
  read(buffer: Buffer, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
}

export interface BodyPart {
  handle: PartSource;
  sizeBytes: number;
}

export interface MultipartBody {
  contentType: string;
  contentLength: number;
  /** Yields the body; reads each file in chunks of at most `chunkBytes`. */
  stream(): AsyncGenerator<Uint8Array>;
}

const CHUNK_BYTES = 1024 * 1024;

function newBoundary(): string {
  return `dicomedge-${randomBytes(16).toString('hex')}`;
}

export function multipartBody(parts: readonly BodyPart[], boundary: string = newBoundary(), chunkBytes: number = CHUNK_BYTES): MultipartBody {
  const head = Buffer.from(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`, 'latin1');
  const between = Buffer.from('\r\n', 'latin1');
  const tail = Buffer.from(`--${boundary}--\r\n`, 'latin1');
  const contentLength = parts.reduce((total, part) => total + head.length + part.sizeBytes + between.length, 0) + tail.length;
  return {
    contentType: `multipart/related; type="application/dicom"; boundary=${boundary}`,
    contentLength,
    async *stream() {
      for (const part of parts) {
        yield head;
        let position = 0;
        while (position < part.sizeBytes) {
          const buffer = Buffer.allocUnsafe(Math.min(chunkBytes, part.sizeBytes - position));
          const { bytesRead } = await part.handle.read(buffer, 0, buffer.length, position);
          if (bytesRead === 0) throw new Error(`file ended after ${position} of ${part.sizeBytes} bytes`);
          position += bytesRead;
          yield bytesRead === buffer.length ? buffer : buffer.subarray(0, bytesRead);
        }
        yield between;
      }
      yield tail;
    },
  };
}
