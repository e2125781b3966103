import type { Settings } from '../contract/settings.js';

/** Values given on the command line (or by the Electron shell); they win over the settings file and are never written into it. */
export interface SettingsOverrides {
  aeTitle?: string;
  dimsePort?: number;
  httpHost?: string;
  httpPort?: number;
  apiToken?: string;
}

export function applyOverrides(settings: Settings, overrides: SettingsOverrides = {}): Settings {
  return {
    ...settings,
    aeTitle: overrides.aeTitle ?? settings.aeTitle,
    dimse: { ...settings.dimse, port: overrides.dimsePort ?? settings.dimse.port },
    http: {
      ...settings.http,
      host: overrides.httpHost ?? settings.http.host,
      port: overrides.httpPort ?? settings.http.port,
      apiToken: overrides.apiToken ?? settings.http.apiToken,
    },
  };
}

/** The settings paths a flag sets. */
export function overriddenPaths(overrides: SettingsOverrides = {}): string[] {
  const paths: Array<[keyof SettingsOverrides, string]> = [
    ['aeTitle', 'aeTitle'], ['dimsePort', 'dimse.port'], ['httpHost', 'http.host'], ['httpPort', 'http.port'], ['apiToken', 'http.apiToken'],
  ];
  return paths.filter(([flag]) => overrides[flag] !== undefined).map(([, path]) => path);
}
