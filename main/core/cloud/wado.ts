/**
 * WADO-RS retrieve of a study, series or instance from the archive destination, in the original transfer
 * syntax, as a stream of parts read incrementally from the multipart/related answer: memory stays bounded
 * by a few chunks whatever the size of an instance.
 */
import { Readable } from 'node:stream';
import { parseMediaType } from '../multipart/media-type.js';
import { MalformedMultipartError, readMultipart } from '../multipart/reader.js';
import { ArchiveReadError, networkFailure } from './archive-errors.js';
import { Deadline, header, type ArchiveClient, type ArchiveResponse } from './archive-client.js';

export interface RetrieveTarget {
  studyUid: string;
  seriesUid?: string;
  sopInstanceUid?: string;
}

export interface ArchivePart {
  /** The part's Content-Type as sent, e.g. `application/dicom; transfer-syntax=1.2.840.10008.1.2.1`. */
  contentType: string;
  /** Its transfer-syntax parameter, when the archive names one. */
  transferSyntax: string | undefined;
  /** The instance's bytes. Read it (or destroy it) before asking for the next part. */
  body: Readable;
}

export interface RetrieveOptions {
  /** Until the answer's headers arrive; the body then streams as long as bytes keep coming. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** Original bytes, whatever their transfer syntax (PS3.18 8.7.3.5.2). */
export const ORIGINAL_BYTES = 'multipart/related; type="application/dicom"; transfer-syntax=*';

export function retrievePath(target: RetrieveTarget): string {
  if (target.sopInstanceUid !== undefined && target.seriesUid === undefined) throw new RangeError('an instance needs its series');
  let path = `/studies/${encodeURIComponent(target.studyUid)}`;
  if (target.seriesUid !== undefined) path += `/series/${encodeURIComponent(target.seriesUid)}`;
  if (target.sopInstanceUid !== undefined) path += `/instances/${encodeURIComponent(target.sopInstanceUid)}`;
  return path;
}

function describeTarget(target: RetrieveTarget): string {
  return target.sopInstanceUid ? 'instance' : target.seriesUid ? 'series' : 'study';
}

/**
 * Yields the parts of the archive's answer as they arrive. Rejects (on the first next(), or while a part is
 * read) with an ArchiveReadError: not-found (404), offline (refused, reset, cut mid-way, time limit), auth,
 * other (e.g. 406, or a malformed body); or with the caller's abort reason. Leaving the loop early closes the
 * connection.
 */
export async function* retrieveArchive(client: ArchiveClient, target: RetrieveTarget, options: RetrieveOptions = {}): AsyncGenerator<ArchivePart> {
  const url = client.url(retrievePath(target));
  const what = `WADO-RS retrieve of ${describeTarget(target)} ${target.sopInstanceUid ?? target.seriesUid ?? target.studyUid}`;
  const deadline = new Deadline(options.timeoutMs, options.signal);
  let response: ArchiveResponse;
  try {
    response = await client.get(url, ORIGINAL_BYTES, what, deadline);
  } finally {
    deadline.clear();
  }
  let finished = false;
  try {
    if (response.status !== 200) throw await client.failure(response, what);
    const contentType = header(response, 'content-type') ?? '';
    const media = parseMediaType(contentType);
    const source = classified(response, what, options.signal);
    if (media?.type === 'application/dicom') {
      // A single-part answer (some archives answer an instance so): the body is the instance.
      yield { contentType, transferSyntax: media.params['transfer-syntax'], body: Readable.from(source, { objectMode: false }) };
      finished = true;
      return;
    }
    const boundary = media?.type === 'multipart/related' ? media.params.boundary : undefined;
    if (!boundary) {
      throw new ArchiveReadError('other', `${what} at ${url}: expected multipart/related with a boundary, got ${JSON.stringify(contentType)}`,
        { url, status: response.status, retryable: false });
    }
    try {
      for await (const part of readMultipart(source, boundary)) {
        const partType = part.headers['content-type'] ?? 'application/dicom';
        const body = Readable.from(wellFormed(part.body, what, url), { objectMode: false });
        yield { contentType: partType, transferSyntax: parseMediaType(partType)?.params['transfer-syntax'], body };
      }
    } catch (error) {
      if (error instanceof MalformedMultipartError) throw malformed(error, what, url);
      throw error;
    }
    finished = true;
  } finally {
    if (!finished) {
      // undici reports a body destroyed before its end as an error; nobody is left to hear it.
      response.body.on('error', () => undefined);
      response.body.destroy();
    }
  }
}

/**
 * The response body, with a connection cut mid-way (or the caller's abort) turned into its classified error, after
 * every byte that arrived before the cut.
 */
async function* classified(response: ArchiveResponse, what: string, signal: AbortSignal | undefined): AsyncGenerator<Uint8Array> {
  try {
    for await (const chunk of response.body) yield chunk as Uint8Array;
  } catch (error) {
    if (signal?.aborted) throw signal.reason;
    // The stream's async iterator stops at the close and leaves what the response still buffers unread: bytes that
    // came while the reader was busy (writing a part to disk) and may end a whole part, which is then kept.
    for (let rest = response.body.read() as Buffer | null; rest !== null; rest = response.body.read() as Buffer | null) yield rest;
    const failure = networkFailure(error, what, response.url);
    // A body that stops before its end is a cut connection, whatever undici calls it.
    if (failure.kind === 'other' && /aborted|terminated|closed/i.test(failure.message)) {
      throw new ArchiveReadError('offline', `${what} at ${response.url}: the connection was cut mid-way (${(error as Error).message})`,
        { url: response.url, retryable: true });
    }
    throw failure;
  }
}

/** A part's bytes, with a malformed body reported as the archive's fault. */
async function* wellFormed(body: AsyncIterable<Buffer>, what: string, url: string): AsyncGenerator<Buffer> {
  try {
    yield* body;
  } catch (error) {
    if (error instanceof MalformedMultipartError) throw malformed(error, what, url);
    throw error;
  }
}

function malformed(error: MalformedMultipartError, what: string, url: string): ArchiveReadError {
  return new ArchiveReadError('other', `${what} at ${url}: malformed multipart answer (${error.message})`, { url, status: 200, retryable: false });
}
