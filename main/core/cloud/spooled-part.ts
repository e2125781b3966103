/**
 * Opening a whole part of the archive's answer in its spool file, where it waits for its ingest. The ingest starts
 * only once the reader that started the fetch is done, so a reader that follows the fetch reads the part from
 * there rather than waiting for its commit.
 */
import { open } from 'node:fs/promises';
import { sniffSopUids } from '../dicom/header.js';
import type { SpooledPart } from './fetch-flight.js';

/** The first bytes read for the part's SOP Instance UID (the header before Pixel Data). */
const HEAD_BYTES = 64 * 1024;

/**
 * The part's bytes for a follower to pass on, with its SOP Instance UID; undefined when the ingest has taken it
 * already (the follower gets it committed) or its first bytes name no SOP instance. A file opened here stays
 * readable whatever its ingest does with it meanwhile. `close` releases the file, read to the end or not.
 */
export async function openSpooledPart(part: SpooledPart): Promise<{ sopInstanceUid: string; body: AsyncIterable<Buffer>; close(): void } | undefined> {
  if (part.taken) return undefined;
  const handle = await open(part.path, 'r').catch(() => undefined);
  if (!handle) return undefined;
  try {
    const head = Buffer.allocUnsafe(HEAD_BYTES);
    const { bytesRead } = await handle.read(head, 0, HEAD_BYTES, 0);
    const { sopInstanceUid } = sniffSopUids(head.subarray(0, bytesRead));
    if (!sopInstanceUid) {
      await handle.close();
      return undefined;
    }
    const file = handle.createReadStream({ start: 0, highWaterMark: 1024 * 1024 });
    return { sopInstanceUid, body: file as AsyncIterable<Buffer>, close: () => void file.destroy() };
  } catch {
    await handle.close().catch(() => undefined);
    return undefined;
  }
}
