import { gunzipSync } from 'node:zlib';
import type { Db } from '../database.js';

export interface MetadataReads {
  /**
   * The DICOM JSON kept for an instance when its file had these bytes (`sha256`), as text whose BulkDataURIs
   * are relative to the instance (dicom/instance-json.ts `withInstanceUrl`); undefined when none is kept.
   */
  instanceMetadata(sopInstanceUid: string, sha256: string): string | undefined;
}

export function metadataReads(db: Db): MetadataReads {
  const kept = db.prepare('SELECT encoding, json FROM instance_metadata WHERE sop_instance_uid = ? AND sha256 = ?');
  return {
    instanceMetadata: (sopInstanceUid, sha256) => {
      const row = kept.get(sopInstanceUid, sha256) as { encoding: 'gzip' | 'identity'; json: Buffer } | undefined;
      if (!row) return undefined;
      // A few kilobytes each: inflating them here is quicker than a round trip to the thread pool.
      return (row.encoding === 'gzip' ? gunzipSync(row.json) : row.json).toString('utf8');
    },
  };
}
