// Schema 4: the clinic workflow tables (Storage Commitment, worklist, MPPS) come to an existing index.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { openDatabase, schemaVersion, SCHEMA_VERSION } from '../../main/core/store/database.js';

describe('index schema 4', () => {
  test('a schema-3 index gains the workflow tables, empty, and keeps its rows', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'dicom-edge-v3-'));
    try {
      const file = join(dir, 'index.sqlite');
      // A schema-3 index as that version left it: today's schema without what schema 4 added.
      openDatabase(file).close();
      const db = new Database(file);
      db.exec(`DROP TABLE commitment_items; DROP TABLE commitment_transactions; DROP TABLE mpps_steps; DROP TABLE worklist_items;
        UPDATE meta SET value = '3' WHERE key = 'schema_version'`);
      db.prepare("INSERT INTO studies (study_uid, patient_id, received_at, updated_at) VALUES ('2.25.78', 'OLD-2', 1, 1)").run();
      db.close();
      const migrated = openDatabase(file);
      try {
        assert.equal(SCHEMA_VERSION, 4);
        assert.equal(schemaVersion(migrated), 4);
        for (const table of ['commitment_transactions', 'commitment_items', 'worklist_items', 'mpps_steps']) {
          assert.equal((migrated.prepare(`SELECT COUNT(*) AS n FROM ${table}`).get() as { n: number }).n, 0, table);
        }
        assert.deepEqual(migrated.prepare("SELECT patient_id FROM studies WHERE study_uid = '2.25.78'").get(), { patient_id: 'OLD-2' });
      } finally {
        migrated.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
