import { readdir, rm, stat } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import type { Logger } from 'pino';
import type { Db } from './database.js';
import { isDiskFull } from './disk-full.js';
import type { ArchivePaths } from './paths.js';
import { Replacements } from './replacements.js';
import { TEMP_SUFFIX } from './temp-file.js';

/** What recovery needs of the archive: its folders, its index, and a way to index a file found on disk. */
export interface RecoverableArchive {
  readonly paths: Pick<ArchivePaths, 'root' | 'tempDir' | 'tempShards'>;
  readonly db: Db;
  indexExistingFile(relativePath: string, sizeBytes: number): Promise<unknown>;
}

export interface RecoveryReport {
  tempFilesRemoved: number;
  filesIndexed: number;
  filesReindexed: number;
  unreadableFiles: number;
  rowsMissingFile: number;
}

/**
 * Brings files and index back into agreement after a crash:
 * temp files are removed, replacements cut short are finished (the file in place is re-hashed and
 * re-indexed whatever its size, an old file at another path removed), final-path files without a row (crash between rename and commit) are indexed,
 * files whose size differs from their row (crash while replacing) are re-indexed, files of cloud-only rows
 * (a fetch or an eviction cut short) are indexed as local copies of the archive's instance, and local rows
 * whose file is gone are flagged.
 */
export async function recoverArchive(archive: RecoverableArchive, logger: Logger): Promise<RecoveryReport> {
  const report: RecoveryReport = { tempFilesRemoved: 0, filesIndexed: 0, filesReindexed: 0, unreadableFiles: 0, rowsMissingFile: 0 };
  const { paths, db } = archive;
  // The top folder held the temp files before they were spread over shards.
  for (const dir of [paths.tempDir, ...paths.tempShards]) {
    for (const name of await readdir(dir)) {
      if (name.endsWith(TEMP_SUFFIX)) {
        await rm(join(dir, name), { force: true });
        report.tempFilesRemoved++;
      }
    }
  }
  await finishReplacements(archive, report, logger);
  const rows = new Map<string, { size: number; local: boolean }>();
  for (const row of db.prepare('SELECT path, size_bytes, local FROM instances').iterate() as Iterable<{ path: string; size_bytes: number; local: number }>) {
    rows.set(row.path, { size: row.size_bytes, local: row.local === 1 });
  }
  const seen = new Set<string>();
  for await (const file of walkInstanceFiles(paths.root, paths.tempDir)) {
    const relativePath = relative(paths.root, file).split(sep).join('/');
    const key = relativePath.split('/').join(sep);
    seen.add(key);
    const row = rows.get(key);
    const { size } = await stat(file);
    if (row?.local && row.size === size) continue;
    try {
      await archive.indexExistingFile(key, size);
      if (!row?.local) report.filesIndexed++;
      else report.filesReindexed++;
    } catch (error) {
      report.unreadableFiles++;
      logger.error({ event: 'recovery-unreadable', file, reason: (error as Error).message }, 'file in the archive cannot be indexed');
    }
  }
  // Only rows whose flag changes are written: a start with nothing to fix writes nothing, so it works on a full disk.
  const flag = db.prepare('UPDATE instances SET file_missing = ? WHERE path = ? AND local = 1 AND file_missing <> ?');
  const flagRows = db.transaction(() => {
    for (const [path, row] of rows) {
      if (!row.local && !seen.has(path)) continue; // cloud-only, and rightly without a file
      const missing = !seen.has(path);
      if (missing) report.rowsMissingFile++;
      flag.run(missing ? 1 : 0, path, missing ? 1 : 0);
    }
  });
  try {
    flagRows();
  } catch (error) {
    if (!isDiskFull(error)) throw error;
    logger.warn({ event: 'recovery-deferred', reason: (error as Error).message }, 'the disk is full: files found missing are flagged at a later start');
  }
  logger.info({ event: 'recovery', ...report }, 'archive recovery finished');
  return report;
}

/**
 * Each replacement begun and not finished: the file at its new path (the new bytes, if the rename happened;
 * else the old ones, when the path did not change) is indexed afresh, and an old file at another path goes,
 * so the walk that follows cannot index it as the instance again.
 */
async function finishReplacements(archive: RecoverableArchive, report: RecoveryReport, logger: Logger): Promise<void> {
  const replacements = new Replacements(archive.db);
  const toKey = (path: string) => path.split('/').join(sep);
  for (const replacement of replacements.inProgress()) {
    const key = toKey(replacement.path);
    const size = await stat(join(archive.paths.root, key)).then((s) => s.size, () => undefined);
    if (size !== undefined) {
      try {
        await archive.indexExistingFile(key, size);
        report.filesReindexed++;
      } catch (error) {
        report.unreadableFiles++;
        logger.error({ event: 'recovery-unreadable', file: replacement.path, sopInstanceUid: replacement.sopInstanceUid, reason: (error as Error).message },
          'replaced file in the archive cannot be indexed');
        continue;
      }
      if (replacement.oldPath !== replacement.path) await rm(join(archive.paths.root, toKey(replacement.oldPath)), { force: true });
    }
    try {
      replacements.finish(replacement.sopInstanceUid);
    } catch (error) {
      if (!isDiskFull(error)) throw error;
      logger.warn({ event: 'recovery-deferred', sopInstanceUid: replacement.sopInstanceUid, reason: (error as Error).message },
        'the disk is full: a finished replacement is forgotten at a later start');
    }
  }
}

async function* walkInstanceFiles(root: string, skip: string): AsyncGenerator<string> {
  let entries;
  try {
    entries = await readdir(root, { withFileTypes: true });
  } catch {
    return;
  }
  for (const entry of entries) {
    const full = join(root, entry.name);
    if (entry.isDirectory()) {
      if (full !== skip) yield* walkInstanceFiles(full, skip);
    } else if (entry.isFile() && entry.name.endsWith('.dcm')) {
      yield full;
    }
  }
}
