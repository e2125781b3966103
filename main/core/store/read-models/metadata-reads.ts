import { gunzipSync } from 'node:zlib';
import type { Db } from '../database.js';

export interface MetadataReads {
  /**
   * The DICOM JSON kept for an instance when its file had these bytes (`sha256`), as text whose BulkDataURIs
   * are relative to the instance (dicom/instance-json.ts `withInstanceUrl`); undefined when none is kept.
   */
  instanceMetadata(sopInstanceUid: string, sha256: string): string | undefined;
  /** The same for the instance's file as the index has it now (QIDO-RS); undefined without a file or a description. */
  currentInstanceMetadata(sopInstanceUid: string): string | undefined;
}

export function metadataReads(db: Db): MetadataReads {
  const kept = db.prepare('SELECT encoding, json FROM instance_metadata WHERE sop_instance_uid = ? AND sha256 = ?');
  const current = db.prepare(`SELECT m.encoding, m.json FROM instance_metadata m
    JOIN instances i ON i.sop_instance_uid = m.sop_instance_uid AND i.sha256 = m.sha256 AND i.local = 1 AND i.file_missing = 0
    WHERE m.sop_instance_uid = ?`);
  return {
    instanceMetadata: (sopInstanceUid, sha256) => text(kept.get(sopInstanceUid, sha256) as KeptRow | undefined),
    currentInstanceMetadata: (sopInstanceUid) => text(current.get(sopInstanceUid) as KeptRow | undefined),
  };
}

interface KeptRow {
  encoding: 'gzip' | 'identity';
  json: Buffer;
}

function text(row: KeptRow | undefined): string | undefined {
  if (!row) return undefined;
  // A few kilobytes each: inflating them here is quicker than a round trip to the thread pool.
  return (row.encoding === 'gzip' ? gunzipSync(row.json) : row.json).toString('utf8');
}
