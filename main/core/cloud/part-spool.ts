import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { drainedOrClosed } from '../runtime/drained-or-closed.js';

/**
 * One part of the archive's answer kept in a temp file while the reader given it live still reads, so its
 * ingest (the durable write, the hash, the DICOM JSON, the index) can wait until that reader is done instead of
 * taking the cores from it: the reader goes at the archive's pace, and the cache fills right after. Writes land
 * in the page cache (no sync: these bytes are the archive's, and nothing is acknowledged from them); the fetch
 * waits only when the file's stream asks it to. A write that fails (a full disk) loses the spool, never the
 * reader's answer: the part is then not kept here.
 */
export class PartSpool {
  private readonly file: WriteStream;
  private failure: Error | undefined;
  private readonly closed: Promise<void>;

  constructor(readonly path: string) {
    this.file = createWriteStream(path, { flags: 'wx', mode: 0o600, highWaterMark: 1024 * 1024 });
    this.closed = new Promise<void>((resolve) => this.file.once('close', resolve));
    this.file.on('error', (error) => (this.failure ??= error));
  }

  /** Why the spool was lost, if it was. */
  get failed(): Error | undefined {
    return this.failure;
  }

  /** Queues a chunk; a promise to wait for when the file's stream holds enough. */
  write(chunk: Buffer): Promise<void> | undefined {
    if (this.failure) return undefined;
    if (this.file.write(chunk)) return undefined;
    return drainedOrClosed(this.file);
  }

  /** The part is whole: resolves once every byte is in the file (or the spool was lost: see `failed`). */
  async end(): Promise<void> {
    if (!this.file.closed) this.file.end();
    await this.closed;
  }

  /** The spooled bytes, for the ingest. */
  source(): Readable {
    return createReadStream(this.path, { highWaterMark: 1024 * 1024 });
  }

  /** Removes the file (after its ingest, or when the part is dropped). */
  async discard(): Promise<void> {
    if (!this.file.closed) this.file.destroy();
    await this.closed;
    await rm(this.path, { force: true });
  }
}
