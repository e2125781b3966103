import { open, readFile, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Adapter } from 'lowdb';

/**
 * The settings file as lowdb writes it, but durably. lowdb's own JSONFile writes a temp file and renames it
 * without syncing either: after a power cut the settings file could be empty, and the appliance would start
 * on the defaults (no destinations, nothing forwarded). Here the temp file is synced before the rename and
 * the folder after it, so a cut leaves the old settings or the new ones. Writes run one at a time, in order.
 */
export class DurableJsonFile<T> implements Adapter<T> {
  private last: Promise<void> = Promise.resolve();

  constructor(private readonly path: string) {}

  async read(): Promise<T | null> {
    try {
      return JSON.parse(await readFile(this.path, 'utf8')) as T;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw error;
    }
  }

  write(data: T): Promise<void> {
    const text = JSON.stringify(data, null, 2);
    const next = this.last.catch(() => undefined).then(() => writeDurably(this.path, text));
    this.last = next;
    return next;
  }
}

async function writeDurably(path: string, text: string): Promise<void> {
  const temp = join(dirname(path), `.${basename(path)}.writing`);
  const file = await open(temp, 'w', 0o600);
  try {
    await file.writeFile(text, 'utf8');
    await file.sync();
  } finally {
    await file.close();
  }
  try {
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
  const folder = await open(dirname(path), 'r');
  try {
    await folder.sync();
  } finally {
    await folder.close();
  }
}
