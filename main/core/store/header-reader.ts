import { open } from 'node:fs/promises';
import { encapsulatedEndProblem } from '../dicom/encapsulated-end.js';
import { DicomParseError, parseInstanceHeader, type InstanceHeader } from '../dicom/header.js';

const MAX_HEADER_BYTES = 64 * 1024 * 1024;

/**
 * Parses the index attributes of a file on disk, reading only as much of it as the parse needs.
 * `head`/`tail` may be given when the caller already has them.
 */
export async function readInstanceHeader(
  path: string,
  sizeBytes: number,
  known?: { head: Buffer; tail: Buffer },
): Promise<InstanceHeader> {
  const handle = await open(path, 'r');
  try {
    let tail = known?.tail;
    if (!tail) {
      tail = Buffer.alloc(Math.min(8, sizeBytes));
      await handle.read(tail, 0, tail.length, sizeBytes - tail.length);
    }
    let head = known?.head ?? Buffer.alloc(0);
    let want = Math.max(head.length, 64 * 1024);
    for (;;) {
      if (head.length < Math.min(want, sizeBytes)) {
        const next = Buffer.alloc(Math.min(want, sizeBytes));
        const { bytesRead } = await handle.read(next, 0, next.length, 0);
        head = next.subarray(0, bytesRead);
      }
      const parsed = parseInstanceHeader(head, sizeBytes, tail);
      if (parsed.kind === 'parsed') return parsed.header;
      if (parsed.kind === 'check-pixel-data-end') {
        const read = async (position: number, length: number) => {
          const bytes = Buffer.alloc(length);
          const { bytesRead } = await handle.read(bytes, 0, length, position);
          return bytes.subarray(0, bytesRead);
        };
        const problem = await encapsulatedEndProblem(read, parsed.itemsAt, sizeBytes);
        if (problem) throw new DicomParseError(problem);
        return parsed.header;
      }
      if (head.length >= MAX_HEADER_BYTES) {
        throw new DicomParseError(`no Pixel Data within the first ${MAX_HEADER_BYTES} bytes and the dataset is larger`);
      }
      want = Math.min(Math.max(want * 4, head.length * 2), MAX_HEADER_BYTES, sizeBytes);
    }
  } finally {
    await handle.close();
  }
}
