import Database from 'better-sqlite3';
import { OUTBOX_STATES } from '../contract/outbox-states.js';

export type Db = Database.Database;

const SCHEMA_VERSION = 1;

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
  updated_at INTEGER NOT NULL
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
  received_at INTEGER NOT NULL
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
  replaced_count INTEGER NOT NULL DEFAULT 0
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
`;

export function openDatabase(file: string): Db {
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  // FULL: a commit is durable on power loss before we acknowledge the sender.
  db.pragma('synchronous = FULL');
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  db.exec(SCHEMA);
  db.prepare("INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)").run(String(SCHEMA_VERSION));
  return db;
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
