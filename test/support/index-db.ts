import Database from 'better-sqlite3';

const open = new WeakMap<object, Database.Database>();

/**
 * A connection of the test's own to an archive's index, to look at rows (and to put the outbox in the states
 * the forwarder would): the archive keeps its connection to itself. One per archive, opened on first use.
 */
export function indexDb(archive: { readonly paths: { readonly databaseFile: string } }): Database.Database {
  let db = open.get(archive);
  if (!db) {
    db = new Database(archive.paths.databaseFile, { fileMustExist: true });
    // The archive may be committing; wait for it as the archive waits for us.
    db.pragma('busy_timeout = 5000');
    open.set(archive, db);
  }
  return db;
}
