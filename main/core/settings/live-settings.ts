/**
 * The settings of a running appliance, in three layers:
 *  - stored: what settings.json holds (flags are never written into it);
 *  - configured: stored with the command-line flags applied, what the next start would run, and what
 *    GET /api/settings shows and a client edits;
 *  - running: what is in force. An edit puts the live-applicable parts (`livePaths`) in force at once;
 *    the rest stays configured until a restart, and the answer says which is which.
 */
import { createHash } from 'node:crypto';
import { SettingsError } from './errors.js';
import { applyOverrides, overriddenPaths, type SettingsOverrides } from './overrides.js';
import type { Settings } from '../contract/settings.js';
import type { SettingsFile } from './settings-file.js';
import { changedPaths, sameValue, setValueAt, valueAt } from './settings-paths.js';

export interface SettingsUpdate {
  /** The configured settings after the edit. */
  settings: Settings;
  /** Paths whose new value is in force now. */
  applied: string[];
  /** Paths whose new value waits for a restart. */
  restartRequired: string[];
  /** Paths written to the file that a command-line flag keeps overriding. */
  overriddenByFlag: string[];
  /** The revision of the settings now stored. */
  revision: string;
}

/** A write based on a revision that is no longer the current one. */
export class StaleSettingsError extends Error {
  override name = 'StaleSettingsError';
  constructor(readonly given: readonly string[], readonly current: string) {
    super(`the settings changed since revision ${given.join(', ')} was read (now ${current}); read them again and redo the edit`);
  }
}

/** Names one version of the stored settings: the same content has the same revision, across restarts too. */
function revisionOf(stored: Settings): string {
  return createHash('sha256').update(JSON.stringify(stored)).digest('base64url').slice(0, 16);
}

export interface LiveSettingsOptions {
  file: Pick<SettingsFile, 'path' | 'validate' | 'write'>;
  /** The settings as read from the file at start. */
  stored: Settings;
  overrides?: SettingsOverrides;
  /** Seals plain-text secrets; applied before anything is written, so no secret reaches the disk in clear. */
  seal(stored: Settings): Settings;
  /** What else stops a start (the same check the start makes); an edit that would stop the next start is refused. */
  startProblems(configured: Settings): string[];
  /** Settings paths (whole subtrees) the running services read at each use, so a new value applies at once. */
  livePaths: readonly string[];
  /** Puts new running settings in force (routing, limits, forward workers); called after the file is written. */
  apply(running: Settings, previous: Settings): Promise<void>;
}

export class LiveSettings {
  private storedSettings: Settings;
  private configuredSettings: Settings;
  private runningSettings: Settings;
  private currentRevision: string;
  /** Writes run one after another: each sees the previous one's result, and the file and the running settings agree. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly options: LiveSettingsOptions) {
    this.storedSettings = options.stored;
    this.configuredSettings = applyOverrides(options.stored, options.overrides);
    this.runningSettings = this.configuredSettings;
    this.currentRevision = revisionOf(options.stored);
  }

  get revision(): string {
    return this.currentRevision;
  }

  get stored(): Settings {
    return this.storedSettings;
  }

  get configured(): Settings {
    return this.configuredSettings;
  }

  get running(): Settings {
    return this.runningSettings;
  }

  /**
   * Writes an edit. `edit` gets the configured settings and returns the whole new configured settings
   * (plain data, validated here); it may throw to refuse. Bad input throws SettingsError and changes nothing.
   * With `ifRevision`, the write happens only if the stored settings are still one of those revisions
   * (StaleSettingsError otherwise); without it, the last write wins.
   */
  update(edit: (configured: Settings) => unknown, options: { ifRevision?: readonly string[] } = {}): Promise<SettingsUpdate> {
    const run = this.queue.then(() => this.write(edit, options.ifRevision));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async write(edit: (configured: Settings) => unknown, ifRevision: readonly string[] | undefined): Promise<SettingsUpdate> {
    if (ifRevision && !ifRevision.includes(this.currentRevision)) throw new StaleSettingsError(ifRevision, this.currentRevision);
    const { data, overriddenByFlag } = this.keepFlagsOut(edit(this.configuredSettings));
    const valid = this.options.file.validate(data);
    const problems = this.options.startProblems(applyOverrides(valid, this.options.overrides));
    if (problems.length > 0) throw new SettingsError(this.options.file.path, problems);
    const stored = this.options.seal(valid);
    const configured = applyOverrides(stored, this.options.overrides);
    await this.options.file.write(stored);
    const previous = this.runningSettings;
    const running = structuredClone(previous);
    for (const path of this.options.livePaths) setValueAt(running as Record<string, unknown>, path, valueAt(configured, path));
    this.storedSettings = stored;
    this.configuredSettings = configured;
    this.runningSettings = running;
    this.currentRevision = revisionOf(stored);
    await this.options.apply(running, previous);
    return {
      settings: configured,
      applied: changedPaths(previous, running),
      restartRequired: changedPaths(running, configured),
      overriddenByFlag,
      revision: this.currentRevision,
    };
  }

  /**
   * Destinations and network settings whose secrets were sealed in the file by someone else (forward/ at
   * start): every layer takes them, so no plain text stays in memory.
   */
  adoptSealed({ destinations, network }: Pick<Settings, 'destinations' | 'network'>): void {
    this.storedSettings = { ...this.storedSettings, destinations, network };
    this.configuredSettings = { ...this.configuredSettings, destinations, network };
    this.runningSettings = { ...this.runningSettings, destinations, network };
    this.currentRevision = revisionOf(this.storedSettings);
  }

  /**
   * A flag-set value that comes back unchanged (a GET→PUT round trip) leaves the file's own value in
   * the file; a changed one is written, and reported because the flag still wins.
   */
  private keepFlagsOut(candidate: unknown): { data: unknown; overriddenByFlag: string[] } {
    if (candidate === null || typeof candidate !== 'object') return { data: candidate, overriddenByFlag: [] };
    const data = structuredClone(candidate) as Record<string, unknown>;
    const overriddenByFlag: string[] = [];
    for (const path of overriddenPaths(this.options.overrides)) {
      const given = valueAt(data, path);
      if (given === undefined || sameValue(given, valueAt(this.configuredSettings, path))) setValueAt(data, path, valueAt(this.storedSettings, path));
      else overriddenByFlag.push(path);
    }
    return { data, overriddenByFlag };
  }
}
