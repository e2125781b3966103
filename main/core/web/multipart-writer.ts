import { Readable } from 'node:stream';
import { newBoundary } from './multipart-related.js';

export interface OutgoingPart {
  contentType: string;
  /** Extra headers, e.g. Content-Location. */
  headers?: Record<string, string>;
  /** The bytes, produced lazily so files are opened one at a time. */
  body: () => AsyncIterable<Uint8Array> | Uint8Array;
}

/** A multipart/related body streamed part by part. */
export function multipartStream(parts: Iterable<OutgoingPart> | AsyncIterable<OutgoingPart>): { boundary: string; stream: Readable } {
  const boundary = newBoundary();
  async function* generate(): AsyncGenerator<Uint8Array> {
    let first = true;
    for await (const part of parts) {
      const head = [`${first ? '' : '\r\n'}--${boundary}`, `Content-Type: ${part.contentType}`];
      for (const [name, value] of Object.entries(part.headers ?? {})) head.push(`${name}: ${value}`);
      yield Buffer.from(`${head.join('\r\n')}\r\n\r\n`, 'latin1');
      const body = part.body();
      if (body instanceof Uint8Array) yield body;
      else for await (const chunk of body) yield chunk;
      first = false;
    }
    yield Buffer.from(`${first ? '' : '\r\n'}--${boundary}--\r\n`, 'latin1');
  }
  return { boundary, stream: Readable.from(generate(), { objectMode: false }) };
}
