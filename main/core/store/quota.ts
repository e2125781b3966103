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

/**
 * The free space of the archive's filesystem without a statfs per instance: measured at most every
 * `maxAgeMs`, and in between estimated as that measurement minus what the archive has written since.
 * The estimate only errs on the safe side for our own writes; a refusal is always re-measured first.
 */
export class FreeSpaceGauge {
  private measured: { free: number; at: number } | undefined;
  private writtenSince = 0;

  /** `measure` gives the free bytes of the archive's filesystem (default statfs of `dir`). */
  constructor(private readonly dir: string, private readonly maxAgeMs = 250, private readonly measure: (dir: string) => Promise<number> = freeBytes) {}

  async free(options: { exact?: boolean } = {}): Promise<number> {
    if (options.exact || !this.measured || Date.now() - this.measured.at > this.maxAgeMs) {
      this.writtenSince = 0;
      this.measured = { free: await this.measure(this.dir), at: Date.now() };
    }
    return this.measured.free - this.writtenSince;
  }

  /** The archive wrote `bytes` more since the last measurement. */
  wrote(bytes: number): void {
    this.writtenSince += bytes;
  }
}

/**
 * How many bytes must be freed so that `incomingBytes` more keep both the reserve and the quota (0: none).
 * The free space is measured exactly when the estimate says the reserve would break.
 */
export async function roomShortfall(gauge: FreeSpaceGauge, limits: QuotaLimits, archiveBytes: number, incomingBytes: number): Promise<number> {
  let free = await gauge.free();
  if (free - incomingBytes < limits.minFreeBytes) free = await gauge.free({ exact: true });
  const forReserve = limits.minFreeBytes - (free - incomingBytes);
  const forQuota = limits.maxArchiveBytes > 0 ? archiveBytes + incomingBytes - limits.maxArchiveBytes : 0;
  return Math.max(0, forReserve, forQuota);
}

/** Throws OutOfResourcesError when storing `incomingBytes` more would break the reserve or the quota. */
export async function checkRoom(
  gauge: FreeSpaceGauge,
  limits: QuotaLimits,
  archiveBytes: number,
  incomingBytes: number,
): Promise<void> {
  let free = await gauge.free();
  if (free - incomingBytes < limits.minFreeBytes) free = await gauge.free({ exact: true });
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
