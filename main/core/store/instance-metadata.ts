import { open, readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import { instanceJsonFromHead } from '../dicom/instance-json.js';
import type { Db } from './database.js';

const gzipAsync = promisify(gzip);

/** Below this, gzip's own header and the thread-pool round trip cost more than they save. */
const GZIP_FROM_BYTES = 512;
/** Kept compressed only when that saves at least a tenth. */
const GZIP_WORTH = 0.9;
const MAX_HEAD_BYTES = 64 * 1024 * 1024;

/** One instance's DICOM JSON as kept in the index: its text (BulkDataURIs relative, dicom/instance-json.ts), maybe gzipped. */
export interface StoredMetadata {
  encoding: 'gzip' | 'identity';
  json: Buffer;
}

/** The bytes of an instance the description is read from: the first ones when at hand, the file for the rest. */
export interface DescribedFile {
  path: string;
  sizeBytes: number;
  head?: Uint8Array;
}

/**
 * DICOM JSON of a stored instance, read up to Pixel Data only (a deflated data set is read whole), packed
 * for the index. Throws when the file cannot be described.
 */
export async function describeFile(file: DescribedFile): Promise<StoredMetadata & { text: string }> {
  let head: Uint8Array = file.head ?? Buffer.alloc(0);
  let want = Math.max(head.length * 2, 64 * 1024);
  for (;;) {
    if (head.length > 0 || file.sizeBytes === 0) {
      const parsed = instanceJsonFromHead(head, file.sizeBytes);
      if (parsed.kind === 'json') {
        const text = JSON.stringify(parsed.json);
        return { ...(await pack(text)), text };
      }
      if (parsed.wholeFile) {
        // Memory must not grow with the instance: a large deflated one is served from its whole file, as before.
        if (file.sizeBytes > MAX_HEAD_BYTES) throw new Error(`a deflated data set over ${MAX_HEAD_BYTES} bytes is not described ahead`);
        head = await readFile(file.path);
        continue;
      }
      if (head.length >= MAX_HEAD_BYTES) throw new Error(`no Pixel Data within the first ${MAX_HEAD_BYTES} bytes`);
    }
    const length = Math.min(want, file.sizeBytes, MAX_HEAD_BYTES);
    head = await readHead(file.path, length);
    if (head.length < length) throw new Error(`the file has ${head.length} bytes where ${length} were expected`);
    want *= 4;
  }
}

async function readHead(path: string, length: number): Promise<Buffer> {
  const handle = await open(path, 'r');
  try {
    const bytes = Buffer.alloc(length);
    const { bytesRead } = await handle.read(bytes, 0, length, 0);
    return bytes.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

async function pack(text: string): Promise<StoredMetadata> {
  const json = Buffer.from(text, 'utf8');
  if (json.length < GZIP_FROM_BYTES) return { encoding: 'identity', json };
  const packed = await gzipAsync(json);
  return packed.length <= json.length * GZIP_WORTH ? { encoding: 'gzip', json: packed } : { encoding: 'identity', json };
}

/** The instance_metadata rows: written in the transaction of their instance's rows, removed with them. */
export class InstanceMetadataRows {
  private readonly upsert;
  private readonly fill;
  private readonly remove;
  private readonly pending;

  constructor(db: Db) {
    this.upsert = db.prepare(`
      INSERT INTO instance_metadata (sop_instance_uid, sha256, encoding, json) VALUES (?, ?, ?, ?)
      ON CONFLICT(sop_instance_uid) DO UPDATE SET sha256 = excluded.sha256, encoding = excluded.encoding, json = excluded.json`);
    // A backfill writes only while the instance still has the bytes it described.
    this.fill = db.prepare(`
      INSERT INTO instance_metadata (sop_instance_uid, sha256, encoding, json)
      SELECT sop_instance_uid, sha256, ?, ? FROM instances WHERE sop_instance_uid = ? AND sha256 = ? AND local = 1
      ON CONFLICT(sop_instance_uid) DO UPDATE SET sha256 = excluded.sha256, encoding = excluded.encoding, json = excluded.json`);
    this.remove = db.prepare('DELETE FROM instance_metadata WHERE sop_instance_uid = ?');
    this.pending = db.prepare(`
      SELECT i.sop_instance_uid AS sopInstanceUid, i.sha256, i.path, i.size_bytes AS sizeBytes FROM instances i
      WHERE i.local = 1 AND i.file_missing = 0 AND i.sop_instance_uid > ?
        AND NOT EXISTS (SELECT 1 FROM instance_metadata m WHERE m.sop_instance_uid = i.sop_instance_uid AND m.sha256 = i.sha256)
      ORDER BY i.sop_instance_uid LIMIT ?`);
  }

  /** The description of these bytes of the instance; none (the file is described when asked) removes a stale one. */
  write(sopInstanceUid: string, sha256: string, metadata: StoredMetadata | undefined): void {
    if (metadata) this.upsert.run(sopInstanceUid, sha256, metadata.encoding, metadata.json);
    else this.remove.run(sopInstanceUid);
  }

  /** Kept only if the instance still has the bytes (`sha256`) it was made from. */
  backfill(sopInstanceUid: string, sha256: string, metadata: StoredMetadata): boolean {
    return this.fill.run(metadata.encoding, metadata.json, sopInstanceUid, sha256).changes > 0;
  }

  forget(sopInstanceUid: string): void {
    this.remove.run(sopInstanceUid);
  }

  /** Local instances with no description of their bytes, in UID order after `afterUid`. */
  undescribed(afterUid: string, limit: number): Array<{ sopInstanceUid: string; sha256: string; path: string; sizeBytes: number }> {
    return this.pending.all(afterUid, limit) as Array<{ sopInstanceUid: string; sha256: string; path: string; sizeBytes: number }>;
  }
}
