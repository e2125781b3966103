/** Desktop-only preferences (not part of the appliance's settings): start minimised, start at login. */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface DesktopPrefs {
  startMinimised: boolean;
  startAtLogin: boolean;
}

const DEFAULT_DESKTOP_PREFS: DesktopPrefs = { startMinimised: false, startAtLogin: false };

/** Reads known boolean fields; anything else falls back to the default (the file is ours alone). */
export function parseDesktopPrefs(data: unknown, defaults: DesktopPrefs = DEFAULT_DESKTOP_PREFS): DesktopPrefs {
  const record = data && typeof data === 'object' ? (data as Record<string, unknown>) : {};
  const flag = (key: keyof DesktopPrefs): boolean => (typeof record[key] === 'boolean' ? (record[key] as boolean) : defaults[key]);
  return { startMinimised: flag('startMinimised'), startAtLogin: flag('startAtLogin') };
}

export class DesktopPrefsFile {
  readonly path: string;
  constructor(dir: string, private readonly defaults: DesktopPrefs = DEFAULT_DESKTOP_PREFS) {
    this.path = join(dir, 'desktop.json');
  }

  read(): DesktopPrefs {
    if (!existsSync(this.path)) return { ...this.defaults };
    try {
      return parseDesktopPrefs(JSON.parse(readFileSync(this.path, 'utf8')), this.defaults);
    } catch {
      return { ...this.defaults };
    }
  }

  write(prefs: DesktopPrefs): void {
    const temp = `${this.path}.tmp`;
    writeFileSync(temp, `${JSON.stringify(prefs, null, 2)}\n`);
    renameSync(temp, this.path);
  }
}
