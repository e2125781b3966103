import { createHash, randomUUID } from 'node:crypto';
import { open, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { IngestAbortedError, OutOfResourcesError } from './errors.js';

export const TEMP_SUFFIX = '.part';
const KEPT_HEAD_BYTES = 256 * 1024;

export interface SpooledFile {
  path: string;
  sizeBytes: number;
  sha256: string;
  /** The first bytes of the file, kept so the header can usually be parsed without reading it back. */
  head: Buffer;
  /** The last 8 bytes of the file. */
  tail: Buffer;
}

/**
 * Streams `source` into a new temp file, hashing as it goes, and fsyncs it. Removes the file on any failure.
 * A source may yield batches (arrays of chunks), which go to the file with one writev each; a batch
 * hands its buffers over (the source never reuses them), so the header bytes are kept without a copy.
 */
export async function spoolToTempFile(
  source: AsyncIterable<Uint8Array | readonly Uint8Array[]> | Readable,
  tempDir: string,
): Promise<SpooledFile> {
  const path = join(tempDir, `${randomUUID()}${TEMP_SUFFIX}`);
  const handle = await open(path, 'wx', 0o644);
  const hash = createHash('sha256');
  const headChunks: Buffer[] = [];
  let headLength = 0;
  let tail = Buffer.alloc(0);
  let sizeBytes = 0;
  try {
    try {
      for await (const item of source as AsyncIterable<Uint8Array | readonly Uint8Array[]>) {
        const batch: Buffer[] = [];
        let batchBytes = 0;
        const handedOver = Array.isArray(item);
        for (const chunk of handedOver ? (item as readonly Uint8Array[]) : [item as Uint8Array]) {
          const bytes = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
          if (bytes.length === 0) continue;
          hash.update(bytes);
          if (headLength < KEPT_HEAD_BYTES) {
            const kept = bytes.subarray(0, KEPT_HEAD_BYTES - headLength);
            headChunks.push(handedOver ? kept : Buffer.from(kept));
            headLength += kept.length;
          }
          tail = bytes.length >= 8 ? Buffer.from(bytes.subarray(bytes.length - 8)) : Buffer.concat([tail, bytes]).subarray(-8);
          batch.push(bytes);
          batchBytes += bytes.length;
        }
        if (batchBytes === 0) continue;
        await writeAll(handle, batch, batchBytes);
        sizeBytes += batchBytes;
      }
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOSPC' || code === 'EDQUOT') throw new OutOfResourcesError(`disk full while writing: ${code}`);
      if (error instanceof IngestAbortedError || error instanceof OutOfResourcesError) throw error;
      throw new IngestAbortedError(`the sender's data ended early: ${(error as Error).message}`);
    }
    await handle.sync();
  } catch (error) {
    await handle.close().catch(() => undefined);
    await unlink(path).catch(() => undefined);
    throw error;
  }
  await handle.close();
  return { path, sizeBytes, sha256: hash.digest('hex'), head: Buffer.concat(headChunks), tail };
}

/** writev, continuing after a short write. */
async function writeAll(handle: FileHandle, batch: Buffer[], total: number): Promise<void> {
  let written = (await (batch.length === 1 ? handle.write(batch[0]!) : handle.writev(batch))).bytesWritten;
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
    written += (await handle.writev(rest)).bytesWritten;
  }
}
