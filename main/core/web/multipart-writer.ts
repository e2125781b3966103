import { Readable } from 'node:stream';
import { newBoundary } from './multipart-related.js';

export interface OutgoingPart {
  contentType: string;
  /** Extra headers, e.g. Content-Location. */
  headers?: Record<string, string>;
  /** The bytes, produced lazily so files are opened one at a time. */
  body: () => AsyncIterable<Uint8Array> | Uint8Array;
  /** Byte length of the body when known; with every size known the response gets a Content-Length. */
  size?: number;
}

/** A multipart/related body streamed part by part. */
export function multipartStream(parts: OutgoingPart[]): { boundary: string; stream: Readable; length?: number } {
  const boundary = newBoundary();
  const headOf = (part: OutgoingPart, first: boolean) => {
    const head = [`${first ? '' : '\r\n'}--${boundary}`, `Content-Type: ${part.contentType}`];
    for (const [name, value] of Object.entries(part.headers ?? {})) head.push(`${name}: ${value}`);
    return Buffer.from(`${head.join('\r\n')}\r\n\r\n`, 'latin1');
  };
  const closing = (first: boolean) => Buffer.from(`${first ? '' : '\r\n'}--${boundary}--\r\n`, 'latin1');
  let length: number | undefined = closing(parts.length === 0).length;
  parts.forEach((part, i) => {
    if (length === undefined || part.size === undefined) length = undefined;
    else length += headOf(part, i === 0).length + part.size;
  });
  async function* generate(): AsyncGenerator<Uint8Array> {
    let first = true;
    for (const part of parts) {
      yield headOf(part, first);
      const body = part.body();
      if (body instanceof Uint8Array) yield body;
      else for await (const chunk of body) yield chunk;
      first = false;
    }
    yield closing(first);
  }
  return { boundary, stream: Readable.from(generate(), { objectMode: false }), length };
}
