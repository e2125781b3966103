import { createHash } from 'node:crypto';
import { IngestAbortedError } from './errors.js';
import { KEPT_HEAD_BYTES, type SpooledFile, type SpoolItem, type SpoolSource } from './temp-file.js';

/** What spooling learns of an instance, learnt without writing it anywhere. */
export type UnwrittenInstance = Omit<SpooledFile, 'path'>;

/**
 * Reads an instance to its end, hashing it and keeping its first bytes, but writes nothing: when the disk
 * has no room, this is still enough to recognise an instance the archive already holds.
 */
export async function readWithoutWriting(source: SpoolSource): Promise<UnwrittenInstance> {
  const hash = createHash('sha256');
  const headChunks: Buffer[] = [];
  let headLength = 0;
  let tail = Buffer.alloc(0);
  let sizeBytes = 0;
  try {
    for await (const item of source as AsyncIterable<SpoolItem>) {
      for (const chunk of Array.isArray(item) ? (item as readonly Uint8Array[]) : [item as Uint8Array]) {
        const bytes = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
        if (bytes.length === 0) continue;
        hash.update(bytes);
        if (headLength < KEPT_HEAD_BYTES) {
          const kept = Buffer.from(bytes.subarray(0, KEPT_HEAD_BYTES - headLength));
          headChunks.push(kept);
          headLength += kept.length;
        }
        tail = bytes.length >= 8 ? Buffer.from(bytes.subarray(bytes.length - 8)) : Buffer.concat([tail, bytes]).subarray(-8);
        sizeBytes += bytes.length;
      }
    }
  } catch (error) {
    if (error instanceof IngestAbortedError) throw error;
    throw new IngestAbortedError(`the sender's data ended early: ${(error as Error).message}`);
  }
  return { sizeBytes, sha256: hash.digest('hex'), headChunks, tail };
}
