/**
 * The ingest thread (ingest-thread.ts; piscina loads this file): the per-instance work of the ingest that costs CPU
 * in proportion to the instance, done here so the event loop that receives instances, streams them to readers and
 * answers senders never runs it. `describe`: the DICOM JSON of an instance (parsed up to Pixel Data, gzipped).
 * `digest`: the SHA-256 of a spooled file, read back from the page cache, and its description from the same read.
 */
import { createHash } from 'node:crypto';
import { closeSync, openSync, readSync } from 'node:fs';
import { describeFile, type DescribedFile } from './instance-metadata.js';
import { KEPT_HEAD_BYTES } from './temp-file.js';

export type IngestTask =
  | { kind: 'ready' }
  | { kind: 'describe'; file: DescribedFile; withText: boolean }
  | { kind: 'digest'; path: string; sizeBytes: number };

type Packed = { encoding: 'gzip' | 'identity'; json: Uint8Array };

/**
 * What the task gave; failures travel as text (an Error's class and fields do not survive the crossing).
 * A digest whose description could not be made still has its hash (`undescribed` says why).
 */
export type IngestTaskResult =
  | { kind: 'ready' }
  | { kind: 'described'; metadata: Packed; text?: string }
  | { kind: 'digested'; sha256: string; metadata?: Packed; undescribed?: string }
  | { kind: 'failed'; error: string };

const READ_BYTES = 1024 * 1024;

function messageOf(error: unknown): string {
  return (error as Error)?.message ?? String(error);
}

export default async function ingestTask(task: IngestTask): Promise<IngestTaskResult> {
  if (task.kind === 'ready') return { kind: 'ready' };
  if (task.kind === 'describe') {
    try {
      // A Buffer arrives as a plain Uint8Array; dicom-parser inflates a deflated data set with Buffer's methods.
      const head = task.file.head && Buffer.from(task.file.head.buffer, task.file.head.byteOffset, task.file.head.byteLength);
      const described = await describeFile({ path: task.file.path, sizeBytes: task.file.sizeBytes, head });
      return { kind: 'described', metadata: { encoding: described.encoding, json: described.json }, ...(task.withText ? { text: described.text } : {}) };
    } catch (error) {
      return { kind: 'failed', error: messageOf(error) };
    }
  }
  let sha256: string;
  let head: Buffer;
  try {
    ({ sha256, head } = hashFile(task.path, task.sizeBytes));
  } catch (error) {
    return { kind: 'failed', error: messageOf(error) };
  }
  try {
    const described = await describeFile({ path: task.path, sizeBytes: task.sizeBytes, head });
    return { kind: 'digested', sha256, metadata: { encoding: described.encoding, json: described.json } };
  } catch (error) {
    return { kind: 'digested', sha256, undescribed: messageOf(error) };
  }
}

/**
 * The file's SHA-256, read with blocking calls (this thread has nothing else to do, and the thread pool is left to the
 * event loop's writes and syncs), and a copy of its first bytes for the description. Throws when its size is not `sizeBytes`.
 */
function hashFile(path: string, sizeBytes: number): { sha256: string; head: Buffer } {
  const hash = createHash('sha256');
  const buffer = Buffer.allocUnsafe(Math.min(READ_BYTES, Math.max(sizeBytes, 1)));
  const head = Buffer.allocUnsafe(Math.min(KEPT_HEAD_BYTES, sizeBytes));
  const fd = openSync(path, 'r');
  let read = 0;
  try {
    for (;;) {
      const n = readSync(fd, buffer, 0, buffer.length, read);
      if (n === 0) break;
      if (read < head.length) buffer.copy(head, read, 0, Math.min(n, head.length - read));
      hash.update(n === buffer.length ? buffer : buffer.subarray(0, n));
      read += n;
      if (read > sizeBytes) break;
    }
  } finally {
    closeSync(fd);
  }
  if (read !== sizeBytes) throw new Error(`the spooled file has ${read} bytes where ${sizeBytes} were written`);
  return { sha256: hash.digest('hex'), head };
}
