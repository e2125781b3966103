import { createHash, randomUUID } from 'node:crypto';
import { closeSync, constants, createReadStream, fdatasync, fstat, open, read, writev } from 'node:fs';
import { unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { IngestAbortedError, OutOfResourcesError } from './errors.js';

export const TEMP_SUFFIX = '.part';
export const KEPT_HEAD_BYTES = 256 * 1024;
/**
 * O_DSYNC: each write returns once its data (and the file size) is on disk, so no fsync call follows;
 * one thread-pool round trip less per instance, with the same durability as write + fdatasync.
 */
const TEMP_FILE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_DSYNC;
/** Without O_DSYNC: the writes land in the page cache and one fdatasync at the end makes them durable. */
const SYNC_ONCE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL;
const openFile = promisify(open);
const readFile = promisify(read);
const fstatFile = promisify(fstat);
const writevFile = promisify(writev);
const fdatasyncFile = promisify(fdatasync);

export interface SpoolOptions {
  /**
   * One fdatasync once the last byte is written, instead of O_DSYNC on every write. For a source that nobody
   * waits on chunk by chunk (data fetched from the archive): the writes then cost a copy into the page cache,
   * not a disk round trip each, and the sync runs on the thread pool while the next instance is received.
   * The file is as durable when the spool resolves either way.
   */
  syncOnce?: boolean;
  /**
   * Whether to hash the bytes as they arrive (default true). Without, `sha256` is '' and the caller hashes the file
   * elsewhere (the ingest thread, for data fetched from the archive: hashing is the spool's main cost on the event loop).
   */
  hash?: boolean;
}

/** Chunks, or batches of chunks that the source hands over (never reuses). */
export type SpoolItem = Uint8Array | readonly Uint8Array[];
export type SpoolSource = AsyncIterable<SpoolItem> | Readable;

/**
 * A file already written whole in one of the archive's temp folders (a part of the archive's answer spooled
 * while its reader read it). spoolToTempFile takes the file itself, synced, instead of copying it; anything
 * else that reads a source reads it as a stream.
 */
export class WrittenTempFile implements AsyncIterable<Uint8Array> {
  constructor(readonly path: string) {}

  async *[Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    for await (const chunk of createReadStream(this.path)) yield chunk as Buffer;
  }
}

export interface SpooledFile {
  path: string;
  sizeBytes: number;
  /** '' when not hashed (SpoolOptions.hash). */
  sha256: string;
  /** The first bytes of the file (up to 256 KB), as received, so the header can usually be parsed without reading it back. */
  headChunks: readonly Buffer[];
  /** The last 8 bytes of the file. */
  tail: Buffer;
}

/**
 * What arrives while a write runs is queued (up to this much) and written by the next one, so receiving does
 * not wait for each write's thread-pool round trip, and a slow disk gets fewer, larger writes.
 */
const MAX_QUEUED_BYTES = 1024 * 1024;

/**
 * Streams `source` into a new temp file, hashing as it goes, durably (O_DSYNC, or one fdatasync at the end with
 * `syncOnce`). Removes the file on any failure.
 * A source may yield batches (arrays of chunks), which go to the file with one writev each; a batch
 * hands its buffers over (the source never reuses them), so the header bytes are kept without a copy.
 * One write runs while the next bytes are received, so the sender is not held up by each write.
 */
export async function spoolToTempFile(
  source: SpoolSource,
  tempDir: string,
  options: SpoolOptions = {},
): Promise<SpooledFile> {
  if (source instanceof WrittenTempFile) return takeWrittenFile(source, options);
  throwIfFailed(source);
  const path = join(tempDir, `${randomUUID()}${TEMP_SUFFIX}`);
  const fd = await openFile(path, options.syncOnce ? SYNC_ONCE_FLAGS : TEMP_FILE_FLAGS, 0o600);
  const hash = options.hash === false ? undefined : createHash('sha256');
  const headChunks: Buffer[] = [];
  let headLength = 0;
  let tail = Buffer.alloc(0);
  let sizeBytes = 0;
  let writing: Promise<void> | undefined;
  let inFlight = false;
  // Bytes received while the previous write runs, written together by the next one.
  let queued: Buffer[] = [];
  let queuedBytes = 0;
  const finishWrite = async () => {
    const write = writing;
    writing = undefined;
    await write;
  };
  const startWrite = () => {
    inFlight = true;
    writing = writeAll(fd, queued, queuedBytes, sizeBytes - queuedBytes).finally(() => (inFlight = false));
    writing.catch(() => undefined); // awaited by finishWrite; this only keeps it from counting as unhandled meanwhile
    queued = [];
    queuedBytes = 0;
  };
  try {
    try {
      for await (const item of source as AsyncIterable<SpoolItem>) {
        const handedOver = Array.isArray(item);
        for (const chunk of handedOver ? (item as readonly Uint8Array[]) : [item as Uint8Array]) {
          const bytes = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
          if (bytes.length === 0) continue;
          hash?.update(bytes);
          if (headLength < KEPT_HEAD_BYTES) {
            const kept = bytes.subarray(0, KEPT_HEAD_BYTES - headLength);
            headChunks.push(handedOver ? kept : Buffer.from(kept));
            headLength += kept.length;
          }
          tail = bytes.length >= 8 ? Buffer.from(bytes.subarray(bytes.length - 8)) : Buffer.concat([tail, bytes]).subarray(-8);
          queued.push(bytes);
          queuedBytes += bytes.length;
          sizeBytes += bytes.length;
        }
        // The next chunk is received while a write runs; only a long queue waits for it.
        if (queuedBytes === 0 || (inFlight && queuedBytes < MAX_QUEUED_BYTES)) continue;
        await finishWrite();
        startWrite();
      }
      await finishWrite();
      if (queuedBytes > 0) {
        startWrite();
        await finishWrite();
      }
    } catch (error) {
      await writing?.catch(() => undefined); // the file is closed below; no write may still be running then
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOSPC' || code === 'EDQUOT') throw new OutOfResourcesError(`disk full while writing: ${code}`);
      if (error instanceof IngestAbortedError || error instanceof OutOfResourcesError) throw error;
      throw new IngestAbortedError(`the sender's data ended early: ${(error as Error).message}`);
    }
    if (options.syncOnce) await syncData(fd);
  } catch (error) {
    closeSync(fd);
    await unlink(path).catch(() => undefined);
    throw error;
  }
  // Closing a file whose data is already on disk does not wait on it: done here, it spares a thread-pool trip.
  closeSync(fd);
  return { path, sizeBytes, sha256: hash?.digest('hex') ?? '', headChunks, tail };
}

/** A file written whole, as spoolToTempFile would leave it: its head and tail read, hashed if asked, synced. */
async function takeWrittenFile(file: WrittenTempFile, options: SpoolOptions): Promise<SpooledFile> {
  const fd = await openFile(file.path, constants.O_RDONLY);
  try {
    const { size } = await fstatFile(fd);
    const head = await readAt(fd, Math.min(size, KEPT_HEAD_BYTES), 0);
    const tail = await readAt(fd, Math.min(size, 8), size - Math.min(size, 8));
    let sha256 = '';
    if (options.hash ?? true) {
      const hash = createHash('sha256');
      for await (const chunk of file) hash.update(chunk);
      sha256 = hash.digest('hex');
    }
    await syncData(fd);
    return { path: file.path, sizeBytes: size, sha256, headChunks: head.length > 0 ? [head] : [], tail };
  } finally {
    closeSync(fd);
  }
}

async function readAt(fd: number, length: number, position: number): Promise<Buffer> {
  const bytes = Buffer.allocUnsafe(length);
  for (let done = 0; done < length;) {
    const { bytesRead } = await readFile(fd, bytes, done, length - done, position + done);
    if (bytesRead === 0) throw new IngestAbortedError(`the spooled file ended before its ${length} bytes at ${position}`);
    done += bytesRead;
  }
  return bytes;
}

/** fdatasync; the page cache reports a disk that filled up behind it only now. */
async function syncData(fd: number): Promise<void> {
  try {
    await fdatasyncFile(fd);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOSPC' || code === 'EDQUOT') throw new OutOfResourcesError(`disk full while writing: ${code}`);
    throw error;
  }
}

/** A stream whose sender went away before anyone read it: no file is made for it. */
function throwIfFailed(source: SpoolSource): void {
  const failure = source instanceof Readable ? source.errored : null;
  if (!failure) return;
  if (failure instanceof IngestAbortedError) throw failure;
  throw new IngestAbortedError(`the sender's data ended early: ${failure.message}`);
}

/**
 * The kept first bytes, joined only as far as needed: usually the header lies within the first chunk or
 * two, and joining all 256 KB of every instance would copy most of it for nothing.
 */
export function* headPrefixes(chunks: readonly Buffer[]): Generator<Buffer> {
  let joined = 0;
  while (joined < chunks.length) {
    joined = Math.min(chunks.length, Math.max(2, joined * 4));
    yield joined === 1 ? chunks[0]! : Buffer.concat(chunks.slice(0, joined));
  }
}

/** writev, continuing after a short write. */
async function writeAll(fd: number, batch: Buffer[], total: number, position: number): Promise<void> {
  let written = (await writevFile(fd, batch, position)).bytesWritten;
  while (written < total) {
    let skip = written;
    const rest: Buffer[] = [];
    for (const bytes of batch) {
      if (skip >= bytes.length) skip -= bytes.length;
      else {
        rest.push(skip > 0 ? bytes.subarray(skip) : bytes);
        skip = 0;
      }
    }
    written += (await writevFile(fd, rest, position + written)).bytesWritten;
  }
}
