import { statementCache, type Db } from './database.js';

export interface ReplacementInProgress {
  sopInstanceUid: string;
  /** Where the new file goes. */
  path: string;
  /** Where the stored file is; the same as `path` unless the instance moves to another study or series. */
  oldPath: string;
}

/**
 * Replacements of stored files that have begun and not finished. A row is made durable before the new bytes
 * are renamed into place, and goes once the index describes them and the old file is gone: a crash in
 * between leaves the row, and recovery re-hashes and re-indexes that file, whatever its size.
 */
export class Replacements {
  private readonly statement: ReturnType<typeof statementCache>;

  constructor(db: Db) {
    this.statement = statementCache(db);
  }

  begin(replacement: ReplacementInProgress): void {
    this.statement('INSERT OR REPLACE INTO replacements (sop_instance_uid, path, old_path) VALUES (?, ?, ?)')
      .run(replacement.sopInstanceUid, replacement.path, replacement.oldPath);
  }

  finish(sopInstanceUid: string): void {
    this.statement('DELETE FROM replacements WHERE sop_instance_uid = ?').run(sopInstanceUid);
  }

  inProgress(): ReplacementInProgress[] {
    return this.statement('SELECT sop_instance_uid AS sopInstanceUid, path, old_path AS oldPath FROM replacements ORDER BY sop_instance_uid')
      .all() as ReplacementInProgress[];
  }
}
