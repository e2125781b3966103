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

/** What one instance asks room for, once it has been received. */
export interface Incoming {
  /** Bytes already written to the archive's file system (the spooled temp file), so already out of its free space. */
  spooledBytes: number;
  /** Bytes of the stored file the instance replaces, freed once it is in place. */
  replacedBytes: number;
}

/**
 * Bytes the disk reserve lacks with `free` bytes free. With `incoming`, `free` was measured after spooling
 * and already excludes the instance (counting its size again refused instances that fit); without it
 * (nothing received yet, the size unknown), at least one byte must fit.
 */
function reserveShortfall(limits: QuotaLimits, free: number, incoming: Incoming | undefined): number {
  return incoming ? limits.minFreeBytes - (free + incoming.replacedBytes) : limits.minFreeBytes - free + 1;
}

/** Bytes the archive quota lacks, on the same terms as reserveShortfall. */
function quotaShortfall(limits: QuotaLimits, archiveBytes: number, incoming: Incoming | undefined): number {
  if (limits.maxArchiveBytes <= 0) return 0;
  return incoming
    ? archiveBytes + incoming.spooledBytes - incoming.replacedBytes - limits.maxArchiveBytes
    : archiveBytes - limits.maxArchiveBytes + 1;
}

/** The free space, measured exactly when the estimate says the reserve would break. */
async function freeForReserve(gauge: FreeSpaceGauge, limits: QuotaLimits, incoming: Incoming | undefined): Promise<number> {
  const free = await gauge.free();
  return reserveShortfall(limits, free, incoming) > 0 ? gauge.free({ exact: true }) : free;
}

/**
 * How many bytes must be freed so that keeping `incoming` (see checkRoom) keeps both the reserve and the
 * quota (0: none).
 */
export async function roomShortfall(gauge: FreeSpaceGauge, limits: QuotaLimits, archiveBytes: number, incoming?: Incoming): Promise<number> {
  const free = await freeForReserve(gauge, limits, incoming);
  return Math.max(0, reserveShortfall(limits, free, incoming), quotaShortfall(limits, archiveBytes, incoming));
}

/**
 * Throws OutOfResourcesError when keeping an instance would break the disk reserve or the archive quota.
 * Without `incoming` (nothing received yet, the size unknown), at least one byte must fit. With it, the
 * free space is measured after spooling, and already excludes the instance: counting its size again
 * refused instances that fit.
 */
export async function checkRoom(
  gauge: FreeSpaceGauge,
  limits: QuotaLimits,
  archiveBytes: number,
  incoming?: Incoming,
): Promise<void> {
  const free = await freeForReserve(gauge, limits, incoming);
  if (reserveShortfall(limits, free, incoming) > 0) {
    throw new OutOfResourcesError(incoming
      ? `disk reserve reached: ${free} bytes free after receiving ${incoming.spooledBytes}, reserve is ${limits.minFreeBytes}`
      : `disk reserve reached: ${free} bytes free, reserve is ${limits.minFreeBytes}`);
  }
  if (quotaShortfall(limits, archiveBytes, incoming) > 0) {
    throw new OutOfResourcesError(
      `archive quota reached: ${archiveBytes} bytes stored, ${incoming?.spooledBytes ?? 0} incoming, quota is ${limits.maxArchiveBytes}`,
    );
  }
}
