import { statfs } from 'node:fs/promises';
import { OutOfResourcesError } from './errors.js';

export interface QuotaLimits {
  maxArchiveBytes: number;
  minFreeBytes: number;
}

export async function freeBytes(dir: string): Promise<number> {
  const stats = await statfs(dir);
  return stats.bavail * stats.bsize;
}

/** Throws OutOfResourcesError when storing `incomingBytes` more would break the reserve or the quota. */
export async function checkRoom(
  dir: string,
  limits: QuotaLimits,
  archiveBytes: number,
  incomingBytes: number,
): Promise<void> {
  const free = await freeBytes(dir);
  if (free - incomingBytes < limits.minFreeBytes) {
    throw new OutOfResourcesError(
      `disk reserve reached: ${free} bytes free, ${incomingBytes} incoming, reserve is ${limits.minFreeBytes}`,
    );
  }
  if (limits.maxArchiveBytes > 0 && archiveBytes + incomingBytes > limits.maxArchiveBytes) {
    throw new OutOfResourcesError(
      `archive quota reached: ${archiveBytes} bytes stored, ${incomingBytes} incoming, quota is ${limits.maxArchiveBytes}`,
    );
  }
}
