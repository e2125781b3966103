import Database from 'better-sqlite3';
import { OUTBOX_STATES } from '../contract/outbox-states.js';
import { isDiskFull } from './disk-full.js';

export type Db = Database.Database;

/**
 * A statement cache for one read model or writer: each SQL text is compiled once, on first use, and reused
 * (preparing per call was about half the database time of a forward batch).
 */
export function statementCache(db: Db): (sql: string) => Database.Statement {
  const statements = new Map<string, Database.Statement>();
  return (sql) => {
    let statement = statements.get(sql);
    if (!statement) statements.set(sql, (statement = db.prepare(sql)));
    return statement;
  };
}

/**
 * 2: location of every instance (local, in the cloud), local counts, access time and pin, change-feed cursors.
 * 3: IssuerOfPatientID of a study (a patient is PatientID plus issuer), prefetch jobs.
 * 4: replacements in progress (store/replacements.ts), so recovery re-indexes exactly those files; Storage
 *    Commitment transactions and their instances; the worklist (local items and the cloud's UPS-RS workitems);
 *    MPPS steps; UPS-RS state changes queued for cloud items.
 */
export const SCHEMA_VERSION = 4;

/*
 * Location (schema 2). An instance row is local (local = 1: its file belongs at path) or cloud-only (local = 0:
 * known from the archive, no file here); in_cloud = 1 when the archive destination holds it. file_missing = 1
 * whenever there is no file to read at path, so code that reads files only where file_missing = 0 never
 * touches a cloud-only row. Studies and series count all instances they know (num_instances), the local ones
 * (num_local_instances, kept like num_instances) and size_bytes counts local bytes only; cloud_num_* and
 * cloud_modalities are what the archive reported for the study or series, which may be more than the rows here.
 */
const STUDY_COLUMNS_V2 = [
  'num_local_instances INTEGER NOT NULL DEFAULT 0',
  'cloud_num_series INTEGER',
  'cloud_num_instances INTEGER',
  "cloud_modalities TEXT NOT NULL DEFAULT '[]'",
  'last_access_at INTEGER NOT NULL DEFAULT 0',
  'pinned INTEGER NOT NULL DEFAULT 0',
];
const SERIES_COLUMNS_V2 = ['num_local_instances INTEGER NOT NULL DEFAULT 0', 'cloud_num_instances INTEGER'];
const INSTANCE_COLUMNS_V2 = ['local INTEGER NOT NULL DEFAULT 1', 'in_cloud INTEGER NOT NULL DEFAULT 0'];

const TABLES_V2 = `
-- Least recently used studies first (eviction).
CREATE INDEX IF NOT EXISTS studies_last_access ON studies(last_access_at);

-- Where a destination's change feed was read up to; the text is the reader's (cloud/change-feed.ts).
CREATE TABLE IF NOT EXISTS change_feed_cursors (
  destination TEXT PRIMARY KEY,
  cursor TEXT NOT NULL,
  updated_at INTEGER NOT NULL
);
`;

/*
 * Schema 3. A study's issuer_of_patient_id is '' when the data set has none, and for studies indexed before
 * schema 3 (their files are not read again to find it). prefetch_jobs: one row per study fetched from the
 * archive in the background (cloud/prefetch.ts), in the states the app shows.
 */
const STUDY_COLUMNS_V3 = ["issuer_of_patient_id TEXT NOT NULL DEFAULT ''"];

const TABLES_V3 = `
CREATE INDEX IF NOT EXISTS studies_patient_issuer ON studies(patient_id, issuer_of_patient_id);

CREATE TABLE IF NOT EXISTS prefetch_jobs (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  study_uid TEXT NOT NULL UNIQUE,
  -- The patient whose arriving study (trigger_study_uid) or new cloud study asked for it.
  patient_id TEXT NOT NULL,
  issuer_of_patient_id TEXT NOT NULL DEFAULT '',
  trigger_study_uid TEXT NOT NULL DEFAULT '',
  state TEXT NOT NULL CHECK (state IN ('queued','fetching','done','failed')),
  attempts INTEGER NOT NULL DEFAULT 0,
  not_before INTEGER NOT NULL DEFAULT 0,
  instances_fetched INTEGER NOT NULL DEFAULT 0,
  last_error TEXT,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS prefetch_jobs_work ON prefetch_jobs(state, not_before, id);
`;

/*
 * Schema 4: tables only, created with the schema; nothing to migrate.
 * replacements: a stored file being replaced; path is where the new bytes go, old_path where the stored ones are.
 * A Storage Commitment transaction (PS3.4 Annex J) as the N-ACTION asked for it, kept until its
 * N-EVENT-REPORT was taken by the requesting AE (state 'reported'); commitment_items holds its Referenced
 * SOP Sequence, and the outcome of each instance once the report is decided (failure_reason NULL: committed).
 */
const TABLES_V4 = `
CREATE TABLE IF NOT EXISTS replacements (
  sop_instance_uid TEXT PRIMARY KEY,
  path TEXT NOT NULL,
  old_path TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS commitment_transactions (
  transaction_uid TEXT PRIMARY KEY,
  calling_ae TEXT NOT NULL,
  policy TEXT NOT NULL CHECK (policy IN ('local','cloud')),
  state TEXT NOT NULL CHECK (state IN ('pending','reported')),
  received_at INTEGER NOT NULL,
  deadline_at INTEGER NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at INTEGER NOT NULL DEFAULT 0,
  last_error TEXT,
  event_type INTEGER,
  reported_at INTEGER
);
CREATE INDEX IF NOT EXISTS commitment_transactions_open ON commitment_transactions(state, next_attempt_at);

-- One Requested Procedure with one Scheduled Procedure Step (PS3.4 Annex K) per row; state follows MPPS.
CREATE TABLE IF NOT EXISTS worklist_items (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  state TEXT NOT NULL CHECK (state IN ('SCHEDULED','IN PROGRESS','COMPLETED','DISCONTINUED','CANCELED')),
  study_uid TEXT NOT NULL UNIQUE,
  accession_number TEXT NOT NULL DEFAULT '',
  patient_name TEXT NOT NULL DEFAULT '',
  patient_id TEXT NOT NULL DEFAULT '',
  patient_birth_date TEXT NOT NULL DEFAULT '',
  patient_sex TEXT NOT NULL DEFAULT '',
  referring_physician_name TEXT NOT NULL DEFAULT '',
  requested_procedure_id TEXT NOT NULL DEFAULT '',
  requested_procedure_description TEXT NOT NULL DEFAULT '',
  station_ae TEXT NOT NULL DEFAULT '',
  start_date TEXT NOT NULL DEFAULT '',
  start_time TEXT NOT NULL DEFAULT '',
  modality TEXT NOT NULL DEFAULT '',
  step_id TEXT NOT NULL DEFAULT '',
  step_description TEXT NOT NULL DEFAULT '',
  performing_physician_name TEXT NOT NULL DEFAULT '',
  -- A study that arrived for this item (matched by Study Instance UID or Accession Number); '' while none has.
  arrived_study_uid TEXT NOT NULL DEFAULT '',
  -- 'local': scheduled here; 'cloud': a UPS-RS workitem of the archive destination (store/cloud-worklist.ts).
  source TEXT NOT NULL DEFAULT 'local' CHECK (source IN ('local','cloud')),
  -- Cloud items: the workitem's UID, the destination it came from, and the Transaction UID this appliance
  -- claimed it with ('' until claimed); the owner's lock that every later state change must carry.
  workitem_uid TEXT UNIQUE,
  workitem_destination TEXT NOT NULL DEFAULT '',
  transaction_uid TEXT NOT NULL DEFAULT '',
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS worklist_items_state ON worklist_items(state, start_date, start_time);
CREATE INDEX IF NOT EXISTS worklist_items_accession ON worklist_items(accession_number);

-- A Modality Performed Procedure Step (PS3.4 Annex F) as the modality created and set it.
CREATE TABLE IF NOT EXISTS mpps_steps (
  sop_instance_uid TEXT PRIMARY KEY,
  calling_ae TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('IN PROGRESS','COMPLETED','DISCONTINUED')),
  worklist_item_id INTEGER REFERENCES worklist_items(id),
  study_uid TEXT NOT NULL DEFAULT '',
  accession_number TEXT NOT NULL DEFAULT '',
  performed_step_id TEXT NOT NULL DEFAULT '',
  modality TEXT NOT NULL DEFAULT '',
  start_date TEXT NOT NULL DEFAULT '',
  start_time TEXT NOT NULL DEFAULT '',
  end_date TEXT NOT NULL DEFAULT '',
  end_time TEXT NOT NULL DEFAULT '',
  -- JSON: [{ seriesInstanceUid, sopInstanceUids: [] }], as the last N-CREATE or N-SET gave it.
  performed_series TEXT NOT NULL DEFAULT '[]',
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS mpps_steps_worklist ON mpps_steps(worklist_item_id);

-- UPS-RS Change State requests for cloud worklist items, queued in the transaction that moved the item
-- (MPPS), sent in id order per workitem by cloud/ups-state-sync.ts; 'done' once the archive took it, 'failed'
-- when it refused it (never sent again).
CREATE TABLE IF NOT EXISTS ups_state_changes (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  worklist_item_id INTEGER NOT NULL REFERENCES worklist_items(id),
  workitem_uid TEXT NOT NULL,
  destination TEXT NOT NULL,
  target_state TEXT NOT NULL CHECK (target_state IN ('IN PROGRESS','COMPLETED','CANCELED')),
  transaction_uid TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('queued','done','failed')),
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at INTEGER NOT NULL DEFAULT 0,
  last_error TEXT,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS ups_state_changes_work ON ups_state_changes(state, next_attempt_at, id);

CREATE TABLE IF NOT EXISTS commitment_items (
  transaction_uid TEXT NOT NULL REFERENCES commitment_transactions(transaction_uid),
  sop_instance_uid TEXT NOT NULL,
  sop_class_uid TEXT NOT NULL,
  failure_reason INTEGER,
  PRIMARY KEY (transaction_uid, sop_instance_uid)
);
`;

/*
 * Each instance's DICOM JSON without bulk data (store/instance-metadata.ts), written with its index rows.
 * A description, not data: a row is used only while its sha256 is the instance's, so it needs no schema
 * version of its own. An older appliance ignores the table, and what it replaces meanwhile is described
 * afresh (from the file) when the row no longer matches.
 */
const METADATA_TABLE = `
CREATE TABLE IF NOT EXISTS instance_metadata (
  sop_instance_uid TEXT PRIMARY KEY,
  sha256 TEXT NOT NULL,
  encoding TEXT NOT NULL CHECK (encoding IN ('gzip','identity')),
  json BLOB NOT NULL
);
`;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS studies (
  study_uid TEXT PRIMARY KEY,
  patient_name TEXT NOT NULL DEFAULT '',
  patient_id TEXT NOT NULL DEFAULT '',
  patient_birth_date TEXT NOT NULL DEFAULT '',
  patient_sex TEXT NOT NULL DEFAULT '',
  study_date TEXT NOT NULL DEFAULT '',
  study_time TEXT NOT NULL DEFAULT '',
  accession_number TEXT NOT NULL DEFAULT '',
  study_id TEXT NOT NULL DEFAULT '',
  study_description TEXT NOT NULL DEFAULT '',
  referring_physician_name TEXT NOT NULL DEFAULT '',
  specific_character_set TEXT NOT NULL DEFAULT '',
  modalities_in_study TEXT NOT NULL DEFAULT '',
  num_series INTEGER NOT NULL DEFAULT 0,
  num_instances INTEGER NOT NULL DEFAULT 0,
  size_bytes INTEGER NOT NULL DEFAULT 0,
  received_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  ${STUDY_COLUMNS_V2.join(',\n  ')},
  ${STUDY_COLUMNS_V3.join(',\n  ')}
);
CREATE INDEX IF NOT EXISTS studies_patient_id ON studies(patient_id);
CREATE INDEX IF NOT EXISTS studies_patient_name ON studies(patient_name COLLATE NOCASE);
-- Also the order of 'most recent studies' (query.ts), so that a page of them needs no sort.
CREATE INDEX IF NOT EXISTS studies_date_time_received ON studies(study_date, study_time, received_at);
CREATE INDEX IF NOT EXISTS studies_accession ON studies(accession_number);
CREATE INDEX IF NOT EXISTS studies_received ON studies(received_at);

CREATE TABLE IF NOT EXISTS series (
  series_uid TEXT PRIMARY KEY,
  study_uid TEXT NOT NULL REFERENCES studies(study_uid),
  modality TEXT NOT NULL DEFAULT '',
  series_number INTEGER,
  series_description TEXT NOT NULL DEFAULT '',
  body_part_examined TEXT NOT NULL DEFAULT '',
  pps_start_date TEXT NOT NULL DEFAULT '',
  num_instances INTEGER NOT NULL DEFAULT 0,
  size_bytes INTEGER NOT NULL DEFAULT 0,
  received_at INTEGER NOT NULL,
  ${SERIES_COLUMNS_V2.join(',\n  ')}
);
-- (study_uid, modality): ModalitiesInStudy and Modality keys of study queries probe it per study.
CREATE INDEX IF NOT EXISTS series_study_modality ON series(study_uid, modality);
CREATE INDEX IF NOT EXISTS series_modality ON series(modality);

CREATE TABLE IF NOT EXISTS instances (
  sop_instance_uid TEXT PRIMARY KEY,
  series_uid TEXT NOT NULL REFERENCES series(series_uid),
  study_uid TEXT NOT NULL REFERENCES studies(study_uid),
  sop_class_uid TEXT NOT NULL,
  instance_number INTEGER,
  transfer_syntax_uid TEXT NOT NULL,
  number_of_frames INTEGER,
  rows INTEGER,
  columns INTEGER,
  size_bytes INTEGER NOT NULL,
  sha256 TEXT NOT NULL,
  calling_ae TEXT NOT NULL DEFAULT '',
  received_at INTEGER NOT NULL,
  path TEXT NOT NULL UNIQUE,
  file_missing INTEGER NOT NULL DEFAULT 0,
  replaced_count INTEGER NOT NULL DEFAULT 0,
  ${INSTANCE_COLUMNS_V2.join(',\n  ')}
);
CREATE INDEX IF NOT EXISTS instances_series ON instances(series_uid, instance_number);
CREATE INDEX IF NOT EXISTS instances_study ON instances(study_uid);

-- One row per instance and destination. destination '*' means: no destination was configured
-- when the instance arrived; forward/ assigns it once one is.
CREATE TABLE IF NOT EXISTS outbox (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  sop_instance_uid TEXT NOT NULL,
  study_uid TEXT NOT NULL,
  destination TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN (${OUTBOX_STATES.map((state) => `'${state}'`).join(',')})),
  replaces_earlier INTEGER NOT NULL DEFAULT 0,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at INTEGER NOT NULL DEFAULT 0,
  last_error TEXT,
  failure_reason INTEGER,
  warning_reason INTEGER,
  size_bytes INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  UNIQUE (sop_instance_uid, destination)
);
CREATE INDEX IF NOT EXISTS outbox_work ON outbox(destination, state, next_attempt_at, id);
CREATE INDEX IF NOT EXISTS outbox_study ON outbox(study_uid, destination);

CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
${TABLES_V2}
${TABLES_V3}
${TABLES_V4}
${METADATA_TABLE}
`;

/**
 * Opens (or creates) the index. On a full disk the open fails: SQLite must first extend the WAL index
 * (`-shm`) that its shared-memory locking maps. The index is then opened with locking_mode=EXCLUSIVE,
 * which keeps the WAL index in this process's memory instead, so the appliance still starts, answers
 * queries and refuses ingest. `onDiskFull` is told why; until the next start no other process can open
 * the index (SQLite allows no way back to shared locking while in WAL mode).
 */
export function openDatabase(file: string, onDiskFull?: (reason: string) => void): Db {
  try {
    return openWithLocking(file, 'NORMAL');
  } catch (error) {
    if (!isDiskFull(error)) throw error;
    onDiskFull?.(`${(error as { code?: string }).code}: ${(error as Error).message}`);
    return openWithLocking(file, 'EXCLUSIVE');
  }
}

function openWithLocking(file: string, lockingMode: 'NORMAL' | 'EXCLUSIVE'): Db {
  const db = new Database(file);
  try {
    // Set before the first read: that read decides whether the WAL index lives in a file or in memory.
    if (lockingMode === 'EXCLUSIVE') db.pragma('locking_mode = EXCLUSIVE');
    db.pragma('journal_mode = WAL');
    // FULL: a commit is durable on power loss before we acknowledge the sender.
    db.pragma('synchronous = FULL');
    db.pragma('foreign_keys = ON');
    db.pragma('busy_timeout = 5000');
    migrate(db);
    return db;
  } catch (error) {
    // A connection left open would keep its lock, and the second attempt would find the index busy.
    db.close();
    throw error;
  }
}

/** Thrown when the index was written by a newer version of the appliance, which this one must not change. */
export class SchemaTooNewError extends Error {
  override name = 'SchemaTooNewError';
}

/** The schema version of the index; 0 for an empty database. */
export function schemaVersion(db: Db): number {
  const hasMeta = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").get();
  const row = hasMeta ? (db.prepare("SELECT value FROM meta WHERE key = 'schema_version'").get() as { value: string } | undefined) : undefined;
  if (row) return Number(row.value);
  // Tables without a version row: version 1 created them and stopped before writing the row.
  return db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'studies'").get() ? 1 : 0;
}

/** Creates the schema, or brings an older one up to SCHEMA_VERSION, in one transaction. */
function migrate(db: Db): void {
  db.transaction(() => {
    const version = schemaVersion(db);
    if (version > SCHEMA_VERSION) {
      throw new SchemaTooNewError(`the index has schema version ${version}, newer than this appliance's ${SCHEMA_VERSION}; it was left unchanged`);
    }
    if (version === 1) migrateFrom1(db);
    if (version >= 1 && version < 3) migrateFrom2(db);
    db.exec(SCHEMA);
    // An index already at this version opens without a write, so it opens on a full disk too.
    if (version === SCHEMA_VERSION) return;
    db.prepare("INSERT INTO meta(key, value) VALUES ('schema_version', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value")
      .run(String(SCHEMA_VERSION));
  })();
}

/** 1 → 2: every existing instance is local; counts of local instances start equal to the counts; access = last arrival. */
function migrateFrom1(db: Db): void {
  for (const column of STUDY_COLUMNS_V2) db.exec(`ALTER TABLE studies ADD COLUMN ${column}`);
  for (const column of SERIES_COLUMNS_V2) db.exec(`ALTER TABLE series ADD COLUMN ${column}`);
  for (const column of INSTANCE_COLUMNS_V2) db.exec(`ALTER TABLE instances ADD COLUMN ${column}`);
  db.exec('UPDATE studies SET num_local_instances = num_instances, last_access_at = updated_at');
  db.exec('UPDATE series SET num_local_instances = num_instances');
}

/** 2 → 3: studies get an issuer column (empty: unknown); the new tables come with SCHEMA. */
function migrateFrom2(db: Db): void {
  for (const column of STUDY_COLUMNS_V3) db.exec(`ALTER TABLE studies ADD COLUMN ${column}`);
}

/**
 * Runs `work` as one transaction whose commit writes the WAL without waiting for fsync
 * (synchronous=NORMAL for this commit only). The caller must either sync the WAL before it reports the
 * work durable, or accept losing it to power loss. better-sqlite3 is synchronous, so no other commit
 * runs while the setting is relaxed.
 */
export function commitWithoutSync<T>(db: Db, work: () => T): T {
  const previous = db.pragma('synchronous', { simple: true }) as number;
  db.pragma('synchronous = NORMAL');
  try {
    return db.transaction(work)();
  } finally {
    db.pragma(`synchronous = ${previous}`);
  }
}

/** SQLite's write-ahead log of the database at `file` (journal_mode=WAL). */
export function walFile(file: string): string {
  return `${file}-wal`;
}
