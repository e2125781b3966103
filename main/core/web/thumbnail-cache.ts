/**
 * Rendered thumbnails kept on disk, so a viewer opening a study again costs no decoding (issue 14). A file
 * is named by a hash of the instance's SOP Instance UID, its content hash (so a replaced instance never
 * serves an old picture) and every rendering parameter that changes the output. Files live in a folder per
 * instance, dropped when the instance is deleted, evicted or replaced; the whole cache stays under
 * http.thumbnailCacheBytes, least recently used first out.
 *
 * It is a cache: a disk error is logged and the image rendered as if nothing were cached. Each file carries
 * its length and SHA-256, and one that does not match (truncated, corrupted) is removed, never served.
 */
import { createHash, randomUUID } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { assertUid } from '../dicom/uid.js';
import type { RenderOptions } from './image-render.js';

/** The file's first bytes: magic, then the image's length (UInt32BE) and SHA-256, then the image. */
const MAGIC = Buffer.from('DETHUMB1');
const HEADER_BYTES = MAGIC.length + 4 + 32;
const SUFFIX = '.thumb';
const TEMP_SUFFIX = '.tmp';

/** What a cached image is made from: the instance as stored now. */
export interface CachedInstance {
  sopInstanceUid: string;
  /** The stored file's SHA-256 (the index's); empty means unknown, and nothing is cached. */
  sha256: string;
}

interface Entry {
  sopInstanceUid: string;
  sizeBytes: number;
}

function sha256(bytes: Uint8Array): Buffer {
  return createHash('sha256').update(bytes).digest();
}

/** The file name of one rendering: every option that changes the bytes (RenderOptions) is in it. */
export function cacheKey(instance: CachedInstance, options: RenderOptions): string {
  const { frame, viewport, region, relativeRegion, window, format, quality } = options;
  const parts = [instance.sopInstanceUid, instance.sha256, frame, viewport ?? null, region ?? null, relativeRegion ?? null,
    window ?? null, format, quality];
  return createHash('sha256').update(JSON.stringify(parts)).digest('hex');
}

export class ThumbnailCache {
  /** Files by path, least recently used first (a Map keeps insertion order; a hit moves its entry to the end). */
  private readonly entries = new Map<string, Entry>();
  private readonly bySop = new Map<string, Set<string>>();
  private totalBytes = 0;
  /** Renderings in progress per instance, and the instances dropped meanwhile: what they make is not kept. */
  private readonly rendering = new Map<string, number>();
  private readonly droppedWhileRendering = new Set<string>();
  /** Reads and renderings under way, by file: a second request for the same image waits for the first. */
  private readonly pending = new Map<string, Promise<Buffer>>();
  private readonly createdAt = Date.now();

  constructor(private readonly options: { dir: string; maxBytes: () => number; logger: Logger }) {}

  /** Bytes held (as counted here). */
  get sizeBytes(): number {
    return this.totalBytes;
  }

  /**
   * The files a previous run left, oldest first, so the bound holds across restarts; temp files of writes cut
   * short are removed. Runs in the background: requests meanwhile are served (and cached) as usual.
   */
  async load(): Promise<void> {
    const found: Array<{ path: string; entry: Entry; mtimeMs: number }> = [];
    try {
      for (const sop of await readdir(this.options.dir).catch(() => [] as string[])) {
        const folder = join(this.options.dir, sop);
        for (const name of await readdir(folder).catch(() => [] as string[])) {
          const path = join(folder, name);
          const info = await stat(path).catch(() => undefined);
          if (!info?.isFile()) continue;
          if (name.endsWith(SUFFIX)) found.push({ path, entry: { sopInstanceUid: sop, sizeBytes: info.size }, mtimeMs: info.mtimeMs });
          // A temp file of a write cut short by a stop; one of this run may still be being written.
          else if (info.mtimeMs < this.createdAt) await rm(path, { force: true });
        }
      }
    } catch (error) {
      this.warn('thumbnail-cache-load-failed', error);
    }
    found.sort((a, b) => a.mtimeMs - b.mtimeMs);
    // Files used since the start are the newest; those found go before them, oldest first.
    const current = [...this.entries];
    this.entries.clear();
    const seen = new Set(current.map(([path]) => path));
    for (const { path, entry } of found) if (!seen.has(path)) this.add(path, entry);
    for (const [path, entry] of current) this.entries.set(path, entry);
    await this.evictOverLimit();
  }

  /**
   * The cached image of `instance` with `options`, or the one `produce` makes (then kept). Never fails for a
   * reason of the cache's own: only `produce` can.
   */
  async image(instance: CachedInstance, options: RenderOptions, produce: () => Promise<Buffer>): Promise<Buffer> {
    const path = this.options.maxBytes() > 0 && instance.sha256 ? this.pathOf(instance, options) : undefined;
    if (!path) return produce();
    // Viewers opening a series at once ask for the same thumbnail together: it is read or made once for all.
    const pending = this.pending.get(path);
    if (pending) return pending;
    const work = this.readOrMake(path, instance.sopInstanceUid, produce);
    this.pending.set(path, work);
    try {
      return await work;
    } finally {
      this.pending.delete(path);
    }
  }

  private async readOrMake(path: string, sop: string, produce: () => Promise<Buffer>): Promise<Buffer> {
    // Counted from before the read: a drop at any point after it keeps what is made out of the cache.
    this.rendering.set(sop, (this.rendering.get(sop) ?? 0) + 1);
    try {
      const hit = await this.read(path, sop);
      if (hit) return hit;
      const bytes = await produce();
      if (!this.droppedWhileRendering.has(sop)) await this.write(path, sop, bytes);
      return bytes;
    } finally {
      const left = this.rendering.get(sop)! - 1;
      if (left > 0) this.rendering.set(sop, left);
      else {
        this.rendering.delete(sop);
        this.droppedWhileRendering.delete(sop);
      }
    }
  }

  /** Removes every cached image of an instance (deleted, evicted or replaced). */
  async dropInstance(sopInstanceUid: string): Promise<void> {
    if (this.rendering.has(sopInstanceUid)) this.droppedWhileRendering.add(sopInstanceUid);
    for (const path of this.bySop.get(sopInstanceUid) ?? []) this.forget(path);
    try {
      assertUid('SOPInstanceUID', sopInstanceUid);
      await rm(join(this.options.dir, sopInstanceUid), { recursive: true, force: true });
    } catch (error) {
      this.warn('thumbnail-cache-drop-failed', error, sopInstanceUid);
    }
  }

  /** Undefined for a UID that cannot be a folder name (the index never holds one; this is belt and braces). */
  private pathOf(instance: CachedInstance, options: RenderOptions): string | undefined {
    try {
      assertUid('SOPInstanceUID', instance.sopInstanceUid);
    } catch {
      return undefined;
    }
    return join(this.options.dir, instance.sopInstanceUid, `${cacheKey(instance, options)}${SUFFIX}`);
  }

  private async read(path: string, sopInstanceUid: string): Promise<Buffer | undefined> {
    let file: Buffer;
    try {
      file = await readFile(path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') this.warn('thumbnail-cache-read-failed', error, sopInstanceUid);
      this.forget(path);
      return undefined;
    }
    const image = file.subarray(HEADER_BYTES);
    const intact = file.length >= HEADER_BYTES && file.subarray(0, MAGIC.length).equals(MAGIC) &&
      file.readUInt32BE(MAGIC.length) === image.length && file.subarray(MAGIC.length + 4, HEADER_BYTES).equals(sha256(image));
    if (!intact) {
      this.options.logger.warn({ event: 'thumbnail-cache-corrupt', sopInstanceUid, path, sizeBytes: file.length }, 'cached thumbnail damaged; removed and rendered again');
      this.forget(path);
      await rm(path, { force: true }).catch((error: unknown) => this.warn('thumbnail-cache-drop-failed', error, sopInstanceUid));
      return undefined;
    }
    const entry = this.entries.get(path);
    if (entry) {
      this.entries.delete(path);
      this.entries.set(path, entry);
    } else this.add(path, { sopInstanceUid, sizeBytes: file.length });
    return Buffer.from(image);
  }

  /** Written whole to a temp file and renamed, so a file under its final name is always complete. */
  private async write(path: string, sopInstanceUid: string, image: Buffer): Promise<void> {
    const header = Buffer.alloc(HEADER_BYTES);
    MAGIC.copy(header);
    header.writeUInt32BE(image.length, MAGIC.length);
    sha256(image).copy(header, MAGIC.length + 4);
    const sizeBytes = HEADER_BYTES + image.length;
    if (sizeBytes > this.options.maxBytes()) return;
    const temp = `${path}.${randomUUID()}${TEMP_SUFFIX}`;
    try {
      await mkdir(join(this.options.dir, sopInstanceUid), { recursive: true });
      await writeFile(temp, [header, image]);
      await rename(temp, path);
    } catch (error) {
      this.warn('thumbnail-cache-write-failed', error, sopInstanceUid);
      await rm(temp, { force: true }).catch(() => undefined);
      return;
    }
    // Dropped while it was being written: the folder may already be gone, or be removed after this file landed.
    if (this.droppedWhileRendering.has(sopInstanceUid)) {
      await rm(path, { force: true }).catch(() => undefined);
      return;
    }
    this.add(path, { sopInstanceUid, sizeBytes });
    await this.evictOverLimit();
  }

  private add(path: string, entry: Entry): void {
    this.forget(path);
    this.entries.set(path, entry);
    this.totalBytes += entry.sizeBytes;
    let paths = this.bySop.get(entry.sopInstanceUid);
    if (!paths) this.bySop.set(entry.sopInstanceUid, (paths = new Set()));
    paths.add(path);
  }

  private forget(path: string): Entry | undefined {
    const entry = this.entries.get(path);
    if (!entry) return undefined;
    this.entries.delete(path);
    this.totalBytes -= entry.sizeBytes;
    const paths = this.bySop.get(entry.sopInstanceUid);
    paths?.delete(path);
    if (paths?.size === 0) this.bySop.delete(entry.sopInstanceUid);
    return entry;
  }

  /** Least recently used files go until the cache is within its bound. */
  private async evictOverLimit(): Promise<void> {
    const limit = this.options.maxBytes();
    const doomed: Array<{ path: string; entry: Entry }> = [];
    for (const [path, entry] of this.entries) {
      if (this.totalBytes <= limit) break;
      this.forget(path);
      doomed.push({ path, entry });
    }
    for (const { path, entry } of doomed) {
      try {
        await rm(path, { force: true });
        // The instance's last file: its folder goes too, so the cache holds no empty folders.
        if (!this.bySop.has(entry.sopInstanceUid) && !this.rendering.has(entry.sopInstanceUid)) {
          await rm(join(this.options.dir, entry.sopInstanceUid), { recursive: true, force: true });
        }
      } catch (error) {
        this.warn('thumbnail-cache-evict-failed', error, entry.sopInstanceUid);
      }
    }
  }

  private warn(event: string, error: unknown, sopInstanceUid?: string): void {
    this.options.logger.warn({ event, sopInstanceUid, reason: (error as Error)?.message ?? String(error) }, 'thumbnail cache skipped; the image is rendered');
  }
}
