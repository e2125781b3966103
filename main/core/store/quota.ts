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

  constructor(private readonly dir: string, private readonly maxAgeMs = 250) {}

  async free(options: { exact?: boolean } = {}): Promise<number> {
    if (options.exact || !this.measured || Date.now() - this.measured.at > this.maxAgeMs) {
      this.writtenSince = 0;
      this.measured = { free: await freeBytes(this.dir), at: Date.now() };
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
  const fits = (free: number) => (incoming ? free + incoming.replacedBytes >= limits.minFreeBytes : free > limits.minFreeBytes);
  let free = await gauge.free();
  if (!fits(free)) free = await gauge.free({ exact: true });
  if (!fits(free)) {
    throw new OutOfResourcesError(incoming
      ? `disk reserve reached: ${free} bytes free after receiving ${incoming.spooledBytes}, reserve is ${limits.minFreeBytes}`
      : `disk reserve reached: ${free} bytes free, reserve is ${limits.minFreeBytes}`);
  }
  if (limits.maxArchiveBytes > 0) {
    const after = archiveBytes + (incoming ? incoming.spooledBytes - incoming.replacedBytes : 0);
    if (incoming ? after > limits.maxArchiveBytes : after >= limits.maxArchiveBytes) {
      throw new OutOfResourcesError(
        `archive quota reached: ${archiveBytes} bytes stored, ${incoming?.spooledBytes ?? 0} incoming, quota is ${limits.maxArchiveBytes}`,
      );
    }
  }
}
