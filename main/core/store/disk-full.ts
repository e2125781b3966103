/**
 * An error that means the disk (or the quota) is full: SQLite's SQLITE_FULL, its failure to extend the
 * WAL index, or a file system's ENOSPC/EDQUOT.
 */
export function isDiskFull(error: unknown): boolean {
  const code = (error as { code?: unknown })?.code;
  return code === 'SQLITE_FULL' || code === 'SQLITE_IOERR_SHMSIZE' || code === 'ENOSPC' || code === 'EDQUOT';
}
