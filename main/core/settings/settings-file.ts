import { existsSync, mkdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Low } from 'lowdb';
import { settingsSchema, type Settings } from '../contract/settings.js';
import { describeIssues } from '../contract/settings-problems.js';
import { DurableJsonFile } from './durable-json-file.js';
import { SettingsError } from './errors.js';

export const SETTINGS_FILE_NAME = 'settings.json';

/**
 * The settings file under the data dir. It is read once and validated; an invalid file stops the
 * start and is never rewritten. Writes go through the same validation, and are durable when they resolve.
 */
export class SettingsFile {
  readonly path: string;
  private constructor(private readonly db: Low<unknown>, path: string) {
    this.path = path;
  }

  static async open(dataDir: string): Promise<{ file: SettingsFile; settings: Settings }> {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    const path = join(dataDir, SETTINGS_FILE_NAME);
    const db = new Low<unknown>(new DurableJsonFile(path), {});
    const created = !existsSync(path);
    if (!created) {
      // Read the raw text ourselves so a syntax error is reported with the file name.
      const text = await readFile(path, 'utf8');
      try {
        db.data = text.trim() === '' ? {} : JSON.parse(text);
      } catch (error) {
        throw new SettingsError(path, [`not valid JSON: ${(error as Error).message}`]);
      }
    }
    const file = new SettingsFile(db, path);
    const settings = file.validate(db.data);
    if (created) {
      db.data = settings;
      await db.write();
    }
    return { file, settings };
  }

  validate(data: unknown): Settings {
    const result = settingsSchema.safeParse(data);
    if (!result.success) throw new SettingsError(this.path, describeIssues(result.error, data));
    return result.data;
  }

  async write(next: unknown): Promise<Settings> {
    const settings = this.validate(next);
    this.db.data = settings;
    await this.db.write();
    return settings;
  }
}
