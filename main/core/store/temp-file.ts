import { createHash, randomUUID } from 'node:crypto';
import { open, unlink } from 'node:fs/promises';
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

/** Streams `source` into a new temp file, hashing as it goes, and fsyncs it. Removes the file on any failure. */
export async function spoolToTempFile(source: AsyncIterable<Uint8Array> | Readable, tempDir: string): Promise<SpooledFile> {
  const path = join(tempDir, `${randomUUID()}${TEMP_SUFFIX}`);
  const handle = await open(path, 'wx', 0o644);
  const hash = createHash('sha256');
  const headChunks: Buffer[] = [];
  let headLength = 0;
  let tail = Buffer.alloc(0);
  let sizeBytes = 0;
  try {
    try {
      for await (const chunk of source) {
        const bytes = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
        if (bytes.length === 0) continue;
        hash.update(bytes);
        if (headLength < KEPT_HEAD_BYTES) {
          const kept = bytes.subarray(0, KEPT_HEAD_BYTES - headLength);
          headChunks.push(Buffer.from(kept));
          headLength += kept.length;
        }
        tail = bytes.length >= 8 ? Buffer.from(bytes.subarray(bytes.length - 8)) : Buffer.concat([tail, bytes]).subarray(-8);
        let written = 0;
        while (written < bytes.length) {
          const { bytesWritten } = await handle.write(bytes, written, bytes.length - written);
          written += bytesWritten;
        }
        sizeBytes += bytes.length;
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
