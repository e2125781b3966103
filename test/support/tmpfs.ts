// A small real file system (tmpfs) that tests can fill to the last byte: a full disk as the appliance
// meets it, with exact free space. Mounting needs root (CAP_SYS_ADMIN); where it is not permitted the
// tests that need it skip, and say so loudly.
import { mkdtemp, open, rm, statfs, truncate, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from './process.js';

const PAGE = 4096;
const FILLER = '.filler';

export interface Tmpfs {
  /** The mount point. */
  dir: string;
  /** Bytes free for an unprivileged writer, as the appliance measures them. */
  free(): Promise<number>;
  /** Writes a filler file until the file system is full, then gives back `leaveBytes` (rounded up to whole pages). */
  fill(leaveBytes?: number): Promise<void>;
  /** Removes the filler. */
  unfill(): Promise<void>;
  unmount(): Promise<void>;
}

export async function mountTmpfs(sizeBytes: number): Promise<Tmpfs> {
  const dir = await mkdtemp(join(tmpdir(), 'dicom-edge-tmpfs-'));
  const mounted = await run('mount', ['-t', 'tmpfs', '-o', `size=${sizeBytes},mode=0755`, 'tmpfs', dir], { timeoutMs: 20_000 });
  if (mounted.code !== 0) {
    await rm(dir, { recursive: true, force: true });
    throw new Error(`mount -t tmpfs failed (exit ${mounted.code}): ${mounted.stderr.trim()}`);
  }
  const filler = join(dir, FILLER);
  const free = async () => {
    const stats = await statfs(dir);
    return stats.bavail * stats.bsize;
  };
  return {
    dir,
    free,
    async fill(leaveBytes = 0) {
      const handle = await open(filler, 'a');
      try {
        for (const size of [1024 * 1024, PAGE, 1]) {
          const zeros = Buffer.alloc(size);
          for (;;) {
            try {
              const { bytesWritten } = await handle.write(zeros);
              if (bytesWritten < size) break;
            } catch (error) {
              if ((error as NodeJS.ErrnoException).code === 'ENOSPC') break;
              throw error;
            }
          }
        }
        const { size } = await handle.stat();
        const giveBack = Math.ceil(leaveBytes / PAGE) * PAGE;
        if (giveBack > size) throw new Error(`cannot leave ${leaveBytes} bytes free: the filler holds only ${size}`);
        if (giveBack > 0) await truncate(filler, size - giveBack);
      } finally {
        await handle.close();
      }
    },
    async unfill() {
      await unlink(filler).catch(() => undefined);
    },
    async unmount() {
      const result = await run('umount', [dir], { timeoutMs: 20_000 });
      if (result.code !== 0) await run('umount', ['-l', dir], { timeoutMs: 20_000 });
      await rm(dir, { recursive: true, force: true });
    },
  };
}

let probed: Promise<string | undefined> | undefined;

/**
 * Why tmpfs tests cannot run on this machine, or undefined when they can. The reason is also written to
 * stderr, so a skipped full-disk test is never mistaken for a passed one.
 */
export function tmpfsUnavailable(): Promise<string | undefined> {
  probed ??= (async () => {
    try {
      const probe = await mountTmpfs(PAGE * 16);
      await probe.unmount();
      return undefined;
    } catch (error) {
      const reason = `SKIPPED: this test needs a real small file system and cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): ${(error as Error).message}`;
      process.stderr.write(`\n${'!'.repeat(100)}\n!!! ${reason}\n${'!'.repeat(100)}\n\n`);
      return reason;
    }
  })();
  return probed;
}
